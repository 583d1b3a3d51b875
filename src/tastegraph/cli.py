"""The `tastegraph` command: each subcommand is a thin call into a package."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from tastegraph.config import Settings
from tastegraph.ingest import IngestReport, InputError, ingest_events, ingest_hm, ingest_items
from tastegraph.store import SchemaVersionError, Store, open_store

app = typer.Typer(
    help="tastegraph: offline item embeddings, a taste graph, recommendations and an "
    "embedding-native shopping assistant, for any catalog of images and text.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(help="Put a catalog and its events into the store.", no_args_is_help=True)
bench_app = typer.Typer(help="Measure speed against a baseline run in the same process.")
app.add_typer(ingest_app, name="ingest")
app.add_typer(bench_app, name="bench")

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Dataset folder (default: $TASTEGRAPH_DATA).",
        file_okay=False,
        show_default=False,
    ),
]


@app.callback()
def main(
    ctx: typer.Context,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where the store and artifacts live [default: ./tastegraph-data]."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(help="Store URL, e.g. sqlite:///path/store.db [default: in the workdir]."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Settings come from defaults, then TASTEGRAPH_* environment variables, then flags."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    overrides: dict[str, Any] = {"workdir": workdir, "store_url": store}
    ctx.obj = Settings(**{k: v for k, v in overrides.items() if v is not None})


def _settings(ctx: typer.Context, data: Path | None = None) -> Settings:
    settings: Settings = ctx.obj
    if data is not None:
        settings = settings.model_copy(update={"data": data})
    return settings


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


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
    try:
        with open_store(settings.resolved_store_url) as store:
            reports = job(store)
    except (InputError, SchemaVersionError) as exc:
        raise _fail(str(exc)) from None
    _print_reports(reports)
    if not any(r.anything_usable for r in reports):
        raise _fail("no row could be stored; see the quarantine files above", code=1)


@ingest_app.command("hm")
def ingest_hm_command(ctx: typer.Context, data: DataOption = None) -> None:
    """Ingest the H&M Personalized Fashion Recommendations data (or its sample).

    Reads customers.csv, articles.csv, transactions.csv and images/ from the folder: purchases
    become events, each customer-day a basket, articles items. Safe to re-run and to interrupt.
    """
    settings = _settings(ctx, data)
    if settings.data is None:
        raise _fail("no dataset folder: pass --data PATH or set TASTEGRAPH_DATA")
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
    settings = _settings(ctx)
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
    settings = _settings(ctx)
    _run_ingest(
        settings, lambda store: [ingest_events(store, file, settings, rating_max=rating_max)]
    )


@app.command()
def stats(ctx: typer.Context) -> None:
    """Print how many items, photos, users, collections and events the store holds."""
    settings = _settings(ctx)
    try:
        with open_store(settings.resolved_store_url) as store:
            counts = store.counts()
    except SchemaVersionError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"store: {settings.resolved_store_url}")
    for name, count in counts.items():
        typer.echo(f"  {name:20} {count:>10,}")


@bench_app.command("ingest")
def bench_ingest_command(
    data: DataOption = None,
    events: Annotated[int, typer.Option(help="Synthetic events for the bulk append.")] = 200_000,
) -> None:
    """Time the H&M ingest and a bulk append of synthetic events, each against a baseline."""
    from tastegraph.bench.ingest import run

    settings = Settings()
    folder = data or settings.data
    if folder is None:
        raise _fail("no dataset folder: pass --data PATH or set TASTEGRAPH_DATA")
    run(folder, events)
