"""`tastegraph bench ...`: speed against a baseline run in the same process."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from tastegraph.cli.apps import bench_app
from tastegraph.cli.common import (
    DataOption,
    fail,
    open_store_at,
    open_store_of,
    served_assistant,
    settings_of,
)
from tastegraph.config import Settings
from tastegraph.store.postgres import redacted

Number = TypeVar("Number", int, float)

BenchStoreOption = Annotated[
    str | None,
    typer.Option(
        "--store-url",
        help="An empty PostgreSQL database for the servers' store: the workdir's store is "
        "copied into it first (as `tastegraph ingest store` does) and the run writes events "
        "there. Default: a SQLite copy in a scratch folder.",
    ),
]


@bench_app.command("ingest")
def bench_ingest_command(
    data: DataOption = None,
    events: Annotated[int, typer.Option(help="Synthetic events for the bulk append.")] = 200_000,
    postgres: Annotated[
        str | None,
        typer.Option(
            help="A PostgreSQL store URL: the same bulk append runs there too, beside SQLite "
            "(its catalog gets the H&M items; events get ids of their own)."
        ),
    ] = None,
) -> None:
    """Time the H&M ingest and a bulk append of synthetic events, each against a baseline."""
    from tastegraph.bench.ingest import run

    settings = Settings()
    folder = data or settings.data
    if folder is None:
        raise fail("no dataset folder: pass --data PATH or set TASTEGRAPH_DATA")
    run(folder, events, postgres)


@bench_app.command("recommend")
def bench_recommend_command(
    ctx: typer.Context,
    synthetic_items: Annotated[
        int, typer.Option(min=0, help="Items in the synthetic catalog (0: skip it).")
    ] = 1_000_000,
    requests: Annotated[int, typer.Option(min=10, help="Timed feed requests per run.")] = 500,
    catalog: Annotated[
        bool,
        typer.Option(
            help="Also time the workdir's real catalog (needs embed, index, graph, profiles)."
        ),
    ] = True,
) -> None:
    """Time the home feed (p50/p99, in-process), related items and the per-event profile
    update, each beside a baseline: exact brute-force search, the hand-weighted related
    score without the re-ranker, and a full profile recompute. The feed is timed as served
    (walks and interest neighbours found ahead, as the server does when it loads) and with
    nothing kept between requests."""
    from tastegraph.bench.recommend import run

    settings = settings_of(ctx)
    try:
        run(settings.workdir if catalog else None, synthetic_items, requests)
    except FileNotFoundError as exc:
        raise fail(f"{exc}; or pass --no-catalog") from None


@bench_app.command("chat")
def bench_chat_command(
    ctx: typer.Context,
    conversations: Annotated[
        int, typer.Option(min=1, help="Scripted conversations of 7 turns to time.")
    ] = 10,
) -> None:
    """Time chat turns as served: to the first words (the cards and the first line) and to
    the whole reply (the LM's reason for the pick, checked), by kind of turn, against a turn
    with a new need. Targets: p50 first words <= 1 s, whole reply <= 4 s."""
    from tastegraph.bench.chat import table, time_turns
    from tastegraph.evaluate.conversations import scripts

    with served_assistant(settings_of(ctx)) as (events, assistant):
        chosen = scripts(events, assistant.catalog, lambda _: True, conversations, seed=1)
        assistant.answer(chosen[0].user_id, "warm up")
        times = time_turns(assistant, chosen)
    typer.echo(table(times))


@bench_app.command("serve")
def bench_serve_command(
    ctx: typer.Context,
    rates: Annotated[
        str, typer.Option(help="Feed requests per second to try, comma-separated.")
    ] = "50,100,200,300",
    seconds: Annotated[float, typer.Option(min=1, max=120, help="Seconds at each rate.")] = 10,
    events_per_second: Annotated[
        float, typer.Option(min=0, max=500, help="Save events posted meanwhile.")
    ] = 20,
    generator: Annotated[
        str | None,
        typer.Option(
            help="What sends the load: wrk (compiled, little CPU) or python (httpx); "
            "default: wrk when it is on PATH, else python.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        str,
        typer.Option(
            help="Server processes (tastegraph serve --workers); several, comma-separated "
            "(1,2), start a server of each and load them side by side (at each rate, one "
            "after the other), then compare the highest feed rate each sustains."
        ),
    ] = "1",
    warmup: Annotated[
        float,
        typer.Option(
            min=0,
            max=300,
            help="Seconds of load at the first rate before measuring, unreported (a server's "
            "first half minute under load is slower).",
        ),
    ] = 30.0,
    store_urls: Annotated[
        list[str] | None,
        typer.Option(
            "--store-url",
            help="An empty PostgreSQL database for the servers' store, once per worker count "
            "in --workers' order (each server writes events to its own): the workdir's store "
            "is copied into it first (as `tastegraph ingest store` does). Default: a SQLite "
            "copy in a scratch folder.",
        ),
    ] = None,
) -> None:
    """Load-test the server on 127.0.0.1 over the workdir (a copy, since events are
    written): feed requests at each rate while events and related-items requests (one per
    four feeds) arrive, against GET /healthz at the feed's rate as the floor. Reports
    p50/p90/p99 latency and errors per endpoint and rate, and the CPU share of the load
    generator beside the server's. With several worker counts, a server of each is loaded
    side by side, rate by rate (the machine's speed drifts), and the run ends with the
    highest feed rate each sustained (feed p99 at most 20 ms, no request failed) and their
    ratio."""
    from tastegraph.bench.loadgen import wrk_binary
    from tastegraph.bench.serve import (
        GENERATORS,
        LoadConfig,
        report,
        run_side_by_side,
        scaling_report,
    )

    settings = settings_of(ctx)
    steps = _numbers(rates, "rates", float)
    if min(steps) <= 0 or max(steps) > 2000:
        raise typer.BadParameter("rates must be between 0 and 2000 per second")
    process_counts = _numbers(workers, "workers", int)
    if min(process_counts) < 1 or max(process_counts) > 64:
        raise typer.BadParameter("workers must be between 1 and 64")
    if len(set(process_counts)) < len(process_counts):
        raise typer.BadParameter(f"workers must differ from each other, got {workers!r}")
    stores: list[str | None] = [None] * len(process_counts)
    if store_urls:
        if len(store_urls) != len(process_counts) or len(set(store_urls)) < len(store_urls):
            raise typer.BadParameter(
                "give --store-url once per worker count, a different empty database each"
            )
        stores = list(store_urls)
    if generator is None:
        generator = "wrk" if wrk_binary() else "python"
        if generator == "python":
            typer.echo("wrk is not on PATH (apt-get install wrk): the load comes from Python")
    elif generator not in GENERATORS:
        raise typer.BadParameter(f"unknown generator {generator!r}; expected wrk or python")
    elif generator == "wrk" and wrk_binary() is None:
        raise fail("wrk is not on PATH: apt-get install wrk, or pass --generator python")
    config = LoadConfig(
        rates=steps, seconds=seconds, events_per_second=events_per_second, warmup=warmup
    )
    with ExitStack() as servers:
        serving = {
            count: servers.enter_context(_serving_copy(settings, count, store))
            for count, store in zip(process_counts, stores, strict=True)
        }
        by_workers = run_side_by_side(serving, config, generator)
    for count, results in by_workers.items():
        typer.echo(f"server processes: {count}")
        typer.echo(report(results))
    if len(by_workers) > 1:
        typer.echo(scaling_report(by_workers))


def _numbers(text: str, name: str, kind: type[Number]) -> tuple[Number, ...]:
    try:
        return tuple(kind(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{name} must be comma-separated numbers, got {text!r}") from None


@contextmanager
def _serving_copy(
    settings: Settings, workers: int = 1, store_url: str | None = None
) -> Iterator[Any]:
    """A server on 127.0.0.1 over a scratch copy of the workdir (benchmarks write events)."""
    from tastegraph.bench.serve import running_server

    with (
        _scratch_copy(settings, store_url) as (workdir, served_store),
        running_server(workdir, assistant=False, workers=workers, store_url=served_store) as server,
    ):
        typer.echo(f"serving {settings.workdir} (a copy) at {server.url}")
        typer.echo(f"store: {redacted(served_store)}")
        yield server


@contextmanager
def _scratch_copy(settings: Settings, store_url: str | None) -> Iterator[tuple[Path, str]]:
    """A copy of the workdir's artifacts in a scratch folder and the URL of a copy of its
    store: SQLite beside them, or `store_url`, an empty database, filled from the store."""
    import shutil
    import tempfile

    if store_url is None and settings.store_url:
        raise fail(
            f"the workdir's store is {redacted(settings.store_url)}, not a file to copy: pass "
            "--store-url with an empty database for the benchmark to write to"
        )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    with tempfile.TemporaryDirectory(prefix="tastegraph-bench-") as scratch:
        workdir = Path(scratch) / "work"
        # The servers read the SQLite file only when no database is given.
        unused = ["store.db*"] if store_url is not None else []
        skipped = shutil.ignore_patterns("features", "lm", "projector-training", *unused)
        shutil.copytree(settings.workdir, workdir, ignore=skipped)
        if store_url is not None:
            _copy_store_into(settings, store_url)
        os.sync()  # write the copy out now, not while the server is being measured
        yield workdir, store_url or f"sqlite:///{workdir / 'store.db'}"


def _copy_store_into(settings: Settings, store_url: str) -> None:
    from tastegraph.ingest import ingest_store

    with open_store_at(store_url) as target, open_store_of(settings) as source:
        if target.counts()["items"]:
            raise fail(f"{redacted(store_url)} is not empty; the benchmark needs an empty database")
        typer.echo(f"copying the store into {redacted(store_url)}")
        ingest_store(target, source, redacted(settings.resolved_store_url))


@bench_app.command("follow")
def bench_follow_command(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=10, help="Events posted, one at a time.")] = 200,
    store_url: BenchStoreOption = None,
) -> None:
    """How soon a second server process sees an event the first acknowledged: two
    `tastegraph serve` processes over one copy of the workdir's store, events posted to the
    first, the second's /healthz polled until its log position reaches the event's. The
    first's own wait, polled the same way, is the floor. (A feed asked with `after` does
    not wait for this: it catches up before answering.)"""
    import secrets

    from tastegraph.bench.follow import report, run_follow
    from tastegraph.bench.serve import running_server

    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        item = next(store.iter_items()).id
    token = secrets.token_urlsafe(16)
    with (
        _scratch_copy(settings, store_url) as (workdir, served_store),
        running_server(workdir, token, assistant=False, store_url=served_store) as writer,
        running_server(workdir, token, assistant=False, store_url=served_store) as other,
    ):
        typer.echo(f"two servers over {settings.workdir} (a copy), store {redacted(served_store)}")
        typer.echo(report(run_follow(writer, other, item, events), target_ms=50.0))


@bench_app.command("soak")
def bench_soak_command(
    ctx: typer.Context,
    minutes: Annotated[float, typer.Option(min=0.1, max=60, help="Length of the soak.")] = 10,
    rate: Annotated[float, typer.Option(min=1, max=1000, help="Feed requests per second.")] = 50,
    events_per_second: Annotated[
        float, typer.Option(min=0, max=500, help="Save events posted meanwhile.")
    ] = 20,
) -> None:
    """Sustained load on the server over a copy of the workdir: a steady rate of feed
    requests and events for `minutes` after a 30 s warm-up; reports throughput, latency,
    errors and the server's memory growth."""
    from tastegraph.bench.serve import LoadConfig, run_soak, soak_report

    config = LoadConfig(rates=(rate,), seconds=minutes * 60, events_per_second=events_per_second)
    with _serving_copy(settings_of(ctx)) as server:
        typer.echo(soak_report(run_soak(server, config), rate))


@bench_app.command("assistant")
def bench_assistant_command(
    ctx: typer.Context,
    data: DataOption = None,
    items: Annotated[
        int, typer.Option("-n", "--items", min=1, max=64, help="Candidate items per turn (N).")
    ] = 8,
    tokens: Annotated[
        int, typer.Option("-k", "--tokens", min=1, max=64, help="Soft tokens per item (k).")
    ] = 4,
    resolution: Annotated[
        list[int] | None,
        typer.Option(
            help="Photo size for the Qwen3-VL-2B-shape path; repeat for several (default: 256)."
        ),
    ] = None,
    decode: Annotated[int, typer.Option(min=1, help="Tokens decoded per turn.")] = 16,
    repeats: Annotated[int, typer.Option(min=1, help="Timed turns per path.")] = 5,
    cpu_hour_usd: Annotated[
        float, typer.Option(help="Price of this machine per hour (USD).")
    ] = 0.10,
    gpu_hour_usd: Annotated[float, typer.Option(help="Price of one GPU per hour (USD).")] = 2.50,
    gpu_tflops: Annotated[
        float, typer.Option(help="Effective GPU TFLOP/s assumed for the GPU cost estimate.")
    ] = 200.0,
    full: Annotated[
        bool, typer.Option("--full", help="Photos at 256, 512 and 1024 px (several minutes).")
    ] = False,
) -> None:
    """One assistant turn with N candidate items three ways: item embeddings as soft tokens
    (ours), photos encoded per request by the default image tower, and a Qwen3-VL-2B-shaped
    vision tower whose visual tokens the LM prefills. Prints latency (median, p90, time to
    first token), FLOPs (also for the real Qwen3-VL-2B text model), peak memory and cost per
    million turns, each as a ratio to ours; writes JSON and a plot to <workdir>/reports."""
    from tastegraph.bench.assistant import BenchConfig, run

    settings = settings_of(ctx)
    folder = data or settings.data
    if folder is None:
        raise fail("no dataset folder for the photos: pass --data PATH or set TASTEGRAPH_DATA")
    sizes = (256, 512, 1024) if full else tuple(resolution or (256,))
    if any(size % 32 for size in sizes):
        raise fail(f"resolutions must be multiples of 32 (patch 16, merge 2), got {sizes}")
    config = BenchConfig(
        items=items,
        tokens=tokens,
        resolutions=sizes,
        decode=decode,
        repeats=repeats,
        cpu_hour_usd=cpu_hour_usd,
        gpu_hour_usd=gpu_hour_usd,
        gpu_tflops=gpu_tflops,
        language_model=settings.language_model,
    )
    try:
        run(folder, settings.workdir, config)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None


@bench_app.command("fusion")
def bench_fusion_command(
    items: Annotated[int, typer.Option(min=2, help="Items in the synthetic catalog.")] = 1700,
    ratings: Annotated[int, typer.Option(min=2, help="Ratings in the synthetic log.")] = 90_000,
    seed: Annotated[int, typer.Option(help="Random seed of the log and the training.")] = 0,
) -> None:
    """Time fusion training on a synthetic dense log (MovieLens-sized by default: users rate
    dozens of items per sitting) with the training budget, against training every pair of
    every epoch at the same time per batch. Target: 5 minutes on 2 cores."""
    from tastegraph.bench.fusion import run

    run(items, ratings, seed)


@bench_app.command("embed")
def bench_embed_command(
    data: DataOption = None,
    images: Annotated[
        int, typer.Option(help="Photos to embed (and to time the raw tower on).")
    ] = 512,
    threads: Annotated[
        int | None,
        typer.Option(help="Threads of the job, each decoding and encoding a batch [one per core]."),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Embed every photo of the dataset.")] = False,
) -> None:
    """Time the embed job end to end against the raw image-tower forward pass, and an
    incremental re-run that adds 1% new photos."""
    from tastegraph.bench.embed import run

    folder = data or Settings().data
    if folder is None:
        raise fail("no dataset folder: pass --data PATH or set TASTEGRAPH_DATA")
    run(folder, images, threads, full)
