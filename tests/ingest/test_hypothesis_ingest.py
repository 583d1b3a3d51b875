"""Property: whatever an event CSV holds, every data row is accounted for exactly once."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tastegraph.config import Settings
from tastegraph.ingest import ingest_events
from tastegraph.store import Item, SQLiteStore

HEADER = ["user", "item", "action", "timestamp"]
CATALOG = ("i1", "i2")


@dataclass(frozen=True)
class Line:
    data: bytes
    # True: must be stored or a duplicate; False: must be quarantined; None: either.
    good: bool | None


def csv_line(cells: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(cells)  # ends in CRLF, and quotes cells holding CR or LF
    return out.getvalue().encode("utf-8")


@st.composite
def valid_rows(draw: st.DrawFn) -> Line:
    item = draw(st.sampled_from([*CATALOG, "not-in-catalog"]))
    action = draw(st.sampled_from(["view", "save", "purchase", "like"]))
    cells = [f"u{draw(st.integers(0, 3))}", item, action, f"2024-01-{draw(st.integers(1, 3)):02d}"]
    return Line(csv_line(cells), item in CATALOG and action != "like")


# Any text that UTF-8 can encode; the leading "g" keeps the row from being blank.
cell_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@st.composite
def text_rows(draw: st.DrawFn) -> Line:
    cells = draw(st.lists(cell_text, min_size=1, max_size=7))
    cells[0] = "g" + cells[0]
    return Line(csv_line(cells), False if len(cells) != len(HEADER) else None)


@st.composite
def byte_rows(draw: st.DrawFn) -> Line:
    """Three to five cells, one of them random bytes without quotes, commas or line breaks;
    the line ends in LF or CRLF, so a file can mix both."""
    noise = draw(st.binary(min_size=1, max_size=16)).translate(None, b'",\r\n')
    cells = [b"u1", b"i1", b"view", b"2024-01-01", b"extra"][: draw(st.integers(3, 5))]
    cells[draw(st.integers(0, len(cells) - 1))] = b"b" + noise
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return Line(b",".join(cells) + ending, False if len(cells) != len(HEADER) else None)


rows = st.lists(st.one_of(valid_rows(), text_rows(), byte_rows()), max_size=25)


def quarantined_rows(path: Path | None) -> list[int]:
    if path is None:
        return []
    return [json.loads(line)["row"] for line in path.read_text(encoding="utf-8").split("\n")[:-1]]


@settings(max_examples=30, deadline=None)
@given(lines=rows)
def test_every_row_is_stored_duplicate_or_quarantined_once(lines: list[Line]) -> None:
    data = csv_line(HEADER) + b"".join(line.data for line in lines)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "work"
        path = Path(tmp) / "events.csv"
        path.write_bytes(data)
        with SQLiteStore(workdir / "store.db") as store:
            store.add_items([Item(item_id) for item_id in CATALOG])
            first = ingest_events(store, path, Settings(workdir=workdir))
            bad = quarantined_rows(first.quarantine_file)

            assert first.read == len(lines)
            assert first.stored + first.duplicates + first.quarantined == first.read
            assert len(bad) == first.quarantined == len(set(bad))
            assert all(1 <= row <= len(lines) for row in bad)
            for number, line in enumerate(lines, start=1):
                if line.good is not None:
                    assert (number in bad) == (not line.good), (number, line)
            assert store.counts()["events"] == first.stored

            second = ingest_events(store, path, Settings(workdir=workdir))
            assert second.read == first.read
            assert second.stored == 0
            assert second.duplicates == first.stored + first.duplicates
            assert sorted(quarantined_rows(second.quarantine_file)) == sorted(bad)
            assert store.counts()["events"] == first.stored
