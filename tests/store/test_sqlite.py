"""What only the SQLite store promises; the shared contract is in test_store_contract.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tastegraph.store import SCHEMA_VERSION, Event, SQLiteStore, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "store.db") as store:
        yield store


def test_store_is_wal_and_syncs_every_commit(store: SQLiteStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown action 'like'"):
        Event("e1", "u1", "a", "like", 1.0, 0.0)


def test_open_store_by_url(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        assert isinstance(store, SQLiteStore)
        assert store.path == tmp_path / "x.db"
    with pytest.raises(ValueError, match="no scheme"):
        open_store(str(tmp_path / "x.db"))
    with pytest.raises(ValueError, match="unknown store scheme 'mysql'"):
        open_store("mysql://localhost/tastegraph")
