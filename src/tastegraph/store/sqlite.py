"""The embedded default store: one SQLite file in WAL mode, durable on every commit."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tastegraph.store.base import (
    SCHEMA_VERSION,
    Collection,
    Event,
    Item,
    Media,
    User,
    WriteResult,
    check_ids,
)
from tastegraph.store.sql import (
    ACTIONS_SQL,
    ITEM_COLUMNS,
    MEDIA_COLUMNS,
    USER_COLUMNS,
    SQLStore,
    check_collections,
    check_event_ids,
    event_row,
    ids_of,
    item_content,
    item_from_row,
    media_content,
    media_from_row,
    media_row,
    plan_items,
    plan_media,
    plan_users,
    refuse_unknown_items,
    schema_version_error,
    stale_media,
    to_json,
    user_from_row,
)

# How often a process following the log looks for new events: a cheap max(seq) lookup,
# often enough that another process sees an event within about 20 ms.
POLL_SECONDS = 0.02

SCHEMA = f"""
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    title TEXT,
    description TEXT,
    attributes TEXT NOT NULL DEFAULT '{{}}',
    price REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE media (
    item_id TEXT NOT NULL REFERENCES items(id),
    uri TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (item_id, uri)
) WITHOUT ROWID;
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    attributes TEXT NOT NULL DEFAULT '{{}}',
    created_at REAL NOT NULL
);
CREATE TABLE collections (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES users(id),
    title TEXT,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE collection_items (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    item_id TEXT NOT NULL REFERENCES items(id),
    added_at REAL NOT NULL,
    PRIMARY KEY (collection_id, item_id)
) WITHOUT ROWID;
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id),
    item_id TEXT NOT NULL REFERENCES items(id),
    action TEXT NOT NULL CHECK (action IN ({ACTIONS_SQL})),
    weight REAL NOT NULL,
    ts REAL NOT NULL,
    collection_id TEXT REFERENCES collections(id),
    context TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX events_user_ts ON events (user_id, ts);
CREATE INDEX events_item ON events (item_id);
CREATE INDEX events_ts ON events (ts);
"""

# SQLite allows 32,766 bound parameters per statement; stay well below.
_IN_CHUNK = 500


class SQLiteStore(SQLStore):
    """Store backed by one SQLite file. Use as a context manager or call close()."""

    MARK = "?"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly in _transaction(). A server
        # shares one store between threads; the lock keeps their statements apart.
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=30.0, check_same_thread=False
        )
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced on every commit, so an acknowledged write survives power loss.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._check_or_create_schema()

    def close(self) -> None:
        self._conn.close()

    def wait_for_events(self, timeout: float) -> int | None:
        """SQLite tells no one of a commit: a follower polls, every POLL_SECONDS."""
        time.sleep(min(timeout, POLL_SECONDS))
        return None

    def _check_or_create_schema(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        has_tables = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if version == SCHEMA_VERSION:
            return
        if version == 0 and not has_tables:
            with self._transaction() as conn:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        raise schema_version_error(str(self.path), version)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; it is durable once the block exits without error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- writes ---------------------------------------------------------------------------

    def add_users(self, users: Sequence[User]) -> WriteResult:
        check_ids((u.id for u in users), "user id")
        now = time.time()
        with self._transaction() as conn:
            stored = self._fetch_where_in(f"SELECT {USER_COLUMNS} FROM users", "id", ids_of(users))
            plan = plan_users(users, map(user_from_row, stored))
            conn.executemany(
                "INSERT INTO users (id, attributes, created_at) VALUES (?, ?, ?)",
                [(u.id, to_json(u.attributes), now) for u in plan.inserts],
            )
            conn.executemany(
                "UPDATE users SET attributes = ? WHERE id = ?",
                [(to_json(u.attributes), u.id) for u in plan.updates],
            )
        return plan.result

    def add_items(self, items: Sequence[Item], *, replace: bool = False) -> WriteResult:
        check_ids((i.id for i in items), "item id")
        now = time.time()
        with self._transaction() as conn:
            stored = self._fetch_where_in(f"SELECT {ITEM_COLUMNS} FROM items", "id", ids_of(items))
            plan = plan_items(items, map(item_from_row, stored), replace=replace)
            conn.executemany(
                "INSERT INTO items (id, title, description, attributes, price,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(i.id, *item_content(i), now, now) for i in plan.inserts],
            )
            conn.executemany(
                "UPDATE items SET title = ?, description = ?, attributes = ?,"
                " price = ?, updated_at = ? WHERE id = ?",
                [(*item_content(i), now, i.id) for i in plan.updates],
            )
        return plan.result

    def set_media(self, item_ids: Sequence[str], media: Sequence[Media]) -> WriteResult:
        owners = {*item_ids, *(m.item_id for m in media)}
        with self._transaction() as conn:
            rows = self._fetch_where_in(f"SELECT {MEDIA_COLUMNS} FROM media", "item_id", owners)
            stored = [media_from_row(row) for row in rows]
            conn.executemany(
                "DELETE FROM media WHERE item_id = ? AND uri = ?",
                [(m.item_id, m.uri) for m in stale_media(item_ids, media, stored)],
            )
            plan = plan_media(media, stored)
            conn.executemany(
                "INSERT INTO media (item_id, uri, content_hash, width, height)"
                " VALUES (?, ?, ?, ?, ?)",
                [media_row(m) for m in plan.inserts],
            )
            conn.executemany(
                "UPDATE media SET content_hash = ?, width = ?, height = ?"
                " WHERE item_id = ? AND uri = ?",
                [(*media_content(m), m.item_id, m.uri) for m in plan.updates],
            )
        return plan.result

    def add_collections(self, collections: Sequence[Collection]) -> WriteResult:
        check_collections(collections)
        result = WriteResult()
        now = time.time()
        with self._transaction() as conn:
            self._ensure_users(conn, {c.owner for c in collections}, now)
            for c in collections:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO collections (id, owner, title, kind, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (c.id, c.owner, c.title, c.kind, now),
                )
                if cursor.rowcount:
                    result.stored += 1
                else:
                    result.duplicates += 1
        return result

    def append_events(self, events: Sequence[Event]) -> WriteResult:
        check_event_ids(events)
        refuse_unknown_items(events, self.known_item_ids(e.item_id for e in events))
        now = time.time()
        with self._transaction() as conn:
            self._ensure_users(conn, {e.user_id for e in events}, now)
            in_collection = [e for e in events if e.collection_id is not None]
            conn.executemany(
                "INSERT OR IGNORE INTO collections (id, owner, title, kind, created_at)"
                " VALUES (?, ?, NULL, 'board', ?)",
                [(e.collection_id, e.user_id, now) for e in in_collection],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO collection_items (collection_id, item_id, added_at)"
                " VALUES (?, ?, ?)",
                [(e.collection_id, e.item_id, e.ts) for e in in_collection],
            )
            cursor = conn.executemany(
                "INSERT OR IGNORE INTO events (event_id, user_id, item_id, action, weight, ts,"
                " collection_id, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [event_row(e) for e in events],
            )
            stored = max(cursor.rowcount, 0)
        return WriteResult(stored=stored, duplicates=len(events) - stored)

    @staticmethod
    def _ensure_users(conn: sqlite3.Connection, user_ids: Iterable[str], now: float) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)",
            [(user_id, now) for user_id in user_ids],
        )

    # -- running SQLStore's reads ---------------------------------------------------------

    def _fetchall(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(query, params).fetchall()

    def _stream(self, query: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        yield from self._conn.execute(query, params)

    def _fetch_where_in(
        self, select: str, column: str, values: Iterable[str]
    ) -> list[tuple[Any, ...]]:
        """In chunks: SQLite binds a limited number of values per statement."""
        wanted = list(set(values))
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows += self._fetchall(f"{select} WHERE {column} IN ({marks})", chunk)
        return rows
