"""Another store into this one: how a workdir moves from SQLite to PostgreSQL (or back)
without reading its source files again."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from tastegraph.ingest.report import IngestReport
from tastegraph.progress import Progress
from tastegraph.store import Store, WriteResult

T = TypeVar("T")
BATCH = 1000


def ingest_store(target: Store, source: Store, source_name: str) -> list[IngestReport]:
    """Copy users, items, photos, collections, then events in log order, in batches, each
    committed as it goes: an interrupted copy run again stores only what is missing.

    Events keep their log order, so in a target that held none they keep their positions
    too, and artifacts published over the source's log (profiles) stay valid; a note says
    when they do not."""
    counts = source.counts()
    reports = [
        _copy("users", source_name, source.iter_users(), counts["users"], target.add_users),
        _copy("items", source_name, source.iter_items(), counts["items"], target.add_items),
        _copy("photos", source_name, source.iter_media(), counts["media"], target.add_media),
        _copy(
            "collections",
            source_name,
            source.iter_collections(),
            counts["collections"],
            target.add_collections,
        ),
    ]
    events = IngestReport("events", source_name)
    position, last = 0, source.last_event_seq()
    with Progress(last, "copying events", "log positions") as progress:
        while position < last:
            through = min(position + BATCH, last)
            page = source.events_after(position, through=through)
            events.read += len(page)
            events.add(target.append_events(page))
            progress.update(through - position)
            position = through
    if target.last_event_seq() != last:
        events.notes.append(
            f"the log here ends at position {target.last_event_seq():,}, the source's at "
            f"{last:,}: published profiles point into the source's log, so run "
            "`tastegraph profiles` before serving"
        )
    return [*reports, events]


def _copy(
    what: str,
    source_name: str,
    records: Iterable[T],
    total: int,
    write: Callable[[Sequence[T]], WriteResult],
) -> IngestReport:
    report = IngestReport(what, source_name)
    with Progress(total, f"copying {what}", what) as progress:
        for batch in _batches(records, BATCH):
            report.read += len(batch)
            report.add(write(batch))
            progress.update(len(batch))
    return report


def _batches(records: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(records)
    while batch := list(islice(it, size)):
        yield batch
