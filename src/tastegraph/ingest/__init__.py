"""Dataset adapters, validation and quarantine: everything that puts data into the store."""

from tastegraph.ingest.from_store import ingest_store
from tastegraph.ingest.generic import ingest_events, ingest_items
from tastegraph.ingest.hm import ingest_hm
from tastegraph.ingest.quarantine import InputError, Problem
from tastegraph.ingest.report import IngestReport

__all__ = [
    "IngestReport",
    "InputError",
    "Problem",
    "ingest_events",
    "ingest_hm",
    "ingest_items",
    "ingest_store",
]
