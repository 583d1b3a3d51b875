"""Catalogs and event logs ingested end to end into a real SQLite store."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tastegraph.config import Settings
from tastegraph.ingest import IngestReport, ingest_events, ingest_items
from tastegraph.store import Event, Item, Media, SQLiteStore

ITEM_HEADER = ["id", "title", "description", "image", "price", "colour"]
EVENT_HEADER = ["user", "item", "action", "rating", "weight", "timestamp", "collection"]
EVENT_HEADER += ["event_id", "device"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(workdir=tmp_path / "work")


@pytest.fixture
def store(settings: Settings) -> Iterator[SQLiteStore]:
    with SQLiteStore(settings.workdir / "store.db") as store:
        yield store


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return path


def write_photo(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")
    return path


def quarantined(report: IngestReport) -> list[dict[str, Any]]:
    """The quarantine file's lines, in row order."""
    assert report.quarantine_file is not None and report.quarantine_file.is_file()
    lines = report.quarantine_file.read_text(encoding="utf-8").split("\n")[:-1]
    return sorted((json.loads(line) for line in lines), key=lambda problem: problem["row"])


def rows_and_fields(report: IngestReport) -> list[tuple[int, str | None]]:
    return [(problem["row"], problem["field"]) for problem in quarantined(report)]


def counts(report: IngestReport) -> tuple[int, int, int, int]:
    return (report.read, report.stored, report.duplicates, report.quarantined)


# -- items --------------------------------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """Three good items (two with photos) and one bad row of each kind."""
    photos = tmp_path / "shop" / "photos"
    write_photo(photos / "a.jpg", (40, 30), (200, 0, 0))
    write_photo(photos / "b.jpg", (20, 50), (0, 0, 200))
    (photos / "broken.jpg").write_text("not a photo")
    rows: list[list[Any]] = [
        ["a", "Alpha", "soft", "photos/a.jpg", "10.5", "red"],  # 1 stored
        ["b", "Beta", None, "photos/b.jpg", None, "blue"],  # 2 stored
        [None, "No id", None, None, "1", None],  # 3 missing id
        ["d", "Delta", None, "photos/a.jpg", "cheap", None],  # 4 bad price
        ["e", "Echo", None, "photos/absent.jpg", "1", None],  # 5 photo missing
        ["f", "Fox", None, "photos/broken.jpg", "1", None],  # 6 photo does not decode
        ["a", "Alpha", "soft", "photos/a.jpg", "10.5", "red"],  # 7 same again: duplicate
        ["b", "Beta v2", None, "photos/b.jpg", None, "blue"],  # 8 same id, other content
        ["g", "Golf", None, None, "3", None],  # 9 stored, no photo
        ["h", "too", "many", None, "1", None, "cells"],  # 10 wrong field count
    ]
    return write_csv(tmp_path / "shop" / "items.csv", ITEM_HEADER, rows)


def assert_quarantine_file_named(report: IngestReport, settings: Settings, prefix: str) -> None:
    """In the workdir's quarantine folder, named after the source file (plus a path hash)."""
    assert report.quarantine_file is not None
    assert report.quarantine_file.parent == settings.quarantine_dir
    assert report.quarantine_file.name.startswith(prefix)


CATALOG_PROBLEMS = [(3, "id"), (4, "price"), (5, "image"), (6, "image"), (8, "id"), (10, None)]


def test_catalog_counts_and_quarantine(
    store: SQLiteStore, settings: Settings, catalog: Path
) -> None:
    report = ingest_items(store, catalog, settings)
    assert counts(report) == (10, 3, 1, 6)
    assert_quarantine_file_named(report, settings, "items-items.csv-")
    problems = quarantined(report)
    assert rows_and_fields(report) == CATALOG_PROBLEMS
    assert all(problem["file"] == str(catalog) for problem in problems)
    reasons = {problem["row"]: problem["reason"] for problem in problems}
    assert reasons[3] == "missing id"
    assert "price is not a number" in reasons[4]
    assert reasons[5].startswith("image file does not exist")
    assert reasons[6].startswith("image does not decode")
    assert "first at row 2" in reasons[8]
    assert reasons[10] == "row has 7 fields but the header has 6"


def test_catalog_good_rows_are_stored_with_their_photos(
    store: SQLiteStore, settings: Settings, catalog: Path
) -> None:
    ingest_items(store, catalog, settings)
    assert store.get_item("a") == Item("a", "Alpha", "soft", {"colour": "red"}, 10.5)
    assert store.get_item("b") == Item("b", "Beta", None, {"colour": "blue"}, None)
    assert store.get_item("g") == Item("g", "Golf", None, {}, 3.0)
    for absent in ("d", "e", "f", "h"):
        assert store.get_item(absent) is None
    photo = catalog.parent / "photos" / "a.jpg"
    digest = hashlib.sha256(photo.read_bytes()).hexdigest()
    assert store.media_for("a") == [Media("a", str(photo.resolve()), digest, 40, 30)]
    assert [(m.width, m.height) for m in store.media_for("b")] == [(20, 50)]
    assert store.media_for("g") == []
    assert store.counts()["items"] == 3
    assert store.counts()["media"] == 2


def test_catalog_rerun_is_idempotent(store: SQLiteStore, settings: Settings, catalog: Path) -> None:
    first = ingest_items(store, catalog, settings)
    second = ingest_items(store, catalog, settings)
    assert counts(second) == (10, 0, first.stored + first.duplicates, first.quarantined)
    assert rows_and_fields(second) == CATALOG_PROBLEMS
    assert store.counts()["items"] == 3
    assert store.counts()["media"] == 2


def test_clean_rerun_removes_the_stale_quarantine_file(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "items.csv", ["id", "price"], [["a", "1"], ["b", "lots"]])
    stale = ingest_items(store, path, settings).quarantine_file
    assert stale is not None and stale.is_file()
    write_csv(path, ["id", "price"], [["a", "1"], ["b", "2"]])
    report = ingest_items(store, path, settings)
    assert counts(report) == (2, 1, 1, 0)
    assert report.quarantine_file is None
    assert not stale.exists()


def test_changed_item_is_quarantined_by_default_and_updated_with_replace(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    write_photo(tmp_path / "a.jpg", (10, 10), (1, 2, 3))
    header = ["id", "title", "image"]
    path = write_csv(tmp_path / "items.csv", header, [["a", "Old", "a.jpg"], ["b", "Same", None]])
    ingest_items(store, path, settings)
    write_csv(path, header, [["a", "New", "a.jpg"], ["b", "Same", None]])

    refused = ingest_items(store, path, settings)
    assert counts(refused) == (2, 0, 1, 1)
    (problem,) = quarantined(refused)
    assert (problem["row"], problem["field"]) == (1, "id")
    assert "already stored with different content" in problem["reason"]
    assert store.get_item("a") == Item("a", "Old")

    replaced = ingest_items(store, path, settings, replace=True)
    assert counts(replaced) == (2, 1, 1, 0)
    assert store.get_item("a") == Item("a", "New")
    assert len(store.media_for("a")) == 1


def test_repeat_of_a_row_with_a_bad_photo_is_not_a_duplicate(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    rows = [["a", "absent.jpg"], ["a", "absent.jpg"]]
    report = ingest_items(store, write_csv(tmp_path / "items.csv", ["id", "image"], rows), settings)
    assert store.get_item("a") is None
    assert counts(report) == (2, 0, 0, 2)
    assert not report.anything_usable


# -- events -------------------------------------------------------------------------------

# Rows without event_id get derived ids; rows 7 and 8 are identical and both kept.
EVENT_ROWS: list[list[Any]] = [
    ["u1", "i1", "view", None, None, "2024-01-01T10:00:00Z", None, None, "mobile"],  # 1
    ["u1", "i2", "purchase", None, "2.0", "1704103200", "basket-1", None, None],  # 2
    ["u2", "i1", None, "4", None, "2024-01-02", None, None, None],  # 3 rating -> save
    ["u2", "zzz", "view", None, None, "2024-01-02", None, None, None],  # 4 unknown item
    ["u2", "i1", "like", None, None, "2024-01-02", None, None, None],  # 5 unknown action
    ["u2", "i1", "view", None, None, "someday", None, None, None],  # 6 bad timestamp
    ["u3", "i2", "view", None, None, "2024-01-03", None, None, None],  # 7
    ["u3", "i2", "view", None, None, "2024-01-03", None, None, None],  # 8 same as 7
    ["u4", "i1", "save", None, None, "2024-01-04", None, "e-9", None],  # 9 explicit id
    [None, "i1", "view", None, None, "2024-01-04", None, None, None],  # 10 no user
]
EVENT_PROBLEMS = [(4, "item"), (5, "action"), (6, "timestamp"), (10, "user")]


def event_dicts() -> list[dict[str, Any]]:
    return [dict(zip(EVENT_HEADER, row, strict=True)) for row in EVENT_ROWS]


def write_events_csv(path: Path) -> Path:
    return write_csv(path, EVENT_HEADER, EVENT_ROWS)


def write_events_jsonl(path: Path) -> Path:
    lines = [json.dumps({k: v for k, v in row.items() if v is not None}) for row in event_dicts()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_events_parquet(path: Path) -> Path:
    pq.write_table(pa.Table.from_pylist(event_dicts()), path)
    return path


WRITERS = {
    "csv": write_events_csv,
    "jsonl": write_events_jsonl,
    "parquet": write_events_parquet,
}


def ingest_catalog(store: SQLiteStore, settings: Settings, folder: Path, *ids: str) -> None:
    path = write_csv(folder / "catalog.csv", ["id"], [[item_id] for item_id in ids])
    assert ingest_items(store, path, settings).stored == len(ids)


@pytest.fixture(params=sorted(WRITERS))
def event_log(
    request: pytest.FixtureRequest, store: SQLiteStore, settings: Settings, tmp_path: Path
) -> Path:
    """The same event rows as CSV, JSONL or Parquet, with items i1 and i2 in the catalog."""
    ingest_catalog(store, settings, tmp_path, "i1", "i2")
    return WRITERS[request.param](tmp_path / f"events.{request.param}")


def stored_events(store: SQLiteStore) -> dict[tuple[str, str, float], list[Event]]:
    by_key: dict[tuple[str, str, float], list[Event]] = {}
    for event in store.iter_events():
        by_key.setdefault((event.user_id, event.item_id, event.ts), []).append(event)
    return by_key


def at(year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=UTC).timestamp()


def test_event_counts_and_quarantine(
    store: SQLiteStore, settings: Settings, event_log: Path
) -> None:
    report = ingest_events(store, event_log, settings)
    assert counts(report) == (10, 6, 0, 4)
    assert_quarantine_file_named(report, settings, f"events-{event_log.name}-")
    assert rows_and_fields(report) == EVENT_PROBLEMS
    problems = {problem["row"]: problem for problem in quarantined(report)}
    assert all(problem["file"] == str(event_log) for problem in problems.values())
    assert "'zzz' is not in the catalog" in problems[4]["reason"]
    assert "unknown action 'like'" in problems[5]["reason"]
    assert "cannot parse timestamp 'someday'" in problems[6]["reason"]
    assert problems[10]["reason"] == "missing user"


def test_events_are_stored_as_written(
    store: SQLiteStore, settings: Settings, event_log: Path
) -> None:
    ingest_events(store, event_log, settings)
    events = stored_events(store)
    (view,) = events["u1", "i1", at(2024, 1, 1, 10)]
    assert (view.action, view.weight, view.context) == ("view", 0.1, {"device": "mobile"})
    assert view.event_id.startswith("row-")
    (purchase,) = events["u1", "i2", 1704103200.0]
    assert (purchase.action, purchase.weight, purchase.collection_id) == (
        "purchase",
        2.0,
        "basket-1",
    )
    (rated,) = events["u2", "i1", at(2024, 1, 2)]
    assert (rated.action, rated.weight) == ("save", 0.8)
    twins = events["u3", "i2", at(2024, 1, 3)]
    assert len(twins) == 2 and twins[0].event_id != twins[1].event_id
    (explicit,) = events["u4", "i1", at(2024, 1, 4)]
    assert explicit.event_id == "e-9"
    assert store.collection_items("basket-1") == ["i2"]
    assert store.counts()["users"] == 4


def test_event_rerun_stores_nothing_new(
    store: SQLiteStore, settings: Settings, event_log: Path
) -> None:
    ingest_events(store, event_log, settings)
    before = sorted(event.event_id for event in store.iter_events())
    report = ingest_events(store, event_log, settings)
    assert counts(report) == (10, 0, 6, 4)
    assert rows_and_fields(report) == EVENT_PROBLEMS
    assert sorted(event.event_id for event in store.iter_events()) == before


def test_events_in_small_batches_give_the_same_result(store: SQLiteStore, tmp_path: Path) -> None:
    settings = Settings(workdir=tmp_path / "work", ingest_batch_size=3)
    ingest_catalog(store, settings, tmp_path, "i1", "i2")
    report = ingest_events(store, write_events_csv(tmp_path / "events.csv"), settings)
    assert counts(report) == (10, 6, 0, 4)
    assert rows_and_fields(report) == EVENT_PROBLEMS


def test_rating_scale_is_a_parameter(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    ingest_catalog(store, settings, tmp_path, "i1")
    rows = [["u1", "i1", "8", "2024-01-01"], ["u1", "i1", "11", "2024-01-02"]]
    path = write_csv(tmp_path / "ratings.csv", ["user", "item", "rating", "timestamp"], rows)
    report = ingest_events(store, path, settings, rating_max=10.0)
    assert counts(report) == (2, 1, 0, 1)
    assert [(e.action, e.weight) for e in store.iter_events()] == [("save", 0.8)]
    assert rows_and_fields(report) == [(2, "rating")]


def test_parquet_with_typed_columns(store: SQLiteStore, settings: Settings, tmp_path: Path) -> None:
    ingest_catalog(store, settings, tmp_path, "7")
    table = pa.table(
        {
            "user": pa.array([1, 2], pa.int64()),
            "item": pa.array([7, 7], pa.int64()),
            "action": ["view", "click"],
            "weight": pa.array([None, 0.5], pa.float64()),
            "timestamp": pa.array(
                [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, 12, tzinfo=UTC)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    report = ingest_events(store, path, settings)
    assert counts(report) == (2, 2, 0, 0)
    events = list(store.iter_events())
    assert [(e.user_id, e.item_id, e.action, e.weight) for e in events] == [
        ("1", "7", "view", 0.1),
        ("2", "7", "click", 0.5),
    ]
    assert [e.ts for e in events] == [at(2024, 1, 1), at(2024, 1, 2, 12)]


def test_events_before_their_catalog_are_all_quarantined(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    report = ingest_events(store, write_events_csv(tmp_path / "events.csv"), settings)
    assert counts(report) == (10, 0, 0, 10)
    assert not report.anything_usable
    assert store.counts()["events"] == 0


# -- rows that crash an ingest instead of being quarantined -------------------------------


def test_row_with_wrong_field_count_and_invalid_utf8_is_quarantined(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    ingest_catalog(store, settings, tmp_path, "i1")
    path = tmp_path / "events.csv"
    path.write_bytes(b"user,item,action,timestamp\nu1,i1,view,2024-01-01\n\xff\xfe,x\n")
    report = ingest_events(store, path, settings)
    assert counts(report) == (2, 1, 0, 1)
    assert rows_and_fields(report) == [(2, None)]


def test_jsonl_lone_surrogate_is_quarantined(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    ingest_catalog(store, settings, tmp_path, "i1")
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"user": "u1", "item": "i1", "action": "view", "timestamp": "2024-01-01"}\n'
        '{"user": "\\ud800", "item": "i1", "action": "view", "timestamp": "2024-01-01"}\n'
    )
    report = ingest_events(store, path, settings)
    assert counts(report) == (2, 1, 0, 1)
    assert rows_and_fields(report) == [(2, "user")]


def test_parquet_extra_date_column_does_not_crash(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"id": ["a"], "released": [date(2024, 1, 1)]}), path)
    report = ingest_items(store, path, settings)
    assert report.read == 1
    assert report.stored + report.quarantined == 1


def test_replacing_an_item_replaces_its_photo(
    store: SQLiteStore, settings: Settings, tmp_path: Path
) -> None:
    photos = tmp_path / "replace"
    photos.mkdir()
    for name, colour in (("old.jpg", "red"), ("new.jpg", "blue")):
        Image.new("RGB", (8, 8), colour).save(photos / name)
    first = write_csv(photos / "v1.csv", ["id", "title", "image"], [["r1", "Shirt", "old.jpg"]])
    second = write_csv(photos / "v2.csv", ["id", "title", "image"], [["r1", "Shirt v2", "new.jpg"]])
    ingest_items(store, first, settings)
    ingest_items(store, second, settings, replace=True)
    assert [Path(m.uri).name for m in store.media_for("r1")] == ["new.jpg"]
    no_photo = write_csv(photos / "v3.csv", ["id", "title", "image"], [["r1", "Shirt v3", ""]])
    ingest_items(store, no_photo, settings, replace=True)
    assert store.media_for("r1") == []
