"""The store at scale: one PostgreSQL database, shared by any number of server processes.

Same promises as the SQLite store: a write commits in one transaction before it returns,
re-sent records are duplicates, and the event log is numbered in the order it is stored,
so other processes can follow it by `seq` (and wake on NOTIFY EVENTS_CHANNEL).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from tastegraph.store.base import (
    SCHEMA_VERSION,
    Collection,
    Event,
    Item,
    Media,
    StoreUnavailableError,
    User,
    WriteResult,
    check_ids,
)
from tastegraph.store.sql import (
    ACTIONS_SQL,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    MEDIA_COLUMNS,
    USER_COLUMNS,
    SQLStore,
    check_collections,
    check_event_ids,
    event_row,
    id_of,
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

POOL_WAIT_SECONDS = 5.0  # the longest a request waits for a connection before it fails
# After appending events, the store notifies this channel with the last seq as payload.
EVENTS_CHANNEL = "tastegraph_events"

# Keys of transaction-level advisory locks (arbitrary, fixed, unlikely to meet another app's).
# Catalog writes read, decide, then write; one at a time, their counts stay exact, as under
# SQLite's single writer. Anything else that inserts events must take EVENT_LOG_LOCK too.
_SCHEMA_LOCK = 7_415_230_001
_CATALOG_LOCK = 7_415_230_002
EVENT_LOG_LOCK = 7_415_230_003

_TABLES = ("items", "media", "users", "collections", "collection_items", "events")

# Ids are COLLATE "C": byte order, as in SQLite, whatever the database's locale.
SCHEMA = f"""
CREATE TABLE tastegraph_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE items (
    id TEXT COLLATE "C" PRIMARY KEY,
    title TEXT,
    description TEXT,
    attributes JSONB NOT NULL DEFAULT '{{}}',
    price DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE media (
    item_id TEXT COLLATE "C" NOT NULL REFERENCES items(id),
    uri TEXT COLLATE "C" NOT NULL,
    content_hash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (item_id, uri)
);
CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY,
    attributes JSONB NOT NULL DEFAULT '{{}}',
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE collections (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    title TEXT,
    kind TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE collection_items (
    collection_id TEXT COLLATE "C" NOT NULL REFERENCES collections(id),
    item_id TEXT COLLATE "C" NOT NULL REFERENCES items(id),
    added_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_id, item_id)
);
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT COLLATE "C" NOT NULL UNIQUE,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    item_id TEXT COLLATE "C" NOT NULL REFERENCES items(id),
    action TEXT NOT NULL CHECK (action IN ({ACTIONS_SQL})),
    weight DOUBLE PRECISION NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    collection_id TEXT COLLATE "C" REFERENCES collections(id),
    context JSONB NOT NULL DEFAULT '{{}}'
);
CREATE INDEX events_user_ts ON events (user_id, ts);
CREATE INDEX events_item ON events (item_id);
CREATE INDEX events_ts_seq ON events (ts, seq);
INSERT INTO tastegraph_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""

# A batch travels as one array per column, which unnest() turns back into rows: one
# statement per table, with no temporary table (on a pooled connection, writing one costs
# milliseconds at every commit, more than the rest of a one-event append). Arrays go in
# binary (%b), which PostgreSQL reads about twice as fast as their text form.
_INCOMING_EVENTS = """
unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::float8[], %b::float8[],
       %b::text[], %b::jsonb[])
WITH ORDINALITY AS incoming (event_id, user_id, item_id, action, weight, ts, collection_id,
                             context, ord)
"""
# New events, numbered in batch order. NOT EXISTS is exact because the event-log lock
# keeps other appenders out until this transaction commits; unlike ON CONFLICT, it leaves
# no holes in seq.
_INSERT_NEW_EVENTS = f"""
WITH stored AS (
    INSERT INTO events ({EVENT_COLUMNS})
    SELECT {EVENT_COLUMNS} FROM {_INCOMING_EVENTS}
    WHERE NOT EXISTS (SELECT FROM events WHERE events.event_id = incoming.event_id)
    ORDER BY ord
    RETURNING seq
)
SELECT count(*), coalesce(max(seq), 0) FROM stored
"""
# Callers pass rows sorted by key: two writers creating the same new rows in one order
# cannot deadlock. Of rows with one key, ON CONFLICT DO NOTHING keeps the first.
_CREATE_USERS = """
INSERT INTO users (id, created_at)
SELECT id, %s FROM unnest(%b::text[]) AS new (id)
ON CONFLICT DO NOTHING
"""
_CREATE_COLLECTIONS = """
INSERT INTO collections (id, owner, title, kind, created_at)
SELECT id, owner, title, kind, %s
FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) AS new (id, owner, title, kind)
ON CONFLICT DO NOTHING
"""
_FILE_COLLECTION_ITEMS = """
INSERT INTO collection_items (collection_id, item_id, added_at)
SELECT * FROM unnest(%b::text[], %b::text[], %b::float8[])
ON CONFLICT DO NOTHING
"""
# Events create users without the catalog lock: fill in one that an event created (empty
# attributes) since this write read the table.
_INSERT_NEW_USERS = """
INSERT INTO users (id, attributes, created_at)
SELECT id, attributes, %s FROM unnest(%b::text[], %b::jsonb[]) AS new (id, attributes)
ON CONFLICT (id) DO UPDATE SET attributes = excluded.attributes
WHERE users.attributes = '{}'::jsonb
"""
# Straight in: only catalog writes add items and photos, and they hold the catalog lock,
# so none of these keys can have been stored since the write read them.
_INSERT_NEW_ITEMS = f"""
INSERT INTO items ({ITEM_COLUMNS}, created_at, updated_at)
SELECT *, %s, %s
FROM unnest(%b::text[], %b::text[], %b::text[], %b::jsonb[], %b::float8[])
"""
_INSERT_NEW_MEDIA = f"""
INSERT INTO media ({MEDIA_COLUMNS})
SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::int[], %b::int[])
"""


def _numbered(statement: str, *numbers: int) -> str:
    """The statement with its placeholders, in order, as a function's parameters $n."""
    parameters = iter(numbers)
    numbered = re.sub(r"%[sb]", lambda _: f"${next(parameters)}", statement)
    assert next(parameters, None) is None, "a parameter number left over"
    return numbered


# An append as one call, so one round trip: the lock, the users, boards and filings its
# events create, the events, and the notice to followers (delivered when the transaction
# commits, never before). Each pooled connection creates it for its own session (pg_temp),
# so the database's schema does not change. Parameters: now, user ids, boards (id, owner,
# title, kind), filings (collection, item, time), then the events' columns.
_APPEND_TYPES = (
    "float8",  # now
    "text[]",  # user ids
    *("text[]", "text[]", "text[]", "text[]"),  # boards
    *("text[]", "text[]", "float8[]"),  # filings
    *("text[]", "text[]", "text[]", "text[]", "float8[]", "float8[]", "text[]", "jsonb[]"),
)
_APPEND_EVENTS_FUNCTION = f"""
CREATE FUNCTION pg_temp.tastegraph_append_events(
    {", ".join(_APPEND_TYPES)}, OUT new_events bigint, OUT last_position bigint
) LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM pg_advisory_xact_lock({EVENT_LOG_LOCK});
    {_numbered(_CREATE_USERS, 1, 2)};
    {_numbered(_CREATE_COLLECTIONS, 1, 3, 4, 5, 6)};
    {_numbered(_FILE_COLLECTION_ITEMS, 7, 8, 9)};
    {_numbered(_INSERT_NEW_EVENTS, *range(10, 18))} INTO new_events, last_position;
    IF new_events > 0 THEN
        PERFORM pg_notify('{EVENTS_CHANNEL}', last_position::text);
    END IF;
END
$body$
"""
_APPEND_EVENTS = "SELECT * FROM pg_temp.tastegraph_append_events({})".format(
    ", ".join(f"%b::{kind}" for kind in _APPEND_TYPES)
)

# Rows fetched per round trip by the iterators' server-side cursors.
_STREAM_BATCH = 2000


def redacted(conninfo: str) -> str:
    """The URL or connection string with any password masked, fit for a message or a log."""
    masked = re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", conninfo)
    return re.sub(r"(password=)[^&\s]*", r"\1***", masked)


def _configure(conn: psycopg.Connection[Any]) -> None:
    # An acknowledged write must survive a crash: a server or role default of
    # synchronous_commit=off would acknowledge commits before they reach disk.
    # Stronger settings (remote_write, remote_apply) are kept.
    setting = conn.execute("SHOW synchronous_commit").fetchone()
    if setting is not None and setting[0] == "off":
        conn.execute("SET synchronous_commit = on")
    conn.execute(_APPEND_EVENTS_FUNCTION)


class PostgresStore(SQLStore):
    """Store backed by a PostgreSQL database. Use as a context manager or call close().

    `conninfo` is a libpq connection string or URL (postgresql://user@host:port/dbname;
    a Unix socket is postgresql:///dbname?host=/socket/dir). Safe to share between threads.
    """

    MARK = "%s"

    def __init__(self, conninfo: str, *, max_connections: int = 8) -> None:
        try:
            conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"bad PostgreSQL store URL {redacted(conninfo)!r}: {exc}") from None
        try:
            self._check_or_create_schema(conninfo)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailableError(
                f"cannot open the PostgreSQL store {redacted(conninfo)!r}: {reason}"
            ) from None
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=_configure,
            timeout=POOL_WAIT_SECONDS,
            name="tastegraph-store",
            open=True,
        )
        self._conninfo = conninfo
        self._listener: psycopg.Connection[Any] | None = None  # opened by wait_for_events
        self._listener_lock = threading.Lock()

    def close(self) -> None:
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close()
        self._pool.close()

    def wait_for_events(self, timeout: float) -> int | None:
        """Wait for a NOTIFY on EVENTS_CHANNEL (sent by every append that stored events, in
        any process) on a connection of its own, or for `timeout` seconds; the log position
        the notice named, or None after the timeout."""
        with self._listener_lock:
            try:
                if self._listener is None:
                    self._listener = psycopg.connect(self._conninfo, autocommit=True)
                    self._listener.execute(f"LISTEN {EVENTS_CHANNEL}")
                notices = self._listener.notifies(timeout=timeout, stop_after=1)
                return max((int(notice.payload) for notice in notices), default=None)
            except psycopg.Error:  # a restarted server, a dropped connection: listen anew
                if self._listener is not None:
                    self._listener.close()
                self._listener = None
                raise

    @staticmethod
    def _check_or_create_schema(conninfo: str) -> None:
        # A connection of its own: a bad address or a refused login fails here with
        # libpq's own message, before any pool is started.
        with psycopg.connect(conninfo) as conn:
            # Two processes opening an empty database at once create the schema once.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            version = _stored_schema_version(conn)
            if version is None:
                conn.execute(SCHEMA)
            elif version != SCHEMA_VERSION:
                raise schema_version_error(f"in database {conn.info.dbname!r}", version)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; StoreUnavailableError while the server cannot be reached
        (nothing was written then: a write commits whole or not at all)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            # After a server restart every pooled connection is dead: replace them now, so
            # the store recovers without being opened again. (Checking each connection as
            # it leaves the pool instead costs a round trip per query.)
            self._pool.check()
            raise StoreUnavailableError(f"the PostgreSQL store is unavailable: {exc}") from exc

    @contextmanager
    def _transaction(self, lock: int) -> Iterator[psycopg.Cursor[Any]]:
        """One write transaction that first takes advisory `lock`; the write is durable
        once the block exits without error."""
        with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            yield cur

    # -- writes ---------------------------------------------------------------------------

    def add_users(self, users: Sequence[User]) -> WriteResult:
        check_ids((u.id for u in users), "user id")
        now = time.time()
        with self._transaction(_CATALOG_LOCK) as cur:
            stored = _rows_where_in(cur, f"SELECT {USER_COLUMNS} FROM users", "id", ids_of(users))
            plan = plan_users(users, map(user_from_row, stored))
            new = [(u.id, to_json(u.attributes)) for u in sorted(plan.inserts, key=id_of)]
            _insert(cur, _INSERT_NEW_USERS, new, now)
            cur.executemany(
                "UPDATE users SET attributes = %s::jsonb WHERE id = %s",
                [(to_json(u.attributes), u.id) for u in plan.updates],
            )
        return plan.result

    def add_items(self, items: Sequence[Item], *, replace: bool = False) -> WriteResult:
        check_ids((i.id for i in items), "item id")
        now = time.time()
        with self._transaction(_CATALOG_LOCK) as cur:
            stored = _rows_where_in(cur, f"SELECT {ITEM_COLUMNS} FROM items", "id", ids_of(items))
            plan = plan_items(items, map(item_from_row, stored), replace=replace)
            new = [(i.id, *item_content(i)) for i in plan.inserts]
            _insert(cur, _INSERT_NEW_ITEMS, new, now, now)
            cur.executemany(
                "UPDATE items SET title = %s, description = %s, attributes = %s::jsonb,"
                " price = %s, updated_at = %s WHERE id = %s",
                [(*item_content(i), now, i.id) for i in plan.updates],
            )
        return plan.result

    def set_media(self, item_ids: Sequence[str], media: Sequence[Media]) -> WriteResult:
        owners = {*item_ids, *(m.item_id for m in media)}
        with self._transaction(_CATALOG_LOCK) as cur:
            rows = _rows_where_in(cur, f"SELECT {MEDIA_COLUMNS} FROM media", "item_id", owners)
            stored = [media_from_row(row) for row in rows]
            cur.executemany(
                "DELETE FROM media WHERE item_id = %s AND uri = %s",
                [(m.item_id, m.uri) for m in stale_media(item_ids, media, stored)],
            )
            plan = plan_media(media, stored)
            _insert(cur, _INSERT_NEW_MEDIA, [media_row(m) for m in plan.inserts])
            cur.executemany(
                "UPDATE media SET content_hash = %s, width = %s, height = %s"
                " WHERE item_id = %s AND uri = %s",
                [(*media_content(m), m.item_id, m.uri) for m in plan.updates],
            )
        return plan.result

    def add_collections(self, collections: Sequence[Collection]) -> WriteResult:
        check_collections(collections)
        now = time.time()
        owners = [(owner,) for owner in sorted({c.owner for c in collections})]
        # Stable sort: of two with one id, the first in the batch is still the one kept.
        rows = [(c.id, c.owner, c.title, c.kind) for c in sorted(collections, key=id_of)]
        with self._transaction(_CATALOG_LOCK) as cur:
            _insert(cur, _CREATE_USERS, owners, now)
            stored = _insert(cur, _CREATE_COLLECTIONS, rows, now)
        return WriteResult(stored=stored, duplicates=len(collections) - stored)

    def append_events(self, events: Sequence[Event]) -> WriteResult:
        check_event_ids(events)
        refuse_unknown_items(events, self.known_item_ids(e.item_id for e in events))
        if not events:
            return WriteResult()
        now = time.time()
        users = [(user,) for user in sorted({e.user_id for e in events})]
        in_collections = [e for e in events if e.collection_id is not None]
        # A collection first seen in an event is a board owned by that event's user.
        boards = [
            (e.collection_id, e.user_id, None, "board")
            for e in sorted(in_collections, key=lambda e: e.collection_id or "")
        ]
        filed = [
            (e.collection_id, e.item_id, e.ts)
            for e in sorted(in_collections, key=lambda e: (e.collection_id or "", e.item_id))
        ]
        new = [event_row(e) for e in _first_of_each_id(events)]
        # PostgreSQL hands out seq values when rows are inserted, not when they commit: two
        # appenders at once could commit seq 8 before seq 7, and a reader following the log
        # by seq would pass 7 before it is visible and never see it. The event-log lock,
        # held until commit, makes appends one at a time, so seq order is commit order.
        parameters = (
            now,
            *_columns(users, 1),
            *_columns(boards, 4),
            *_columns(filed, 3),
            *_columns(new, len(new[0])),
        )
        with self._connection() as conn:
            stored = _one(conn.execute(_APPEND_EVENTS, parameters))[0]
        return WriteResult(stored=stored, duplicates=len(events) - stored)

    # -- running SQLStore's reads ---------------------------------------------------------

    def _fetchall(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(query, params).fetchall()

    def _stream(self, query: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Through a server-side cursor, a batch per round trip."""
        with (
            self._connection() as conn,
            conn.transaction(),
            conn.cursor(name="tastegraph_stream") as cur,
        ):
            cur.itersize = _STREAM_BATCH
            cur.execute(query, params)
            yield from cur

    def _fetch_where_in(
        self, select: str, column: str, values: Iterable[str]
    ) -> list[tuple[Any, ...]]:
        with self._connection() as conn, conn.cursor() as cur:
            return _rows_where_in(cur, select, column, values)


def _stored_schema_version(conn: psycopg.Connection[Any]) -> int | None:
    """The database's schema version; None for a database that holds no store yet."""
    row = _one(conn.execute("SELECT to_regclass('tastegraph_meta') IS NOT NULL"))
    if row[0]:
        meta = "SELECT value FROM tastegraph_meta WHERE key = 'schema_version'"
        version = conn.execute(meta).fetchone()
        return 0 if version is None else int(version[0])
    present = conn.execute(
        "SELECT 1 FROM unnest(%s::text[]) AS t(name) WHERE to_regclass(name) IS NOT NULL",
        (list(_TABLES),),
    ).fetchall()
    return 0 if present else None  # tables without a version: older than versioning


def _rows_where_in(
    cur: psycopg.Cursor[Any], select: str, column: str, values: Iterable[str]
) -> list[tuple[Any, ...]]:
    """Rows of `select` whose `column` is one of `values`, in one round trip."""
    return cur.execute(f"{select} WHERE {column} = ANY(%s)", (list(set(values)),)).fetchall()


def _first_of_each_id(events: Sequence[Event]) -> list[Event]:
    """The events in batch order, less any that repeat an earlier event_id."""
    firsts: dict[str, Event] = {}
    for e in events:
        firsts.setdefault(e.event_id, e)
    return list(firsts.values())


def _as_arrays(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows as one list per column, the parameters of an unnest() of the same columns."""
    return [list(column) for column in zip(*rows, strict=True)]


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any] | None]:
    """`_as_arrays`, or NULL arrays for no rows (unnest(NULL) gives none, and an empty
    list has no element type to send in binary)."""
    return [*_as_arrays(rows)] if rows else [None] * width


def _insert(
    cur: psycopg.Cursor[Any], statement: str, rows: Sequence[Sequence[Any]], *before: Any
) -> int:
    """Run an INSERT ... SELECT FROM unnest(...) over `rows`, after parameters `before`;
    returns how many rows it stored."""
    if not rows:
        return 0
    cur.execute(statement, (*before, *_as_arrays(rows)))
    return cur.rowcount


def _one(cur: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None, "the query returns exactly one row"
    return tuple(row)
