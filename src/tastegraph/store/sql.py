"""What the SQL backends share: records to and from rows, what a write does, the reads.

A write reads the stored rows for the ids it names, plans what to do with each record
(insert, update, or count it as a duplicate or a conflict), then runs the plan. Planning
here keeps the two backends' WriteResult counts identical by construction.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

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
    check_ids,
)

ITEM_COLUMNS = "id, title, description, attributes, price"
MEDIA_COLUMNS = "item_id, uri, content_hash, width, height"
USER_COLUMNS = "id, attributes"
EVENT_COLUMNS = "event_id, user_id, item_id, action, weight, ts, collection_id, context"
ACTIONS_SQL = ", ".join(f"'{action}'" for action in ACTIONS)  # for CHECK (action IN (...))

Record = TypeVar("Record", Item, Media, User)


def schema_version_error(store: str, version: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"store {store} has schema version {version}, but this tastegraph "
        f"reads and writes schema version {SCHEMA_VERSION}; "
        + (
            "upgrade tastegraph to open it"
            if version > SCHEMA_VERSION
            else "re-ingest into a new workdir or migrate it"
        )
    )


def to_json(value: dict[str, Any]) -> str:
    """Canonical JSON: equal dicts give equal text."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def from_json(value: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON column's value: SQLite holds text, PostgreSQL's JSONB arrives decoded."""
    return json.loads(value) if isinstance(value, str) else value


def item_from_row(row: Sequence[Any]) -> Item:
    item_id, title, description, attributes, price = row
    return Item(item_id, title, description, from_json(attributes), price)


def media_from_row(row: Sequence[Any]) -> Media:
    return Media(*row)


def user_from_row(row: Sequence[Any]) -> User:
    user_id, attributes = row
    return User(user_id, from_json(attributes))


def event_from_row(row: Sequence[Any]) -> Event:
    event_id, user_id, item_id, action, weight, ts, collection_id, context = row
    return Event(event_id, user_id, item_id, action, weight, ts, collection_id, from_json(context))


# Numbers are cast to their column's type: PostgreSQL takes a batch as one array per
# column, and an array cannot mix 3 and 2.5.


def item_content(item: Item) -> tuple[Any, ...]:
    """An item's values after its id in ITEM_COLUMNS order; equal for equal items."""
    price = None if item.price is None else float(item.price)
    return (item.title, item.description, to_json(item.attributes), price)


def media_content(m: Media) -> tuple[Any, ...]:
    """A photo's values after its key in MEDIA_COLUMNS order."""
    return (m.content_hash, int(m.width), int(m.height))


def media_row(m: Media) -> tuple[Any, ...]:
    """A photo's values in MEDIA_COLUMNS order."""
    return (m.item_id, m.uri, *media_content(m))


def event_row(e: Event) -> tuple[Any, ...]:
    """An event's values in EVENT_COLUMNS order, context as canonical JSON."""
    return (
        e.event_id,
        e.user_id,
        e.item_id,
        e.action,
        float(e.weight),
        float(e.ts),
        e.collection_id,
        to_json(e.context),
    )


def id_of(record: Item | User | Collection) -> str:
    return record.id


def ids_of(records: Iterable[Item | User]) -> set[str]:
    return {r.id for r in records}


def check_collections(collections: Sequence[Collection]) -> None:
    check_ids((c.id for c in collections), "collection id")
    check_ids((c.owner for c in collections), "owner")


def check_event_ids(events: Sequence[Event]) -> None:
    """Before a batch touches the database: ValueError for an id that breaks the id rule."""
    check_ids((e.event_id for e in events), "event_id")
    check_ids((e.user_id for e in events), "user_id")
    check_ids((e.collection_id for e in events), "collection_id")
    check_ids((e.item_id for e in events), "item_id")


def refuse_unknown_items(events: Sequence[Event], known_item_ids: set[str]) -> None:
    unknown = {e.item_id for e in events} - known_item_ids
    if unknown:
        named = sorted(unknown)
        raise UnknownItemError(f"events name items not in the catalog: {named[:10]}", named)


@dataclass
class WritePlan(Generic[Record]):
    """What one write does. Run inserts before updates: an id inserted and then changed
    within one batch appears in both, in that order."""

    inserts: list[Record] = field(default_factory=list)
    updates: list[Record] = field(default_factory=list)
    result: WriteResult = field(default_factory=WriteResult)


def _plan(
    records: Sequence[Record],
    stored: Iterable[Record],
    key: Callable[[Record], Hashable],
    content: Callable[[Record], Any],
    may_update: Callable[[Record], bool],
) -> WritePlan[Record]:
    """Each record is new (insert), the same as the one stored (duplicate), an update if
    `may_update(stored one)`, else a conflict; later records see earlier ones' effect."""
    plan = WritePlan[Record]()
    current = {key(r): r for r in stored}
    for record in records:
        before = current.get(key(record))
        if before is not None and content(before) == content(record):
            plan.result.duplicates += 1
            continue
        if before is None:
            plan.inserts.append(record)
        elif may_update(before):
            plan.updates.append(record)
        else:
            plan.result.conflicts.append(str(key(record)))
            continue
        plan.result.stored += 1
        current[key(record)] = record
    return plan


def plan_users(users: Sequence[User], stored: Iterable[User]) -> WritePlan[User]:
    """A user an event created before its profile arrived (no attributes) takes the profile."""
    return _plan(users, stored, id_of, lambda u: to_json(u.attributes), lambda u: not u.attributes)


def plan_items(items: Sequence[Item], stored: Iterable[Item], *, replace: bool) -> WritePlan[Item]:
    return _plan(items, stored, id_of, item_content, lambda _: replace)


def plan_media(media: Sequence[Media], stored: Iterable[Media]) -> WritePlan[Media]:
    """A photo whose file changed (new hash or size) is updated, never a conflict."""
    return _plan(media, stored, lambda m: (m.item_id, m.uri), media_content, lambda _: True)


def stale_media(
    item_ids: Iterable[str], media: Sequence[Media], stored: Iterable[Media]
) -> list[Media]:
    """Stored photos of `item_ids` that `media` no longer lists."""
    owners = set(item_ids)
    kept = {(m.item_id, m.uri) for m in media}
    return [m for m in stored if m.item_id in owners and (m.item_id, m.uri) not in kept]


class SQLStore(ABC):
    """What the SQL backends share beyond pure logic: every read of the Store protocol,
    in SQL both speak. A backend gives its driver's placeholder, three ways to run a
    query, and the writes."""

    MARK: ClassVar[str]  # the driver's placeholder for a bound value

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def set_media(self, item_ids: Sequence[str], media: Sequence[Media]) -> WriteResult: ...

    @abstractmethod
    def _fetchall(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query with a short answer."""

    @abstractmethod
    def _stream(self, query: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of a query that may answer millions, without holding them all at once."""

    @abstractmethod
    def _fetch_where_in(
        self, select: str, column: str, values: Iterable[str]
    ) -> list[tuple[Any, ...]]:
        """Rows of `select` whose `column` is one of `values`."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_media(self, media: Sequence[Media]) -> WriteResult:
        """Store photos; a photo whose file changed (new hash or size) is updated."""
        return self.set_media([], media)

    def known_item_ids(self, ids: Iterable[str]) -> set[str]:
        return self._known("items", "id", ids)

    def known_user_ids(self, ids: Iterable[str]) -> set[str]:
        return self._known("users", "id", ids)

    def known_event_ids(self, ids: Iterable[str]) -> set[str]:
        return self._known("events", "event_id", ids)

    def _known(self, table: str, column: str, ids: Iterable[str]) -> set[str]:
        return {
            row[0] for row in self._fetch_where_in(f"SELECT {column} FROM {table}", column, ids)
        }

    def get_item(self, item_id: str) -> Item | None:
        query = f"SELECT {ITEM_COLUMNS} FROM items WHERE id = {self.MARK}"
        rows = self._fetchall(query, (item_id,))
        return item_from_row(rows[0]) if rows else None

    def iter_items(self) -> Iterator[Item]:
        return map(item_from_row, self._stream(f"SELECT {ITEM_COLUMNS} FROM items ORDER BY id"))

    def iter_users(self) -> Iterator[User]:
        return map(user_from_row, self._stream(f"SELECT {USER_COLUMNS} FROM users ORDER BY id"))

    def iter_collections(self) -> Iterator[Collection]:
        query = "SELECT id, owner, title, kind FROM collections ORDER BY id"
        return (Collection(*row) for row in self._stream(query))

    def iter_media(self) -> Iterator[Media]:
        query = f"SELECT {MEDIA_COLUMNS} FROM media ORDER BY item_id, uri"
        return map(media_from_row, self._stream(query))

    def media_for(self, item_id: str) -> list[Media]:
        query = f"SELECT {MEDIA_COLUMNS} FROM media WHERE item_id = {self.MARK} ORDER BY uri"
        return [media_from_row(row) for row in self._fetchall(query, (item_id,))]

    def collection_items(self, collection_id: str) -> list[str]:
        query = (
            "SELECT item_id FROM collection_items"
            f" WHERE collection_id = {self.MARK} ORDER BY item_id"
        )
        return [row[0] for row in self._fetchall(query, (collection_id,))]

    def iter_events(self, through_seq: int | None = None) -> Iterator[Event]:
        if through_seq is None:
            bound, params = "", []
        else:
            bound, params = f"WHERE seq <= {self.MARK} ", [through_seq]
        query = f"SELECT {EVENT_COLUMNS} FROM events {bound}ORDER BY ts, seq"
        return map(event_from_row, self._stream(query, params))

    def last_event_seq(self) -> int:
        return int(self._fetchall("SELECT coalesce(max(seq), 0) FROM events")[0][0])

    def events_after(self, seq: int, through: int | None = None) -> list[Event]:
        bound, params = (
            ("", [seq]) if through is None else (f" AND seq <= {self.MARK}", [seq, through])
        )
        query = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > {self.MARK}{bound} ORDER BY seq"
        return [event_from_row(row) for row in self._fetchall(query, params)]

    def counts(self) -> dict[str, int]:
        counts = {
            table: int(self._fetchall(f"SELECT count(*) FROM {table}")[0][0])
            for table in ("items", "media", "users", "collections", "events")
        }
        for kind, n in self._fetchall("SELECT kind, count(*) FROM collections GROUP BY kind"):
            counts[f"collections:{kind}"] = n
        return counts
