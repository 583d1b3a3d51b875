"""The embedded default store: one SQLite file in WAL mode, durable on every commit."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tastegraph.config import ACTIONS
from tastegraph.store.base import (
    SCHEMA_VERSION,
    Collection,
    Event,
    Item,
    Media,
    SchemaVersionError,
    UnknownItemError,
    User,
    WriteResult,
)

_ACTION_LIST = ", ".join(f"'{action}'" for action in ACTIONS)

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
    action TEXT NOT NULL CHECK (action IN ({_ACTION_LIST})),
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


_EVENT_COLUMNS = "event_id, user_id, item_id, action, weight, ts, collection_id, context"


def _event(row: tuple[Any, ...]) -> Event:
    event_id, user_id, item_id, action, weight, ts, collection_id, context = row
    return Event(event_id, user_id, item_id, action, weight, ts, collection_id, json.loads(context))


def _to_json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class SQLiteStore:
    """Store backed by one SQLite file. Use as a context manager or call close()."""

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

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

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
        raise SchemaVersionError(
            f"store {self.path} has schema version {version}, but this tastegraph "
            f"reads and writes schema version {SCHEMA_VERSION}; "
            + (
                "upgrade tastegraph to open it"
                if version > SCHEMA_VERSION
                else "re-ingest into a new workdir or migrate it"
            )
        )

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
        result = WriteResult()
        now = time.time()
        with self._transaction() as conn:
            for user in users:
                attributes = _to_json(user.attributes)
                row = conn.execute("SELECT attributes FROM users WHERE id = ?", (user.id,))
                existing = row.fetchone()
                if existing is None:
                    conn.execute(
                        "INSERT INTO users (id, attributes, created_at) VALUES (?, ?, ?)",
                        (user.id, attributes, now),
                    )
                    result.stored += 1
                elif existing[0] == attributes:
                    result.duplicates += 1
                elif existing[0] == "{}":  # created by an event before its profile arrived
                    conn.execute(
                        "UPDATE users SET attributes = ? WHERE id = ?", (attributes, user.id)
                    )
                    result.stored += 1
                else:
                    result.conflicts.append(user.id)
        return result

    def add_items(self, items: Sequence[Item], *, replace: bool = False) -> WriteResult:
        result = WriteResult()
        now = time.time()
        with self._transaction() as conn:
            for item in items:
                content = (item.title, item.description, _to_json(item.attributes), item.price)
                existing = conn.execute(
                    "SELECT title, description, attributes, price FROM items WHERE id = ?",
                    (item.id,),
                ).fetchone()
                if existing is None:
                    conn.execute(
                        "INSERT INTO items (id, title, description, attributes, price,"
                        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (item.id, *content, now, now),
                    )
                    result.stored += 1
                elif tuple(existing) == content:
                    result.duplicates += 1
                elif replace:
                    conn.execute(
                        "UPDATE items SET title = ?, description = ?, attributes = ?,"
                        " price = ?, updated_at = ? WHERE id = ?",
                        (*content, now, item.id),
                    )
                    result.stored += 1
                else:
                    result.conflicts.append(item.id)
        return result

    def add_media(self, media: Sequence[Media]) -> WriteResult:
        """Store photos; a photo whose file changed (new hash or size) is updated."""
        return self.set_media([], media)

    def set_media(self, item_ids: Sequence[str], media: Sequence[Media]) -> WriteResult:
        result = WriteResult()
        with self._transaction() as conn:
            kept = {(m.item_id, m.uri) for m in media}
            for item_id in item_ids:
                rows = conn.execute("SELECT uri FROM media WHERE item_id = ?", (item_id,))
                for (uri,) in rows.fetchall():
                    if (item_id, uri) not in kept:
                        conn.execute(
                            "DELETE FROM media WHERE item_id = ? AND uri = ?", (item_id, uri)
                        )
            for m in media:
                content = (m.content_hash, m.width, m.height)
                existing = conn.execute(
                    "SELECT content_hash, width, height FROM media WHERE item_id = ? AND uri = ?",
                    (m.item_id, m.uri),
                ).fetchone()
                if existing is not None and tuple(existing) == content:
                    result.duplicates += 1
                    continue
                conn.execute(
                    "INSERT INTO media (item_id, uri, content_hash, width, height)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (item_id, uri) DO UPDATE SET"
                    " content_hash = excluded.content_hash, width = excluded.width,"
                    " height = excluded.height",
                    (m.item_id, m.uri, *content),
                )
                result.stored += 1
        return result

    def add_collections(self, collections: Sequence[Collection]) -> WriteResult:
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
        unknown = {e.item_id for e in events} - self.known_item_ids(e.item_id for e in events)
        if unknown:
            named = sorted(unknown)
            raise UnknownItemError(f"events name items not in the catalog: {named[:10]}", named)
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
                [
                    (
                        e.event_id,
                        e.user_id,
                        e.item_id,
                        e.action,
                        e.weight,
                        e.ts,
                        e.collection_id,
                        _to_json(e.context),
                    )
                    for e in events
                ],
            )
            stored = max(cursor.rowcount, 0)
        return WriteResult(stored=stored, duplicates=len(events) - stored)

    @staticmethod
    def _ensure_users(conn: sqlite3.Connection, user_ids: Iterable[str], now: float) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO users (id, created_at) VALUES (?, ?)",
            [(user_id, now) for user_id in user_ids],
        )

    # -- reads ----------------------------------------------------------------------------

    def known_item_ids(self, ids: Iterable[str]) -> set[str]:
        return self._known("items", "id", ids)

    def known_user_ids(self, ids: Iterable[str]) -> set[str]:
        return self._known("users", "id", ids)

    def known_event_ids(self, ids: Iterable[str]) -> set[str]:
        return self._known("events", "event_id", ids)

    def _known(self, table: str, column: str, ids: Iterable[str]) -> set[str]:
        wanted = list(set(ids))
        known: set[str] = set()
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {column} FROM {table} WHERE {column} IN ({marks})", chunk
                ).fetchall()
            known.update(row[0] for row in rows)
        return known

    def get_item(self, item_id: str) -> Item | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, title, description, attributes, price FROM items WHERE id = ?",
                (item_id,),
            ).fetchone()
        if row is None:
            return None
        item_id, title, description, attributes, price = row
        return Item(item_id, title, description, json.loads(attributes), price)

    def iter_items(self) -> Iterator[Item]:
        rows = self._conn.execute(
            "SELECT id, title, description, attributes, price FROM items ORDER BY id"
        )
        for item_id, title, description, attributes, price in rows:
            yield Item(item_id, title, description, json.loads(attributes), price)

    def iter_media(self) -> Iterator[Media]:
        rows = self._conn.execute(
            "SELECT item_id, uri, content_hash, width, height FROM media ORDER BY item_id, uri"
        )
        for row in rows:
            yield Media(*row)

    def media_for(self, item_id: str) -> list[Media]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, uri, content_hash, width, height FROM media WHERE item_id = ?"
                " ORDER BY uri",
                (item_id,),
            ).fetchall()
        return [Media(*row) for row in rows]

    def collection_items(self, collection_id: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT item_id FROM collection_items WHERE collection_id = ? ORDER BY item_id",
            (collection_id,),
        )
        return [row[0] for row in rows]

    def iter_events(self, through_seq: int | None = None) -> Iterator[Event]:
        bound = "" if through_seq is None else f"WHERE seq <= {int(through_seq)} "
        rows = self._conn.execute(f"SELECT {_EVENT_COLUMNS} FROM events {bound}ORDER BY ts, seq")
        for row in rows:
            yield _event(row)

    def last_event_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(row[0])

    def events_after(self, seq: int) -> list[Event]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq", (seq,)
            ).fetchall()
        return [_event(row) for row in rows]

    def counts(self) -> dict[str, int]:
        counts = {
            table: self._conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("items", "media", "users", "collections", "events")
        }
        for kind, n in self._conn.execute("SELECT kind, count(*) FROM collections GROUP BY kind"):
            counts[f"collections:{kind}"] = n
        return counts
