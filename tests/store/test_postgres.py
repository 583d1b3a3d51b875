"""What only the PostgreSQL store promises; the shared contract is in test_store_contract.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest

from tastegraph.store import (
    EVENTS_CHANNEL,
    Event,
    Item,
    PostgresStore,
    SchemaVersionError,
    StoreUnavailableError,
    open_store,
)
from tastegraph.store.postgres import EVENT_LOG_LOCK

if TYPE_CHECKING:
    from conftest import PostgresServer


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    with PostgresStore(postgres_url) as store:
        store.add_items([Item("a"), Item("b")])
        yield store


def event(event_id: str, item: str = "a") -> Event:
    return Event(event_id, "u1", item, "click", 1.0, 1_600_000_000.0)


def test_open_store_takes_both_schemes(postgres_url: str) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        with open_store(url) as store:
            assert isinstance(store, PostgresStore)


def test_a_bad_url_is_a_value_error_that_hides_the_password() -> None:
    with pytest.raises(ValueError, match="bad PostgreSQL store URL") as error:
        open_store("postgresql://me:s3cret@localhost/db?no_such_option=1")
    assert "s3cret" not in str(error.value)
    assert "***" in str(error.value)
    with pytest.raises(ValueError, match="bad PostgreSQL store URL") as error:
        open_store("postgresql:///db?password=s3cret&no_such_option=1")
    assert "s3cret" not in str(error.value)


def test_an_unreachable_server_names_the_socket() -> None:
    with pytest.raises(StoreUnavailableError, match="/no/such/dir"):
        open_store("postgresql:///db?host=/no/such/dir&port=5432&user=postgres")


def test_appends_notify_listeners_with_the_last_seq(
    store: PostgresStore, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {EVENTS_CHANNEL}")
        store.append_events([event("e1"), event("e2", "b")])
        store.append_events([event("e1")])  # only a duplicate: no notification
        store.append_events([event("e3")])
        payloads = [n.payload for n in listener.notifies(timeout=2.0, stop_after=2)]
    assert payloads == ["2", "3"]


def test_appends_wait_for_the_event_log_lock(store: PostgresStore, postgres_url: str) -> None:
    done = threading.Event()
    with psycopg.connect(postgres_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (EVENT_LOG_LOCK,))
        appender = threading.Thread(target=lambda: (store.append_events([event("e1")]), done.set()))
        appender.start()
        assert not done.wait(0.5)
        assert store.last_event_seq() == 0
    # Leaving the block commits the holder's transaction, which releases the lock.
    assert done.wait(10.0)
    appender.join()
    assert store.last_event_seq() == 1


def test_iterators_stream_through_a_server_side_cursor(
    store: PostgresStore, postgres_url: str
) -> None:
    store.append_events([event(f"e{i:05}") for i in range(5000)])
    events = store.iter_events()
    assert next(events).event_id == "e00000"
    with psycopg.connect(postgres_url, autocommit=True) as observer:
        cursors = observer.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE 'FETCH FORWARD%'"
        ).fetchall()
    assert len(cursors) == 1
    assert len(list(events)) == 4999  # the rest, fetched a batch at a time


def test_tables_without_a_version_are_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY)")
    with pytest.raises(SchemaVersionError, match="schema version 0"):
        PostgresStore(postgres_url)


def test_commits_stay_synchronous_under_a_server_default_of_off(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f"ALTER DATABASE {dbname} SET synchronous_commit = off")
    with PostgresStore(postgres_url) as store, store._pool.connection() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


def test_two_stores_open_an_empty_database_at_once(postgres_url: str) -> None:
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            PostgresStore(postgres_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with PostgresStore(postgres_url) as store:
        assert store.counts()["events"] == 0


def test_a_restarted_server_fails_writes_clearly_and_the_store_recovers(
    store: PostgresStore, postgres_server: PostgresServer
) -> None:
    """While the server is down a write is refused, not hung, and nothing is half-written;
    once it is back the same store object writes again (its pool replaces dead
    connections)."""
    store.append_events([event("e1")])
    postgres_server.stop()
    try:
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            store.append_events([event("e2")])
        with pytest.raises(StoreUnavailableError):
            store.last_event_seq()
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 60  # the pool reconnects, backing off while it could not
    while True:
        try:
            assert store.append_events([event("e2")]).stored == 1
            break
        except StoreUnavailableError:  # what a client gets meanwhile: a clear, retryable no
            assert time.monotonic() < deadline, "the store never recovered"
            time.sleep(0.5)
    assert [e.event_id for e in store.events_after(0)] == ["e1", "e2"]
