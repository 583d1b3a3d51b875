from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tastegraph.store import (
    SCHEMA_VERSION,
    Collection,
    Event,
    Item,
    SchemaVersionError,
    SQLiteStore,
    UnknownItemError,
    User,
    open_store,
)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "store.db")
    store.add_items([Item("a", "Red dress"), Item("b", "Blue shirt"), Item("c")])
    yield store
    store.close()


def event(event_id: str, item: str = "a", user: str = "u1", **kwargs: object) -> Event:
    return Event(event_id, user, item, "save", 0.7, 1_600_000_000.0, **kwargs)  # type: ignore[arg-type]


def test_store_is_wal_and_syncs_every_commit(store: SQLiteStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_acknowledged_events_are_visible_to_a_fresh_connection(store: SQLiteStore) -> None:
    result = store.append_events([event("e1"), event("e2", "b")])
    assert result.stored == 2
    with SQLiteStore(store.path) as other:
        assert [e.event_id for e in other.iter_events()] == ["e1", "e2"]


def test_resending_a_batch_is_a_no_op(store: SQLiteStore) -> None:
    batch = [event("e1"), event("e2", "b"), event("e3", "c")]
    store.append_events(batch)
    again = store.append_events([*batch, event("e4")])
    assert (again.stored, again.duplicates) == (1, 3)
    assert store.counts()["events"] == 4


def test_duplicate_event_id_inside_one_batch_is_stored_once(store: SQLiteStore) -> None:
    result = store.append_events([event("e1"), event("e1", "b")])
    assert (result.stored, result.duplicates) == (1, 1)
    assert [e.item_id for e in store.iter_events()] == ["a"]


def test_unknown_item_rejects_the_whole_batch(store: SQLiteStore) -> None:
    with pytest.raises(UnknownItemError, match="zzz"):
        store.append_events([event("e1"), event("e2", "zzz")])
    assert store.counts()["events"] == 0


def test_events_create_users_and_collections(store: SQLiteStore) -> None:
    store.append_events(
        [event("e1", collection_id="board-1"), event("e2", "b", collection_id="board-1")]
    )
    assert store.collection_items("board-1") == ["a", "b"]
    counts = store.counts()
    assert (counts["users"], counts["collections"]) == (1, 1)


def test_profile_fills_a_user_first_seen_in_an_event(store: SQLiteStore) -> None:
    store.append_events([event("e1", user="u9")])
    assert store.add_users([User("u9", {"age": 30})]).stored == 1
    assert store.add_users([User("u9", {"age": 30})]).duplicates == 1
    assert store.add_users([User("u9", {"age": 31})]).conflicts == ["u9"]


def test_changed_item_is_a_conflict_unless_replaced(store: SQLiteStore) -> None:
    assert store.add_items([Item("a", "Red dress")]).duplicates == 1
    assert store.add_items([Item("a", "Green dress")]).conflicts == ["a"]
    assert store.get_item("a") == Item("a", "Red dress")
    assert store.add_items([Item("a", "Green dress")], replace=True).stored == 1
    assert store.get_item("a") == Item("a", "Green dress")


def test_item_round_trips_attributes_and_price(store: SQLiteStore) -> None:
    item = Item("d", "Coat", "Warm wool coat", {"colour": "Black", "sizes": [36, 38]}, 59.5)
    store.add_items([item])
    assert store.get_item("d") == item
    assert store.get_item("missing") is None


def test_collections_are_idempotent(store: SQLiteStore) -> None:
    baskets = [Collection("k1", "u1", "Basket", "basket"), Collection("k2", "u1", kind="basket")]
    assert store.add_collections(baskets).stored == 2
    assert store.add_collections(baskets).duplicates == 2
    assert store.counts()["collections:basket"] == 2


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, SCHEMA_VERSION - 1])
def test_other_schema_version_is_refused_naming_both(tmp_path: Path, version: int) -> None:
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {version}")
    with pytest.raises(SchemaVersionError) as error:
        SQLiteStore(path)
    assert f"schema version {version}" in str(error.value)
    assert f"schema version {SCHEMA_VERSION}" in str(error.value)


def test_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown action 'like'"):
        Event("e1", "u1", "a", "like", 1.0, 0.0)


def test_open_store_by_url(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        assert store.path == tmp_path / "x.db"
    with pytest.raises(NotImplementedError, match="PostgreSQL"):
        open_store("postgresql://localhost/tastegraph")
    with pytest.raises(ValueError, match="no scheme"):
        open_store(str(tmp_path / "x.db"))
