"""`serve` and `demo` (the main job, then the server)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from tastegraph.cli.apps import app
from tastegraph.cli.common import DataOption, fail, open_store_of, settings_of
from tastegraph.config import Settings
from tastegraph.ingest import InputError

if TYPE_CHECKING:
    from tastegraph.pipeline import StepReport
    from tastegraph.serve.app import TrainBeside

HostOption = Annotated[
    str | None,
    typer.Option(help="Address to listen on (default: 127.0.0.1, this machine only)."),
]
PortOption = Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: 8000).")]


def _serve(
    settings: Settings,
    host: str | None,
    port: int | None,
    assistant: bool,
    train_beside: TrainBeside | None = None,
    workers: int = 1,
) -> None:
    import secrets

    import uvicorn

    from tastegraph.serve.app import create_app
    from tastegraph.serve.workers import serve_workers

    updates: dict[str, Any] = {"serve_host": host or settings.serve_host}
    updates["serve_port"] = port or settings.serve_port
    if not settings.api_token:
        updates["api_token"] = secrets.token_urlsafe(24)
    settings = settings.model_copy(update=updates)
    with open_store_of(settings):  # a wrong or unreachable store fails here, in one line
        pass
    try:
        app = create_app(settings, assistant=assistant, train_beside=train_beside)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    url = f"http://{settings.serve_host}:{settings.serve_port}"
    typer.echo(
        f"tastegraph at {url}/#token={settings.api_token}\n"
        f"  API docs {url}/docs; write endpoints need 'Authorization: Bearer "
        f"{settings.api_token}' (set TASTEGRAPH_API_TOKEN to choose it)"
    )
    if workers == 1:
        uvicorn.run(app, host=settings.serve_host, port=settings.serve_port, log_level="warning")
    else:  # each worker builds its own app, from the same settings
        typer.echo(f"  {workers} server processes following one event log")
        serve_workers(settings, assistant=assistant, workers=workers)


@app.command()
def serve(
    ctx: typer.Context,
    host: HostOption = None,
    port: PortOption = None,
    assistant: Annotated[
        bool, typer.Option(help="Load the assistant for /v1/assistant/chat on first use.")
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes on this port, each with the recommender in memory, "
            "following one event log (each uses its own memory: the assistant loads per "
            "process).",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API and the web page over the workdir's published artifacts.

    Newly published embeddings, index, graph, profiles or models are picked up without a
    restart. With --workers N, or N `tastegraph serve` processes on several machines over
    one PostgreSQL store (store_url), an event any process acknowledges reaches every
    process's live profiles within about a second; a feed asked with `after` (the
    log_position POST /v1/events answers) reflects it at once. The URL it prints carries
    the write token for the page (after #, so it never reaches a server log).
    """
    _serve(settings_of(ctx), host, port, assistant, workers=workers)


@app.command()
def demo(
    ctx: typer.Context,
    data: DataOption = None,
    content_epochs: Annotated[
        int, typer.Option(min=1, help="Fusion model epochs on photo-text pairs.")
    ] = 30,
    taste_epochs: Annotated[
        int, typer.Option(min=0, help="Fusion model epochs on co-engaged items.")
    ] = 10,
    assistant_items: Annotated[
        int,
        typer.Option(
            min=0, help="Items with text the assistant aligns on (about a minute); 0: none."
        ),
    ] = 8000,
    shopping_examples: Annotated[
        int,
        typer.Option(min=0, help="Purchases the assistant's stage 2 learns from (~1 s each)."),
    ] = 800,
    reingest: Annotated[
        bool, typer.Option(help="Read the dataset again although the store holds events.")
    ] = False,
    retrain: Annotated[
        bool,
        typer.Option(help="Train the fusion model and the re-ranker again although they exist."),
    ] = False,
    reranker: Annotated[
        bool,
        typer.Option(help="Train the related-items re-ranker (its own fusion model, ~10 min)."),
    ] = True,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve when the jobs are done.")
    ] = True,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """The main job on an H&M dataset folder, serving as soon as feeds can be served:

    1. ingest: catalog, customers, purchases and photos into the store (skipped once the
       store holds events; --reingest reads the files again, idempotently);
    2. train embeddings: the fusion model over the frozen image and text towers (skipped
       when one exists; --retrain);
    3. embed: every item's embedding, encoding only new photos and texts;
    4. index: the FAISS item index; 5. graph: taste graph, interests, popular items;
    6. profiles: every user's interests;
    7. serve: the API and the web page on 127.0.0.1, while in the background
    8. train feed: fits how much popular items weigh in the feed on the log's last tenth;
    9. train reranker: learns from the last 8 weeks' baskets how to order related items
       (skipped when one exists; --retrain; --no-reranker leaves it out);
    10. related table: every item's related items, computed ahead of requests; and
    11. train assistant: aligns the projector so the LM reads item embeddings (stage 1),
       then teaches it to pick what shoppers bought (stage 2).
    The server swaps each in when it is published; /healthz and the page show what is
    still training, and the chat says the assistant is still learning until it is ready.
    With --no-serve every step runs in the foreground.

    Steps 4-6, 8, 10 and 11 are skipped when built from the current embeddings, so a second run
    starts serving in seconds.
    """
    from tastegraph.pipeline import IMPROVING_STEPS, SERVING_STEPS, Pipeline, PipelineConfig
    from tastegraph.store import open_store

    settings = settings_of(ctx, data)
    config = PipelineConfig(
        content_epochs,
        taste_epochs,
        assistant_items,
        shopping_examples,
        reingest,
        retrain,
        reranker,
    )

    def show(report: StepReport) -> None:
        state = "done" if report.ran else "skip"
        typer.echo(f"[{state}] {report.step:16} {report.seconds:7.1f} s  {report.detail}")

    first = SERVING_STEPS if serve_after else SERVING_STEPS + IMPROVING_STEPS
    with open_store_of(settings) as store:
        try:
            Pipeline(store, settings, config).run(settings.data, show, only=first)
        except (FileNotFoundError, ValueError, InputError) as exc:
            raise fail(str(exc)) from None
    if not serve_after:
        return

    def run_step(name: str) -> str:
        with open_store(settings.resolved_store_url) as store:  # this thread's connection
            [report] = Pipeline(store, settings, config).run(None, show, only=[name])
        return report.detail

    _serve(settings, host, port, assistant_items > 0, (IMPROVING_STEPS, run_step))
