"""The `tastegraph` command and its groups; the modules beside this one add the commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from tastegraph.config import Settings

app = typer.Typer(
    help="tastegraph: offline item embeddings, a taste graph, recommendations and an "
    "embedding-native shopping assistant, for any catalog of images and text.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(help="Put a catalog and its events into the store.", no_args_is_help=True)
train_app = typer.Typer(
    help="Train models on the store's catalog and events.", no_args_is_help=True
)
evaluate_app = typer.Typer(
    help="Measure quality on held-out data against baselines.", no_args_is_help=True
)
bench_app = typer.Typer(
    help="Measure speed against a baseline run in the same process.", no_args_is_help=True
)
app.add_typer(ingest_app, name="ingest")
app.add_typer(train_app, name="train")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(bench_app, name="bench")


@app.callback()
def main(
    ctx: typer.Context,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where the store and artifacts live (default: ./tastegraph-data)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Store URL: sqlite:///relative/store.db or sqlite:////absolute/store.db "
            "(default: store.db in the workdir)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Settings come from defaults, then TASTEGRAPH_* environment variables, then flags."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    overrides: dict[str, Any] = {"workdir": workdir, "store_url": store}
    ctx.obj = Settings(**{k: v for k, v in overrides.items() if v is not None})
