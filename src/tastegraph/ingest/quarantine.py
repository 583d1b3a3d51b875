"""Bad rows are set aside with where they came from and why, never silently dropped."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tastegraph.artifacts import atomic_path


class InputError(RuntimeError):
    """The input as a whole cannot be read (missing file, unknown format, no header)."""


@dataclass(frozen=True)
class Problem:
    file: str
    row: int  # 1-based data row (CSV header not counted); 0 for a record with no row of its own
    field: str | None  # the offending column, or None when the whole row is bad
    reason: str
    raw: str | None = None  # the row as read, shortened, for a human to fix it


class RowError(ValueError):
    """A row failed validation; `field` names the column at fault."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def shorten(value: object, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


class Quarantine:
    """Collects the problems of one ingest source and writes them to one JSONL file.

    The file is named after the source (with a hash of its full path), so re-running an
    ingest replaces it rather than piling up copies; it is written under a temporary name
    and renamed.
    """

    def __init__(self, directory: Path, name: str, source: Path | None = None) -> None:
        if source is not None:  # two files of the same name in different folders
            name += "-" + hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:8]
        self.path = directory / f"{name}.jsonl"
        self.problems: list[Problem] = []

    def __len__(self) -> int:
        return len(self.problems)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def write(self) -> Path | None:
        """Write the file, or remove a stale one when this run found nothing wrong."""
        if not self.problems:
            self.path.unlink(missing_ok=True)
            return None
        with atomic_path(self.path) as tmp, tmp.open("w", encoding="ascii") as out:
            # ASCII escapes keep undecodable bytes and Unicode line breaks from splitting lines.
            out.writelines(json.dumps(asdict(problem)) + "\n" for problem in self.problems)
        return self.path
