"""Durable state behind one interface, chosen by URL scheme: sqlite:///path for one
file on this machine, postgresql://host/dbname for a database many processes share."""

from __future__ import annotations

from tastegraph.store.base import (
    SCHEMA_VERSION,
    Collection,
    Event,
    Item,
    Media,
    SchemaVersionError,
    Store,
    StoreUnavailableError,
    UnknownItemError,
    User,
    WriteResult,
)
from tastegraph.store.postgres import EVENTS_CHANNEL, PostgresStore, redacted
from tastegraph.store.sqlite import SQLiteStore

__all__ = [
    "EVENTS_CHANNEL",
    "SCHEMA_VERSION",
    "Collection",
    "Event",
    "Item",
    "Media",
    "PostgresStore",
    "SQLiteStore",
    "SchemaVersionError",
    "Store",
    "StoreUnavailableError",
    "UnknownItemError",
    "User",
    "WriteResult",
    "open_store",
    "sqlite_path",
]


def open_store(url: str) -> Store:
    """Open the store at url, creating its schema in a new file or an empty database.

    `sqlite:///relative/or/absolute/path.db`, or `postgresql://user@host:port/dbname`
    (`postgres://` too), handed to PostgreSQL's client library as it is, query options
    included; a Unix socket is `postgresql:///dbname?host=/socket/dir`.
    """
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ValueError(
            f"store URL {redacted(url)!r} has no scheme; expected sqlite:///path/to/store.db"
            " or postgresql://host/dbname"
        )
    if (path := sqlite_path(url)) is not None:
        return SQLiteStore(path)
    if scheme in ("postgres", "postgresql"):
        return PostgresStore(url)
    raise ValueError(
        f"unknown store scheme {scheme!r} in {redacted(url)!r}; expected sqlite or postgresql"
    )


def sqlite_path(url: str) -> str | None:
    """The file a sqlite:/// URL names, relative or absolute; None for another URL."""
    scheme, sep, rest = url.partition("://")
    return rest.removeprefix("/") if sep and scheme == "sqlite" else None
