"""`tastegraph ingest ...` and `stats`: put a catalog and its events into the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from tastegraph.cli.apps import app, ingest_app
from tastegraph.cli.common import DataOption, fail, open_store_at, open_store_of, settings_of
from tastegraph.config import Settings
from tastegraph.ingest import (
    IngestReport,
    InputError,
    ingest_events,
    ingest_hm,
    ingest_items,
    ingest_store,
)
from tastegraph.store import Store, sqlite_path
from tastegraph.store.postgres import redacted


def _print_reports(reports: list[IngestReport]) -> None:
    typer.echo(f"{'':10} {'read':>8} {'stored':>8} {'duplicate':>9} {'quarantined':>11}")
    for r in reports:
        typer.echo(f"{r.what:10} {r.read:8,} {r.stored:8,} {r.duplicates:9,} {r.quarantined:11,}")
    for r in reports:
        for note in r.notes:
            typer.echo(f"note: {r.what}: {note}")
        if r.quarantine_file:
            typer.echo(
                f"quarantined {r.what} rows, with row number and reason: {r.quarantine_file}"
            )


def _run_ingest(settings: Settings, job: Callable[[Store], list[IngestReport]]) -> None:
    """Open the store, run one ingest job, print its reports; exit 1 if nothing was usable."""
    with open_store_of(settings) as store:
        try:
            reports = job(store)
        except InputError as exc:
            raise fail(str(exc)) from None
    _print_reports(reports)
    if not any(r.anything_usable for r in reports):
        raise fail("no row could be stored; see the quarantine files above", code=1)


@ingest_app.command("hm")
def ingest_hm_command(ctx: typer.Context, data: DataOption = None) -> None:
    """Ingest the H&M Personalized Fashion Recommendations data (or its sample).

    Reads customers.csv, articles.csv, transactions.csv and images/ from the folder: purchases
    become events, each customer-day a basket, articles items. Safe to re-run and to interrupt.
    """
    settings = settings_of(ctx, data)
    if settings.data is None:
        raise fail("no dataset folder: pass --data PATH or set TASTEGRAPH_DATA")
    data_dir = settings.data
    _run_ingest(settings, lambda store: ingest_hm(store, data_dir, settings))


@ingest_app.command("items")
def ingest_items_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .csv, .jsonl or .parquet file of items.")],
    replace: Annotated[
        bool, typer.Option(help="Update items already stored with different content.")
    ] = False,
) -> None:
    """Ingest a catalog: columns id, title, description, image, price, attributes (+ any other).

    image is a path relative to the file, or absolute; every photo is checked. Bad rows go to a
    quarantine file with their row number and reason; the rest go in.
    """
    settings = settings_of(ctx)
    _run_ingest(settings, lambda store: [ingest_items(store, file, settings, replace=replace)])


@ingest_app.command("events")
def ingest_events_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .csv, .jsonl or .parquet file of events.")],
    rating_max: Annotated[
        float, typer.Option(help="Top of the rating scale, for rows with a rating.")
    ] = 5.0,
) -> None:
    """Ingest events: columns user, item, action or rating, timestamp, and optionally
    event_id, weight and collection.

    action is one of view, click, save, purchase, hide; timestamp is ISO 8601 or unix
    seconds. Without an event_id the id is derived from the row, so re-running adds nothing.
    """
    settings = settings_of(ctx)
    _run_ingest(
        settings, lambda store: [ingest_events(store, file, settings, rating_max=rating_max)]
    )


@ingest_app.command("store")
def ingest_store_command(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="The store URL to read, e.g. sqlite:////abs/store.db")
    ],
) -> None:
    """Copy another store into this one: users, items, photos, collections, then events in
    log order. This is how a workdir moves to PostgreSQL without re-reading its files:

    TASTEGRAPH_STORE_URL=postgresql:///tastegraph?host=/var/run/postgresql \
    tastegraph ingest store sqlite:////path/to/tastegraph-data/store.db

    Into a store that held no events, every event keeps its log position, so the published
    profiles stay valid. Safe to re-run and to interrupt.
    """
    settings = settings_of(ctx)
    source_file = _sqlite_file(source)
    own_file = _sqlite_file(settings.resolved_store_url)
    if source == settings.resolved_store_url or (source_file and source_file == own_file):
        raise fail(f"{redacted(source)} is this workdir's own store; name another one")
    if source_file is not None and not source_file.is_file():
        raise fail(f"no store at {source_file}")  # opening it would make an empty one
    with open_store_at(source) as source_store:
        _run_ingest(settings, lambda store: ingest_store(store, source_store, redacted(source)))


def _sqlite_file(url: str) -> Path | None:
    """The resolved file of a sqlite:/// URL; None for another scheme."""
    path = sqlite_path(url)
    return None if path is None else Path(path).resolve()


@app.command()
def stats(ctx: typer.Context) -> None:
    """Print how many items, photos, users, collections and events the store holds."""
    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        counts = store.counts()
    typer.echo(f"store: {settings.resolved_store_url}")
    for name, count in counts.items():
        typer.echo(f"  {name:20} {count:>10,}")
