"""What an ingest did, per source: rows read, stored, skipped as duplicates, quarantined."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tastegraph.ingest.quarantine import Quarantine
from tastegraph.progress import Progress
from tastegraph.store import WriteResult

T = TypeVar("T")


@dataclass
class IngestReport:
    what: str  # the kind of record: items, events, photos, ...
    source: str  # the file or folder it came from
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, result: WriteResult) -> None:
        self.stored += result.stored
        self.duplicates += result.duplicates

    def finish(self, quarantine: Quarantine) -> None:
        """Count the quarantined rows and write them to their file."""
        self.quarantined = len(quarantine)
        self.quarantine_file = quarantine.write()

    @property
    def anything_usable(self) -> bool:
        """False when no row could be stored or was already stored."""
        return self.stored + self.duplicates > 0


def in_batches(rows: Sequence[T], size: int, desc: str) -> Iterator[Sequence[T]]:
    """Slices of `rows` of at most `size`, with a progress bar counted in rows."""
    with Progress(len(rows), desc, "rows") as progress:
        for start in range(0, len(rows), size):
            batch = rows[start : start + size]
            yield batch
            progress.update(len(batch))
