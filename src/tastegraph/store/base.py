"""Records held by the store and the interface every backend implements."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from tastegraph.config import ACTIONS

SCHEMA_VERSION = 1

# One rule for every id (item, user, collection, event) in files, the API and the store:
# letters, digits and _.:@- (not first: .:@-), so no path, "..", space or NUL gets through.
MAX_ID_LENGTH = 128
ID_PATTERN = rf"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{{0,{MAX_ID_LENGTH - 1}}}$"
_ID = re.compile(ID_PATTERN)


def id_problem(value: str, field: str) -> str | None:
    """Why `value` cannot be an id (None: it can), in words for the one who sent it."""
    if _ID.fullmatch(value):
        return None
    if len(value) > MAX_ID_LENGTH:
        return f"{field} is {len(value)} characters long; at most {MAX_ID_LENGTH}"
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return f"{field} contains control characters"
    return (
        f"{field} {value!r} is not an id: letters, digits and _.:@- only, "
        "starting with a letter, a digit or _"
    )


def check_ids(values: Iterable[str | None], field: str) -> None:
    """ValueError naming the first value that is not an id (None is no id: skipped)."""
    for value in values:
        if value is not None and (problem := id_problem(value, field)):
            raise ValueError(problem)


class SchemaVersionError(RuntimeError):
    """The store on disk was written by a different schema version than this code expects."""


class StoreUnavailableError(RuntimeError):
    """The store's server cannot be reached or refused the login."""


class UnknownItemError(KeyError):
    """An event names an item that is not in the catalog."""

    def __init__(self, message: str, item_ids: list[str]) -> None:
        super().__init__(message)
        self.item_ids = item_ids  # the unknown ones, sorted


@dataclass(frozen=True)
class Item:
    id: str
    title: str | None = None
    description: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    price: float | None = None


@dataclass(frozen=True)
class Media:
    item_id: str
    uri: str  # an absolute file path, or a URI
    content_hash: str  # sha256 of the file's bytes
    width: int
    height: int


@dataclass(frozen=True)
class User:
    id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Collection:
    """A board, a basket or a session: items grouped by one owner."""

    id: str
    owner: str
    title: str | None = None
    kind: str = "board"


@dataclass(frozen=True)
class Event:
    event_id: str
    user_id: str
    item_id: str
    action: str
    weight: float
    ts: float  # unix seconds, UTC
    collection_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; expected one of {ACTIONS}")


@dataclass
class WriteResult:
    """What one write did: rows newly stored, rows already present, rows refused."""

    stored: int = 0
    duplicates: int = 0
    # Ids that already exist with different content, with nothing written for them.
    conflicts: list[str] = field(default_factory=list)

    def __iadd__(self, other: WriteResult) -> WriteResult:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        return self


class Store(Protocol):
    """Durable state: catalog, users, collections and events.

    Every write method commits before it returns, so a returned result means durable.
    Writes are idempotent: re-sending the same records changes nothing.
    """

    def add_users(self, users: Sequence[User]) -> WriteResult: ...

    def add_items(self, items: Sequence[Item], *, replace: bool = False) -> WriteResult:
        """Store new items. An id already stored with other content is a conflict,
        unless replace is set, in which case the stored item is updated."""
        ...

    def add_media(self, media: Sequence[Media]) -> WriteResult: ...

    def set_media(self, item_ids: Sequence[str], media: Sequence[Media]) -> WriteResult:
        """Make `media` the only photos of `item_ids`: others they had are removed."""
        ...

    def add_collections(self, collections: Sequence[Collection]) -> WriteResult: ...

    def append_events(self, events: Sequence[Event]) -> WriteResult:
        """Append events; an event_id already stored is a no-op. Unknown users and
        collections are created; an unknown item raises UnknownItemError."""
        ...

    def known_item_ids(self, ids: Iterable[str]) -> set[str]: ...

    def known_event_ids(self, ids: Iterable[str]) -> set[str]: ...

    def known_user_ids(self, ids: Iterable[str]) -> set[str]: ...

    def get_item(self, item_id: str) -> Item | None: ...

    def iter_items(self) -> Iterator[Item]:
        """All items in id order."""
        ...

    def iter_media(self) -> Iterator[Media]:
        """All photos in (item id, uri) order."""
        ...

    def iter_users(self) -> Iterator[User]:
        """All users in id order."""
        ...

    def iter_collections(self) -> Iterator[Collection]:
        """All collections in id order."""
        ...

    def media_for(self, item_id: str) -> list[Media]: ...

    def collection_items(self, collection_id: str) -> list[str]: ...

    def iter_events(self, through_seq: int | None = None) -> Iterator[Event]:
        """All events in timestamp order; with through_seq, only those stored up to that
        log position (see last_event_seq)."""
        ...

    def last_event_seq(self) -> int:
        """The store's position in its event log: events are numbered as they are stored."""
        ...

    def events_after(self, seq: int, through: int | None = None) -> list[Event]:
        """Events stored after log position `seq` (and up to `through`, if given), in the
        order they were stored."""
        ...

    def wait_for_events(self, timeout: float) -> int | None:
        """Return once events may have been stored since the last call (by this process or
        another), or after `timeout` seconds: what a process following the log waits on.
        Returns the log position a notice of new events named, or None where the store
        cannot say (look at the log then)."""
        ...

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...
