"""What the command groups share: settings, the store, errors and common options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tastegraph.config import Settings
from tastegraph.ingest.quarantine import RowError
from tastegraph.ingest.validate import parse_timestamp
from tastegraph.store import Event, SchemaVersionError, Store, StoreUnavailableError, open_store

if TYPE_CHECKING:
    from tastegraph.assistant.chat import Assistant

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Dataset folder (default: $TASTEGRAPH_DATA).",
        file_okay=False,
        show_default=False,
    ),
]


def settings_of(ctx: typer.Context, data: Path | None = None) -> Settings:
    settings: Settings = ctx.obj
    if data is not None:
        settings = settings.model_copy(update={"data": data})
    return settings


def open_store_of(settings: Settings) -> Store:
    return open_store_at(settings.resolved_store_url)


def open_store_at(url: str) -> Store:
    """The store at `url`, or one clear line on why it cannot be opened."""
    try:
        return open_store(url)
    except (SchemaVersionError, StoreUnavailableError, ValueError) as exc:
        raise fail(str(exc)) from None


def parse_time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_timestamp({"time": value}, "time")
    except RowError as exc:
        raise typer.BadParameter(exc.reason) from None


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="Where the towers run: local, or ray (Ray Data; RAY_ADDRESS for a cluster).",
        show_default=False,
    ),
]


def training_line(result: Any) -> str:
    return (
        f"{result.examples:,} examples, {result.steps} steps ({result.seconds:.0f} s); "
        f"held-out loss {result.heldout_loss_before:.3f} -> {result.heldout_loss_after:.3f}"
    )


def with_engine(settings: Settings, engine: str | None) -> Settings:
    if engine is None:
        return settings
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"unknown engine {engine!r}; expected local or ray")
    return settings.model_copy(update={"embed_engine": engine})


ExploreOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of the feed given to interests next to the user's (0-1; default 0.2).",
        show_default=False,
    ),
]

ValidationOption = Annotated[
    bool,
    typer.Option(
        "--validation",
        help="Report the validation split: the test-weeks just before the test split (on "
        "the H&M sample 2020-06-02 to 2020-07-28). Tune here, never on test.",
    ),
]
TestWeeksOption = Annotated[
    float,
    typer.Option(min=0.1, help="The log's last weeks are the test split (H&M: from 2020-07-28)."),
]
CutoffOption = Annotated[
    str | None,
    typer.Option(
        help="Start of the test split (ISO 8601 or unix seconds); default: test-weeks "
        "before the last event. Set it when live events follow a historical log."
    ),
]


@contextmanager
def served_assistant(settings: Settings) -> Iterator[tuple[list[Event], Assistant]]:
    """The store's events and the assistant exactly as `tastegraph serve` holds it."""
    from tastegraph.online import OnlineSystem

    with open_store_of(settings) as store:
        service = OnlineSystem(settings, store)
        try:
            events = list(store.iter_events())
            with service.assistant() as assistant:
                yield events, assistant
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
        finally:
            service.close()
