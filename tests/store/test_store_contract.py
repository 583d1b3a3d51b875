"""The Store contract: every test here runs against SQLite and against PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from tastegraph.store import (
    SCHEMA_VERSION,
    Collection,
    Event,
    Item,
    Media,
    PostgresStore,
    SchemaVersionError,
    SQLiteStore,
    UnknownItemError,
    User,
    open_store,
)

AnyStore = SQLiteStore | PostgresStore


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    # Asked for by name, so a run of only the SQLite cases never starts a server.
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[AnyStore]:
    with open_store(store_url) as store:
        store.add_items([Item("a", "Red dress"), Item("b", "Blue shirt"), Item("c")])
        yield store


def event(
    event_id: str, item: str = "a", user: str = "u1", ts: float = 1_600_000_000.0, **kwargs: object
) -> Event:
    return Event(event_id, user, item, "save", 0.7, ts, **kwargs)  # type: ignore[arg-type]


def photo(item_id: str, uri: str, content_hash: str = "h1", width: int = 640) -> Media:
    return Media(item_id, uri, content_hash, width, 480)


def ids(events: list[Event]) -> list[str]:
    return [e.event_id for e in events]


# -- durability and idempotence ---------------------------------------------------------


def test_a_new_store_is_empty(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.counts() == dict.fromkeys(
            ("items", "media", "users", "collections", "events"), 0
        )
        assert store.last_event_seq() == 0
        assert store.events_after(0) == []


def test_acknowledged_writes_are_seen_by_a_fresh_store(store: AnyStore, store_url: str) -> None:
    assert store.append_events([event("e1"), event("e2", "b")]).stored == 2
    store.add_users([User("u2", {"age": 30})])
    with open_store(store_url) as other:
        assert ids(list(other.iter_events())) == ["e1", "e2"]
        assert other.get_item("b") == Item("b", "Blue shirt")
        assert other.known_user_ids(["u1", "u2", "u3"]) == {"u1", "u2"}


def test_resending_a_batch_is_a_no_op(store: AnyStore) -> None:
    batch = [event("e1"), event("e2", "b"), event("e3", "c")]
    store.append_events(batch)
    again = store.append_events([*batch, event("e4")])
    assert (again.stored, again.duplicates, again.conflicts) == (1, 3, [])
    assert store.counts()["events"] == 4
    assert store.known_event_ids(["e1", "e4", "e9"]) == {"e1", "e4"}


def test_duplicate_event_id_inside_one_batch_is_stored_once(store: AnyStore) -> None:
    result = store.append_events([event("e1"), event("e1", "b")])
    assert (result.stored, result.duplicates) == (1, 1)
    assert [e.item_id for e in store.iter_events()] == ["a"]


def test_an_empty_batch_writes_nothing(store: AnyStore) -> None:
    assert (store.append_events([]).stored, store.append_events([]).duplicates) == (0, 0)
    assert store.last_event_seq() == 0


def test_unknown_items_refuse_the_whole_batch(store: AnyStore) -> None:
    batch = [
        event("e1", user="new-user", collection_id="board-1"),
        event("e2", "zzz"),
        event("e3", "yyy"),
    ]
    with pytest.raises(UnknownItemError, match="zzz") as error:
        store.append_events(batch)
    assert error.value.item_ids == ["yyy", "zzz"]
    counts = store.counts()
    assert (counts["events"], counts["users"], counts["collections"]) == (0, 0, 0)
    assert store.last_event_seq() == 0


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a b", "", "x" * 129, "a\x00b"])
def test_ids_that_break_the_id_rule_are_refused_and_nothing_is_written(
    store: AnyStore, bad: str
) -> None:
    before = store.counts()
    for write in (
        lambda: store.add_items([Item("fine"), Item(bad)]),
        lambda: store.add_users([User(bad)]),
        lambda: store.add_collections([Collection(bad, "u1")]),
        lambda: store.append_events([event("e1"), event("e2", user=bad)]),
        lambda: store.append_events([event(bad)]),
    ):
        with pytest.raises(ValueError, match=r"id|characters long|control characters"):
            write()
    assert store.counts() == before


def test_events_create_users_and_collections(store: AnyStore) -> None:
    store.append_events(
        [
            event("e1", "b", user="u2", collection_id="board-1"),
            event("e2", "a", collection_id="board-1"),
            event("e3", "a", user="u2", collection_id="board-1"),
        ]
    )
    assert store.collection_items("board-1") == ["a", "b"]
    counts = store.counts()
    assert (counts["users"], counts["collections"], counts["collections:board"]) == (2, 1, 1)


# -- users, items, media, collections: duplicates, conflicts, replace ------------------


def test_profile_fills_a_user_first_seen_in_an_event(store: AnyStore) -> None:
    store.append_events([event("e1", user="u9")])
    assert store.add_users([User("u9", {"age": 30})]).stored == 1
    assert store.add_users([User("u9", {"age": 30})]).duplicates == 1
    assert store.add_users([User("u9", {"age": 31})]).conflicts == ["u9"]


def test_user_counts_within_one_batch(store: AnyStore) -> None:
    result = store.add_users(
        [User("u1"), User("u1", {"age": 30}), User("u1", {"age": 30}), User("u1", {"age": 31})]
    )
    assert (result.stored, result.duplicates, result.conflicts) == (2, 1, ["u1"])
    result = store.add_users([User("u1", {"age": 30}), User("u2"), User("u3", {"x": [1, "é"]})])
    assert (result.stored, result.duplicates, result.conflicts) == (2, 1, [])
    assert store.known_user_ids(["u1", "u2", "u3", "u4"]) == {"u1", "u2", "u3"}


def test_changed_item_is_a_conflict_unless_replaced(store: AnyStore) -> None:
    assert store.add_items([Item("a", "Red dress")]).duplicates == 1
    assert store.add_items([Item("a", "Green dress")]).conflicts == ["a"]
    assert store.get_item("a") == Item("a", "Red dress")
    assert store.add_items([Item("a", "Green dress")], replace=True).stored == 1
    assert store.get_item("a") == Item("a", "Green dress")


def test_item_counts_within_one_batch(store: AnyStore) -> None:
    batch = [
        Item("d", "Coat"),
        Item("d", "Coat"),
        Item("d", "Jacket"),
        Item("a", "Red dress"),
        Item("b", "Blue shirt", attributes={"colour": "Blue"}),
        Item("c", price=9.99),
    ]
    result = store.add_items(batch)
    assert (result.stored, result.duplicates, result.conflicts) == (1, 2, ["d", "b", "c"])
    assert store.get_item("d") == Item("d", "Coat")

    replaced = store.add_items(batch, replace=True)
    assert (replaced.stored, replaced.duplicates, replaced.conflicts) == (3, 3, [])
    assert store.get_item("d") == Item("d", "Jacket")
    assert store.get_item("c") == Item("c", price=9.99)


def test_item_round_trips_attributes_and_price(store: AnyStore) -> None:
    item = Item(
        "d", "Coat", "Warm wool coat, «bien chaud»", {"colour": "Black", "sizes": [36, 38]}, 59.5
    )
    store.add_items([item])
    assert store.get_item("d") == item
    assert store.add_items([item]).duplicates == 1
    assert store.get_item("missing") is None
    assert store.known_item_ids(["a", "d", "missing"]) == {"a", "d"}


def test_whole_numbers_may_stand_for_floats(store: AnyStore) -> None:
    store.add_items([Item("d", price=10), Item("e", price=9.5)])  # type: ignore[arg-type]
    assert store.add_items([Item("d", price=10.0)]).duplicates == 1
    store.add_media([photo("d", "/d", width=640), Media("e", "/e", "h", 640.0, 480)])  # type: ignore[arg-type]
    store.append_events([event("e1", ts=1_600_000_000), event("e2", ts=1_600_000_000.5)])
    assert [e.ts for e in store.iter_events()] == [1_600_000_000.0, 1_600_000_000.5]
    assert store.get_item("d") == Item("d", price=10.0)


def test_items_iterate_in_byte_order_of_id(store: AnyStore) -> None:
    store.add_items([Item(i) for i in ("B", "a10", "a9", "Z", "0", "_", "a.b", "a-b")])
    expected = sorted(["a", "b", "c", "B", "a10", "a9", "Z", "0", "_", "a.b", "a-b"])
    assert [item.id for item in store.iter_items()] == expected


def test_media_duplicates_and_changed_files(store: AnyStore) -> None:
    first = [photo("a", "/img/a1.jpg"), photo("a", "/img/a0.jpg"), photo("b", "/img/b.jpg")]
    assert store.add_media(first).stored == 3
    again = store.add_media([*first, photo("a", "/img/a1.jpg", "h2")])
    assert (again.stored, again.duplicates, again.conflicts) == (1, 3, [])
    assert store.media_for("a") == [photo("a", "/img/a0.jpg"), photo("a", "/img/a1.jpg", "h2")]
    assert store.media_for("c") == []
    assert [(m.item_id, m.uri) for m in store.iter_media()] == [
        ("a", "/img/a0.jpg"),
        ("a", "/img/a1.jpg"),
        ("b", "/img/b.jpg"),
    ]


def test_set_media_makes_the_given_photos_the_only_ones(store: AnyStore) -> None:
    store.add_media([photo("a", "/a1"), photo("a", "/a2"), photo("b", "/b1")])
    result = store.set_media(["a", "c"], [photo("a", "/a2", width=800), photo("c", "/c1")])
    assert (result.stored, result.duplicates) == (2, 0)
    assert store.media_for("a") == [photo("a", "/a2", width=800)]
    assert store.media_for("b") == [photo("b", "/b1")]  # not named: untouched
    assert store.media_for("c") == [photo("c", "/c1")]
    assert store.set_media(["a"], []).stored == 0
    assert store.media_for("a") == []
    assert store.counts()["media"] == 2


def test_collections_are_idempotent(store: AnyStore) -> None:
    baskets = [Collection("k1", "u1", "Basket", "basket"), Collection("k2", "u1", kind="basket")]
    assert store.add_collections(baskets).stored == 2
    assert store.add_collections(baskets).duplicates == 2
    result = store.add_collections([Collection("k3", "u2"), Collection("k3", "u3", "Other")])
    assert (result.stored, result.duplicates) == (1, 1)
    counts = store.counts()
    assert (counts["collections:basket"], counts["collections:board"]) == (2, 1)
    assert store.known_user_ids(["u1", "u2", "u3", "u4"]) == {"u1", "u2", "u3"}  # owners
    assert list(store.iter_collections()) == [
        Collection("k1", "u1", "Basket", "basket"),
        Collection("k2", "u1", None, "basket"),
        Collection("k3", "u2", None, "board"),
    ]


def test_users_iterate_in_id_order_with_their_attributes(store: AnyStore) -> None:
    store.add_users([User("u2", {"age": 31}), User("u1")])
    store.append_events([event("e1", user="u0")])  # a user first seen in an event
    assert list(store.iter_users()) == [User("u0"), User("u1"), User("u2", {"age": 31})]


# -- schema version ---------------------------------------------------------------------


def set_schema_version(url: str, version: int) -> None:
    if url.startswith("sqlite:"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute(f"PRAGMA user_version = {version}")
        return
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE tastegraph_meta SET value = %s WHERE key = 'schema_version'", (str(version),)
        )


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, SCHEMA_VERSION - 1])
def test_other_schema_version_is_refused_naming_both(store_url: str, version: int) -> None:
    open_store(store_url).close()
    with open_store(store_url) as store:  # the same version opens again
        assert store.counts()["items"] == 0
    set_schema_version(store_url, version)
    with pytest.raises(SchemaVersionError) as error:
        open_store(store_url)
    assert f"schema version {version}" in str(error.value)
    assert f"schema version {SCHEMA_VERSION}" in str(error.value)


# -- the event log ----------------------------------------------------------------------


def test_events_after_follows_the_log_in_stored_order(store: AnyStore) -> None:
    first = [event("e3", ts=30.0), event("e1", "b", ts=10.0)]
    second = [event("e0", "c", ts=5.0), event("e2", ts=20.0)]
    store.append_events(first)
    position = store.last_event_seq()
    assert position > 0
    store.append_events(second)
    assert ids(store.events_after(0)) == ["e3", "e1", "e0", "e2"]
    assert ids(store.events_after(position)) == ["e0", "e2"]
    end = store.last_event_seq()
    assert end > position
    store.append_events(first)  # only duplicates: the log does not move
    assert store.last_event_seq() == end
    assert store.events_after(end) == []
    assert ids(store.events_after(0, through=position)) == ["e3", "e1"]
    assert ids(store.events_after(position - 1, through=position + 1)) == ["e1", "e0"]


def test_a_follower_wakes_when_another_store_appends(store: AnyStore, store_url: str) -> None:
    """What a server process following the log waits on: it returns once another process
    may have appended (a NOTIFY on PostgreSQL, the poll interval on SQLite), and in any
    case after its timeout. A notice names the log position it announces (PostgreSQL); a
    store that polls names none."""
    assert store.wait_for_events(0.05) is None  # nothing appended: returns after the timeout
    woke = threading.Event()
    named: list[int | None] = []

    def follow() -> None:
        named.append(store.wait_for_events(120.0))  # only a wake-up ends it within the join
        woke.set()

    follower = threading.Thread(target=follow)
    follower.start()
    with open_store(store_url) as other:
        other.append_events([event("e1")])
        other.append_events([event("e1")])  # a duplicate: stores nothing, so no notice
    follower.join(timeout=30)
    assert woke.is_set() and ids(store.events_after(0)) == ["e1"]
    expected = store.last_event_seq() if isinstance(store, PostgresStore) else None
    assert named == [expected]
    assert store.wait_for_events(0.05) is None


def test_iter_events_is_in_timestamp_order_through_a_position(store: AnyStore) -> None:
    store.append_events([event("e3", ts=30.0), event("e1", "b", ts=10.0)])
    position = store.last_event_seq()
    store.append_events([event("e0", "c", ts=5.0), event("e2", ts=20.0, context={"q": "red"})])
    assert ids(list(store.iter_events())) == ["e0", "e1", "e2", "e3"]
    assert ids(list(store.iter_events(through_seq=position))) == ["e1", "e3"]
    assert list(store.iter_events(through_seq=0)) == []
    stored = next(e for e in store.iter_events() if e.event_id == "e2")
    assert stored == event("e2", ts=20.0, context={"q": "red"})


def test_concurrent_appends_give_a_gap_free_commit_ordered_log(
    store: AnyStore, store_url: str
) -> None:
    """Two writers append at once while a reader follows the log by position; every
    event is seen exactly once, and the log has no holes."""
    batches, size = 30, 4

    def write(name: str) -> None:
        with open_store(store_url) as writer:
            previous: list[Event] = []
            for b in range(batches):
                # New users both writers create, in opposite orders; one event re-sent.
                shared = [f"shared-{b}-{n}" for n in ((0, 1) if name == "x" else (1, 0))]
                batch = [
                    event(f"{name}-{b}-{i}", "abc"[i % 3], user=shared[i % 2]) for i in range(size)
                ]
                writer.append_events(batch + previous[:1])
                previous = batch

    writers = [threading.Thread(target=write, args=(name,)) for name in ("x", "y")]
    for thread in writers:
        thread.start()
    seen: list[str] = []
    while any(thread.is_alive() for thread in writers):
        seen += ids(store.events_after(len(seen)))
    for thread in writers:
        thread.join()
    seen += ids(store.events_after(len(seen)))

    assert len(seen) == len(set(seen)) == 2 * batches * size
    assert store.last_event_seq() == len(seen)
    assert ids(store.events_after(0)) == seen
