"""Read CSV, JSONL and Parquet files row by row; a bad row becomes a Problem, not a crash."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from tastegraph.ingest.quarantine import InputError, Problem, shorten

FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class Row:
    number: int  # 1-based data row; the CSV header is not counted
    values: dict[str, Any]  # empty cells are None


def read_table(path: Path) -> Iterator[Row | Problem]:
    """Yield every row of a CSV, JSONL or Parquet file, or a Problem for a row that is bad."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise InputError(f"{path}: unknown format {suffix!r}; expected one of {', '.join(FORMATS)}")


def _read_csv(path: Path) -> Iterator[Row | Problem]:
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        lines = _Lines(f)
        reader = csv.reader(lines, strict=True)  # a stray quote is an error, not a swallowed file
        header = _csv_header(path, reader)
        number = 0
        while True:
            number += 1
            lines.record.clear()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                first = shorten(lines.record[0].rstrip("\r\n")) if lines.record else None
                again = lines.give_back_after_first()
                note = f"; the {again} lines after it are read again" if again else ""
                yield Problem(str(path), number, None, f"malformed CSV: {exc}{note}", first)
                reader = csv.reader(lines, strict=True)
                continue
            if not any(cell.strip() for cell in cells):
                number -= 1  # blank lines are not rows
                continue
            problem = _csv_row_problem(path, number, header, cells)
            if problem:
                yield problem
                continue
            values = {
                name: (cell.strip() or None) for name, cell in zip(header, cells, strict=True)
            }
            yield Row(number, values)


class _Lines:
    """A file's lines for csv.reader, keeping those of the record being read. An unclosed
    quote makes the reader swallow the lines after it; when the record then fails, those
    lines are given back, so one bad row does not hide the rest of the file."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._given_back: deque[str] = deque()
        self.record: list[str] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._given_back.popleft() if self._given_back else next(self._lines)
        self.record.append(line)
        return line

    def give_back_after_first(self) -> int:
        """Read the current record's lines after its first again; how many there are."""
        rest = self.record[1:]
        self._given_back.extendleft(reversed(rest))
        self.record.clear()
        return len(rest)


def _csv_header(path: Path, reader: Any) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{path}: the file is empty; expected a header row") from None
    except csv.Error as exc:
        raise InputError(f"{path}: cannot read the header row: {exc}") from exc
    header = [name.strip() for name in header]
    if any(_UNDECODABLE.search(name) for name in header):
        raise InputError(f"{path}: the header is not valid UTF-8; save the file as UTF-8")
    if len(set(header)) != len(header) or not all(header):
        raise InputError(f"{path}: the header has empty or repeated column names: {header}")
    return header


def _csv_row_problem(
    path: Path, number: int, header: list[str], cells: list[str]
) -> Problem | None:
    raw = shorten(",".join(cells))
    if len(cells) != len(header):
        reason = f"row has {len(cells)} fields but the header has {len(header)}"
        return Problem(str(path), number, None, reason, raw)
    for name, cell in zip(header, cells, strict=True):
        if _UNDECODABLE.search(cell):
            return Problem(str(path), number, name, "not valid UTF-8", shorten(ascii(cell)))
        if "\x00" in cell:
            return Problem(str(path), number, name, "contains a NUL byte", raw)
    return None


def _read_jsonl(path: Path) -> Iterator[Row | Problem]:
    with path.open("rb") as f:
        number = 0
        for line in f:
            if not line.strip():
                continue
            number += 1
            raw = shorten(line.decode("utf-8", errors="backslashreplace").rstrip("\n"))
            try:
                values = json.loads(line.decode("utf-8"))
            except UnicodeError:
                yield Problem(str(path), number, None, "not valid UTF-8", raw)
                continue
            except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
                yield Problem(str(path), number, None, f"malformed JSON: {exc}", raw)
                continue
            if not isinstance(values, dict):
                yield Problem(str(path), number, None, "expected a JSON object", raw)
                continue
            field = _field_not_text(values)
            if field is not None:
                yield Problem(str(path), number, field, "not valid UTF-8 (a lone surrogate)", raw)
                continue
            yield Row(number, {k: (None if v == "" else v) for k, v in values.items()})


def _field_not_text(values: dict[str, Any]) -> str | None:
    """The first field holding a lone surrogate such as "\\ud800": valid JSON, not text."""
    for name, value in values.items():
        try:
            json.dumps([name, value], ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return name
    return None


def _read_parquet(path: Path) -> Iterator[Row | Problem]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for values in batch.to_pylist():
            number += 1
            try:
                yield Row(number, {k: _plain(v) for k, v in values.items()})
            except ValueError as exc:
                yield Problem(str(path), number, None, str(exc), shorten(repr(values)))


def _plain(value: Any) -> Any:
    """A Parquet value as a JSON-safe one: dates as ISO 8601, decimals as floats."""
    if value == "":
        return None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        raise ValueError("binary values are not supported; store text or numbers")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
