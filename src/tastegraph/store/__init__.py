"""Durable state behind one interface, chosen by URL scheme (sqlite:///path)."""

from __future__ import annotations

from tastegraph.store.base import (
    SCHEMA_VERSION,
    Collection,
    Event,
    Item,
    Media,
    SchemaVersionError,
    Store,
    UnknownItemError,
    User,
    WriteResult,
)
from tastegraph.store.sqlite import SQLiteStore

__all__ = [
    "SCHEMA_VERSION",
    "Collection",
    "Event",
    "Item",
    "Media",
    "SQLiteStore",
    "SchemaVersionError",
    "Store",
    "UnknownItemError",
    "User",
    "WriteResult",
    "open_store",
]


def open_store(url: str) -> SQLiteStore:
    """Open the store at url; `sqlite:///relative/or/absolute/path.db`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"store URL {url!r} has no scheme; expected sqlite:///path/to/store.db")
    if scheme == "sqlite":
        return SQLiteStore(rest.removeprefix("/"))
    if scheme in ("postgres", "postgresql"):
        raise NotImplementedError(
            "the PostgreSQL backend is planned but not built yet; use sqlite:///path"
        )
    raise ValueError(f"unknown store scheme {scheme!r} in {url!r}; expected sqlite")
