"""The `tastegraph` command: each subcommand is a thin call into a package."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tastegraph.artifacts import write_json
from tastegraph.config import Settings
from tastegraph.ingest import IngestReport, InputError, ingest_events, ingest_hm, ingest_items
from tastegraph.ingest.quarantine import RowError
from tastegraph.ingest.validate import parse_timestamp
from tastegraph.store import Event, SchemaVersionError, SQLiteStore, Store, open_store

if TYPE_CHECKING:
    from tastegraph.assistant.chat import Assistant
    from tastegraph.recommend.recommender import Recommender

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


def _settings(ctx: typer.Context, data: Path | None = None) -> Settings:
    settings: Settings = ctx.obj
    if data is not None:
        settings = settings.model_copy(update={"data": data})
    return settings


def _open(settings: Settings) -> SQLiteStore:
    try:
        return open_store(settings.resolved_store_url)
    except (SchemaVersionError, ValueError, NotImplementedError) as exc:
        raise _fail(str(exc)) from None


def _parse_time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_timestamp({"time": value}, "time")
    except RowError as exc:
        raise typer.BadParameter(exc.reason) from None


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
    with _open(settings) as store:
        try:
            reports = job(store)
        except InputError as exc:
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


@train_app.command("embeddings")
def train_embeddings_command(
    ctx: typer.Context,
    cutoff: Annotated[
        str | None,
        typer.Option(help="Use only events before this time (ISO 8601 or unix seconds)."),
    ] = None,
    content_epochs: Annotated[int, typer.Option(help="Epochs of photo-text pairs.")] = 30,
    taste_epochs: Annotated[int, typer.Option(help="Epochs of co-engaged item pairs.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    engine: EngineOption = None,
) -> None:
    """Train the fusion model that maps photo and text features into one item space.

    Encodes any photo or text not cached yet with the frozen towers (resumable), then trains
    stage 1 on photo-text pairs of the same item and stage 2 on items engaged together.
    """
    from tastegraph.embeddings.job import train_fusion_model
    from tastegraph.embeddings.train import TrainConfig

    settings = _with_engine(_settings(ctx), engine)
    config = TrainConfig(
        content_epochs=content_epochs,
        taste_epochs=taste_epochs,
        cutoff=_parse_time(cutoff),
        seed=seed,
    )
    with _open(settings) as store:
        result, folder = train_fusion_model(store, settings, config)
    final_loss = result.losses[-1][1] if result.losses else float("nan")
    typer.echo(
        f"trained on {result.content_items:,} photo-text pairs and {result.taste_pairs:,} "
        f"co-engaged pairs; final loss {final_loss:.3f}\nsaved {folder}"
    )


@train_app.command("reranker")
def train_reranker_command(
    ctx: typer.Context,
    content_epochs: Annotated[int, typer.Option(help="Epochs of photo-text pairs.")] = 30,
    taste_epochs: Annotated[int, typer.Option(help="Epochs of co-engaged item pairs.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train the related-items re-ranker on the baskets of the log's last 8 weeks.

    Its features must not have seen those baskets, so it trains its own fusion model on the
    events before them (as long as `train embeddings` takes) and builds the taste graph from
    those events too. `tastegraph related` and the server use it once published.
    """
    from tastegraph.embeddings.train import TrainConfig
    from tastegraph.recommend.rerank_job import HOLDOUT_DAYS, train_and_publish

    settings = _settings(ctx)
    config = TrainConfig(content_epochs=content_epochs, taste_epochs=taste_epochs, seed=seed)
    with _open(settings) as store:
        try:
            reranker, folder = train_and_publish(store, settings, config)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    if reranker is None:
        raise _fail(
            f"too few baskets of two or more items in the last {HOLDOUT_DAYS:.0f} days of the "
            "log to learn from; related items keep the related score",
            code=1,
        )
    typer.echo(f"published the related-items re-ranker: {folder}")


EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="Where the towers run: local, or ray (Ray Data; RAY_ADDRESS for a cluster).",
        show_default=False,
    ),
]


@train_app.command("assistant")
def train_assistant_command(
    ctx: typer.Context,
    stage: Annotated[
        str,
        typer.Option(
            help="alignment (stage 1), shopping (stage 2, from the stage-1 projector when "
            "there is one) or all (both, in order)."
        ),
    ] = "all",
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the examples.")] = 1,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Examples per step (default: 16 in stage 1, 8 in stage 2)."),
    ] = None,
    max_items: Annotated[
        int,
        typer.Option(min=10, help="Stage 1: items with text to align on (5-12 min per 1,000)."),
    ] = 2000,
    examples: Annotated[
        int,
        typer.Option(
            min=20, help="Stage 2: examples to learn from, split over the request families."
        ),
    ] = 800,
    lora: Annotated[
        int, typer.Option(min=0, help="Stage 2: LoRA rank on the LM (0: the LM stays frozen).")
    ] = 0,
    tokens: Annotated[int, typer.Option("-k", "--tokens", min=1, help="Soft tokens per item.")] = 4,
) -> None:
    """Teach the projector to turn item embeddings into tokens the frozen LM reads (the
    settings' language_model: SmolLM2-135M-Instruct by default, Qwen2.5-Coder-0.5B-Instruct,
    or a path). Stage 1, alignment: the LM learns to tell an item's text from its tokens.
    Stage 2, shopping: from real purchases, the LM learns to pick the bought item among
    negatives of its slice and category, reading each item as its tokens and its text line,
    given the shopper's recent items and a request ("for me", an attribute, or "like this,
    but"). Each stage resumes from its last checkpoint and publishes the projector under
    models/projector."""
    from tastegraph.assistant.shopping import ShoppingConfig, shop_assistant
    from tastegraph.assistant.train import AlignConfig, align_assistant

    if stage not in ("alignment", "shopping", "all"):
        raise typer.BadParameter(f"unknown stage {stage!r}; expected alignment, shopping or all")
    settings = _settings(ctx)
    with _open(settings) as store:
        try:
            if stage in ("alignment", "all"):
                align = AlignConfig(epochs=epochs, batch_size=batch_size or AlignConfig.batch_size)
                result, published = align_assistant(store, settings, align, max_items, tokens)
                typer.echo(f"stage 1: {_training_line(result)}\nsaved {published}")
            if stage in ("shopping", "all"):
                batch = batch_size or ShoppingConfig.batch_size
                config = ShoppingConfig(epochs=epochs, batch_size=batch, lora_rank=lora)
                result, published = shop_assistant(store, settings, config, examples, tokens)
                typer.echo(f"stage 2: {_training_line(result)}\nsaved {published}")
        except (FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from None


def _training_line(result: Any) -> str:
    return (
        f"{result.examples:,} examples, {result.steps} steps ({result.seconds:.0f} s); "
        f"held-out loss {result.heldout_loss_before:.3f} -> {result.heldout_loss_after:.3f}"
    )


def _with_engine(settings: Settings, engine: str | None) -> Settings:
    if engine is None:
        return settings
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"unknown engine {engine!r}; expected local or ray")
    return settings.model_copy(update={"embed_engine": engine})


@app.command()
def embed(ctx: typer.Context, engine: EngineOption = None) -> None:
    """Compute item embeddings offline and publish a new embedding store version.

    Only photos and texts no earlier run encoded are encoded (features are cached by content
    hash and tower version); a killed run resumes where it stopped. Needs a fusion model:
    run `tastegraph train embeddings` first.
    """
    from tastegraph.embeddings.job import run_embed

    settings = _with_engine(_settings(ctx), engine)
    with _open(settings) as store:
        try:
            result = run_embed(store, settings)
        except (FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from None
    table = result.features.table
    state = "published" if result.published else "unchanged, kept"
    typer.echo(
        f"{len(table):,} items ({int(table.has_image.sum()):,} with a photo, "
        f"{int(table.has_text.sum()):,} with text); encoded {result.features.encoded_images:,} "
        f"photos and {result.features.encoded_texts:,} texts in {result.seconds:.1f} s\n"
        f"{state} {result.embeddings.folder}"
    )


@app.command("index")
def index_command(
    ctx: typer.Context,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Build from scratch instead of adding new items.")
    ] = False,
) -> None:
    """Build or update the approximate-nearest-neighbour index over the current embeddings.

    New items are added to the current index; a changed embedding store version with changed
    vectors, or --rebuild, builds a new one. Either way a new version is published atomically.
    """
    from tastegraph.embeddings.store import EmbeddingStore
    from tastegraph.index.build import build_index, index_options, update_index

    settings = _settings(ctx)
    try:
        embeddings = EmbeddingStore.open(settings.workdir)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    publish = build_index if rebuild else update_index
    with _open(settings) as store:
        folder = publish(embeddings, store, settings.workdir, **index_options(settings))
    typer.echo(f"indexed {len(embeddings):,} items of embeddings {embeddings.version}\n{folder}")


@app.command()
def similar(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="The item to find neighbours of.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many neighbours.")] = 10,
) -> None:
    """Print the items nearest to one item in the embedding space, to eyeball the space."""
    from tastegraph.embeddings.store import EmbeddingStore

    settings = _settings(ctx)
    try:
        embeddings = EmbeddingStore.open(settings.workdir)
        neighbours = embeddings.similar(item_id, k)
    except (FileNotFoundError, KeyError) as exc:
        raise _fail(str(exc).strip("\"'")) from None
    with _open(settings) as store:
        for neighbour, score in [(item_id, 1.0), *neighbours]:
            item = store.get_item(neighbour)
            title = (item.title if item else None) or "(photo only)"
            kind = (item.attributes.get("product_type", "") if item else "") or ""
            typer.echo(f"{score:6.3f}  {neighbour:14}  {title}  {kind}")


@app.command("describe")
def describe_command(
    ctx: typer.Context,
    item_ids: Annotated[list[str], typer.Argument(help="The items to describe.")],
) -> None:
    """Print what the assistant's LM says each item is, reading only its embedding (the
    question stage 1 of `tastegraph train assistant` trains: "Describe this item"). This is
    how photo-only items get words; items with text show their real words beside the guess,
    to judge it. The LM reads the items through the stage-1 projector (the one trained to
    describe). About 2 s per item on 2 CPU cores, after a few seconds of loading.
    Example: tastegraph describe 0108775015 0110065001"""
    from tastegraph.assistant.describe import open_describer, projector_embeddings
    from tastegraph.encoders import item_text

    settings = _settings(ctx)
    try:
        embeddings = projector_embeddings(settings.workdir)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    with _open(settings) as store:
        items = {item_id: store.get_item(item_id) for item_id in item_ids}
    for item_id, item in items.items():
        if item is None and item_id not in embeddings:
            raise _fail(f"unknown item {item_id!r}: the store has no item with that id")
        if item_id not in embeddings:
            raise _fail(
                f"item {item_id!r} has no embedding in version {embeddings.version}; run "
                "`tastegraph embed` (and `tastegraph train assistant`) first"
            )
    try:
        describer = open_describer(settings.workdir)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    for item_id, item in items.items():
        text = item_text(item) if item else ""
        title = (item.title if item else None) or ("(photo only)" if not text else "")
        typer.echo(f"{item_id}  {title}")
        typer.echo(f"  generated from the item's embedding: {describer(item_id)}")
        if item is not None and text:
            real = [
                f"{key}: {item.attributes[key]}"
                for key in (settings.colour_attribute, settings.kind_attribute)
                if item.attributes.get(key)
            ]
            shown = text if len(text) <= 200 else text[:199] + "…"
            typer.echo(f"  real attributes: {'; '.join(real) or '(none)'}")
            typer.echo(f"  real text: {shown}")


@evaluate_app.command("embeddings")
def evaluate_embeddings_command(
    ctx: typer.Context,
    holdout_items: Annotated[
        int, typer.Option(help="Items with text kept out of training.")
    ] = 1000,
    test_weeks: Annotated[float, typer.Option(help="Last weeks of events: the test split.")] = 8.0,
    cutoff: Annotated[
        str | None,
        typer.Option(
            help="Start of the test split (ISO 8601 or unix seconds); default: test-weeks "
            "before the last event. Set it when live events follow a historical log."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    validation: Annotated[
        bool, typer.Option("--validation", help="Report the validation split (for tuning).")
    ] = False,
) -> None:
    """Train on the training split, then report text-to-image retrieval and basket completion
    with 95% bootstrap intervals, against raw-tower and popularity baselines."""
    from tastegraph.embeddings.job import prepare_features
    from tastegraph.embeddings.train import TrainConfig
    from tastegraph.evaluate.embeddings import EvalConfig, evaluate_embeddings

    settings = _settings(ctx)
    with _open(settings) as store:
        features = prepare_features(store, settings)
        events = list(store.iter_events())
    config = EvalConfig(
        holdout_items=holdout_items,
        test_weeks=test_weeks,
        cutoff=_parse_time(cutoff),
        seed=seed,
        validation=validation,
    )
    try:
        report = evaluate_embeddings(features.table, events, TrainConfig(seed=seed), config)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    path = settings.workdir / "reports" / f"embeddings-{report.split['name']}.json"
    write_json(path, {"report": report, "towers": features.towers})
    typer.echo(f"split: {report.split}")
    for task, estimates in [
        ("text -> image recall@10 (held-out items)", report.text_to_image_recall_at_10),
        ("basket completion recall@20 (baskets after the cut-off)", report.basket_recall_at_20),
        ("recall@20 gain of fused, taste-trained over (paired)", report.basket_recall_gain_over),
    ]:
        typer.echo(task)
        for name, estimate in estimates.items():
            typer.echo(f"  {name:32} {estimate}")
    typer.echo(f"report: {path}")


@app.command("graph")
def graph_command(ctx: typer.Context) -> None:
    """Build the taste graph, its interests (labelled clusters) and fresh popular items
    over the current embeddings and all events, and publish them as a new version."""
    from tastegraph.graph.job import build_and_publish

    settings = _settings(ctx)
    with _open(settings) as store:
        try:
            folder = build_and_publish(store, settings.workdir, settings)
        except FileNotFoundError as exc:
            raise _fail(str(exc)) from None
    typer.echo(f"published the taste graph: {folder}")


@app.command("profiles")
def profiles_command(ctx: typer.Context) -> None:
    """Recompute every user's interest profile from all their events (the batch job; the
    server also updates profiles live on each event) and publish them."""
    from tastegraph.index import open_index
    from tastegraph.profiles.batch import publish_profiles

    settings = _settings(ctx)
    try:
        index = open_index(settings.workdir)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    with _open(settings) as store:
        folder, profiles = publish_profiles(store, index, settings)
    interests = sum(len(p.interests) for p in profiles)
    typer.echo(f"published {len(profiles):,} profiles with {interests:,} interests: {folder}")


ExploreOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of the feed given to interests next to the user's (0-1; default 0.2).",
        show_default=False,
    ),
]


def _print_recommendations(recommendations: list[Any]) -> None:
    for rec in recommendations:
        typer.echo(
            f"{rec.score:8.3f}  {rec.item_id:14}  {rec.source:8}  {rec.interest:28}  {rec.reason}"
        )


def _recommender(settings: Settings, store: Store) -> Recommender:
    from tastegraph.recommend.online import open_recommender

    try:
        return open_recommender(settings.workdir, store, settings)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(f"{exc} (run `tastegraph index`, `graph` and `profiles`)") from None


@app.command()
def recommend(
    ctx: typer.Context,
    user_id: Annotated[str, typer.Argument(help="The user to build a home feed for.")],
    n: Annotated[int, typer.Option("-n", min=1, max=500, help="How many items.")] = 12,
    explore: ExploreOption = None,
) -> None:
    """Print a user's home feed with the reason for every item. An unknown user gets the
    feed of a new user (popular items)."""
    settings = _settings(ctx)
    with _open(settings) as store:
        recommender = _recommender(settings, store)
    _print_recommendations(recommender.feed(user_id, n, explore=explore))


@app.command()
def related(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="The item to find more like.")],
    n: Annotated[int, typer.Option("-n", min=1, max=500, help="How many items.")] = 12,
) -> None:
    """More like this: items near the given one in taste and look, with reasons."""
    settings = _settings(ctx)
    with _open(settings) as store:
        recommender = _recommender(settings, store)
    if item_id not in recommender.index:
        raise _fail(f"item {item_id!r} is not in the index")
    _print_recommendations(recommender.related(item_id, n))


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help='What to look for, e.g. "black summer dress".')],
    n: Annotated[int, typer.Option("-n", min=1, max=500, help="How many items.")] = 12,
) -> None:
    """Text search: the query is embedded by the text tower and the fusion model, then
    matched against item embeddings."""
    from tastegraph.recommend.search import QueryEncoder

    settings = _settings(ctx)
    with _open(settings) as store:
        recommender = _recommender(settings, store)
    try:
        vector = QueryEncoder(settings.workdir, settings).encode(query)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    _print_recommendations(recommender.search(vector, n, query=query))


@app.command()
def chat(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="Whose feed and profile the assistant uses.")],
    candidates: Annotated[
        int, typer.Option(min=1, max=9, help="Items shown to the LM per turn.")
    ] = 8,
) -> None:
    """Chat with the shopping assistant in the terminal (an empty line or Ctrl-D ends it).
    It follows the conversation: "under 30", "in blue", "cheaper", "more like [2]", "not
    that one", "show me more". The LM reads the candidates as item tokens and picks [1]."""
    from tastegraph.assistant.chat import Assistant
    from tastegraph.assistant.facts import Catalog
    from tastegraph.assistant.lm import load_item_lm
    from tastegraph.recommend.search import QueryEncoder

    settings = _settings(ctx)
    with _open(settings) as store:
        recommender = _recommender(settings, store)
        catalog = Catalog.open(store, settings)
    try:
        lm = load_item_lm(settings.workdir)
        encoder = QueryEncoder(settings.workdir, settings)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    assistant = Assistant(lm, recommender, catalog, encoder, candidates)
    state = None
    typer.echo(f"chatting as {user}; an empty line ends the chat")
    while True:
        try:
            message = input("you> ").strip()
        except EOFError:
            break
        if not message:
            break
        reply = assistant.reply(user, message, state)
        state = reply.state
        typer.echo(f"assistant> {reply.text}\n  items: {', '.join(reply.items)}")


HostOption = Annotated[
    str | None,
    typer.Option(help="Address to listen on (default: 127.0.0.1, this machine only)."),
]
PortOption = Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: 8000).")]


def _serve(settings: Settings, host: str | None, port: int | None, assistant: bool) -> None:
    import secrets

    import uvicorn

    from tastegraph.serve.app import create_app

    updates: dict[str, Any] = {"serve_host": host or settings.serve_host}
    updates["serve_port"] = port or settings.serve_port
    if not settings.api_token:
        updates["api_token"] = secrets.token_urlsafe(24)
    settings = settings.model_copy(update=updates)
    try:
        app = create_app(settings, assistant=assistant)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    url = f"http://{settings.serve_host}:{settings.serve_port}"
    typer.echo(
        f"tastegraph at {url}/#token={settings.api_token}\n"
        f"  API docs {url}/docs; write endpoints need 'Authorization: Bearer "
        f"{settings.api_token}' (set TASTEGRAPH_API_TOKEN to choose it)"
    )
    uvicorn.run(app, host=settings.serve_host, port=settings.serve_port, log_level="warning")


@app.command()
def serve(
    ctx: typer.Context,
    host: HostOption = None,
    port: PortOption = None,
    assistant: Annotated[
        bool, typer.Option(help="Load the assistant for /v1/assistant/chat on first use.")
    ] = True,
) -> None:
    """Run the HTTP API and the web page over the workdir's published artifacts.

    Newly published embeddings, index, graph, profiles or models are picked up without a
    restart. The URL it prints carries the write token for the page (after #, so it never
    reaches a server log).
    """
    _serve(_settings(ctx), host, port, assistant)


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
        typer.Option(min=0, help="Items the assistant aligns on (5-12 min per 1,000); 0: none."),
    ] = 2000,
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
    """The main job on an H&M dataset folder, then the server:

    1. ingest: catalog, customers, purchases and photos into the store (skipped once the
       store holds events; --reingest reads the files again, idempotently);
    2. train embeddings: the fusion model over the frozen image and text towers (skipped
       when one exists; --retrain);
    3. embed: every item's embedding, encoding only new photos and texts;
    4. index: the FAISS item index; 5. graph: taste graph, interests, popular items;
    6. profiles: every user's interests;
    7. train reranker: learn from the last 8 weeks' baskets how to order related items
       (skipped when one exists; --retrain; --no-reranker leaves it out);
    8. train assistant: align the projector so the LM reads item embeddings (stage 1),
       then teach it to pick what shoppers bought (stage 2);
    9. serve: the API and the web page on 127.0.0.1.

    Steps 4-6 and 8 are skipped when built from the current embeddings, so a second run
    starts serving in seconds. The first run on the H&M sample takes about an hour here.
    """
    from tastegraph.pipeline import Pipeline, PipelineConfig, StepReport

    settings = _settings(ctx, data)
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

    with _open(settings) as store:
        try:
            Pipeline(store, settings, config).run(settings.data, show)
        except (FileNotFoundError, ValueError, InputError) as exc:
            raise _fail(str(exc)) from None
    if serve_after:
        _serve(settings, host, port, assistant_items > 0)


ValidationOption = Annotated[
    bool,
    typer.Option(
        "--validation",
        help="Cut-off 2020-06-02, test weeks up to 2020-07-28: tune here, never on test.",
    ),
]


@evaluate_app.command("recommendations")
def evaluate_recommendations_command(
    ctx: typer.Context,
    validation: ValidationOption = False,
    explore: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="The explore dial of the measured feed.")
    ] = 0.0,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 1000,
) -> None:
    """Next purchases and basket completion on the H&M temporal split (cut-off 2020-07-28),
    against popularity, repurchase, co-visitation, implicit ALS and content baselines, with
    95% bootstrap intervals. Fits everything on events before the cut-off, including the
    fusion model. Writes reports/recommend-<split>.{md,json,png} in the workdir."""
    from tastegraph.embeddings.job import prepare_features
    from tastegraph.evaluate import report as reports
    from tastegraph.evaluate.recommend import RecommendEvalConfig, evaluate_recommendations
    from tastegraph.graph.taste import item_details

    settings = _settings(ctx)
    with _open(settings) as store:
        table = prepare_features(store, settings).table
        events = list(store.iter_events())
        details = item_details(store, settings.variant_attribute)
    options: dict[str, Any] = {"explore": explore, "resamples": resamples}
    config = (
        RecommendEvalConfig.validation(**options) if validation else RecommendEvalConfig(**options)
    )
    try:
        report = evaluate_recommendations(table, events, details, config)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    path = reports.write(report, settings.workdir / "reports")
    typer.echo(reports.markdown(report))
    typer.echo(f"report: {path}")


@evaluate_app.command("assistant")
def evaluate_assistant_command(
    ctx: typer.Context,
    validation: ValidationOption = False,
    train_examples: Annotated[
        int,
        typer.Option(min=20, help="Stage-2 examples, split evenly over the request families."),
    ] = 600,
    queries: Annotated[
        int,
        typer.Option(
            min=1, help="Test queries drawn per request family (350: intervals of about ±0.05)."
        ),
    ] = 350,
    candidates: Annotated[
        int,
        typer.Option(min=2, max=20, help="Candidates per query: the target and random negatives."),
    ] = 8,
    align_items: Annotated[
        int,
        typer.Option(
            min=0, help="Items with text that stage 1 aligns the projectors on (0: no stage 1)."
        ),
    ] = 1000,
    epochs: Annotated[int, typer.Option(min=1, help="Stage-2 passes over the examples.")] = 1,
    lora: Annotated[
        int,
        typer.Option(
            min=0,
            help="LoRA rank on the LM in stage 2 (0: LM frozen), for every LM method alike.",
        ),
    ] = 0,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 1000,
) -> None:
    """Does reading item embeddings help the LM pick what the shopper bought, where text
    cannot tell? On the H&M temporal split (cut-off 2020-07-28; --validation to tune) with
    held-out shoppers, each query one real purchase in the test weeks, asked three ways:
    "for me" (history only, photo-only items included), "attribute" (the item's colour and
    type) and "like this, but" (an item from the shopper's history, another colour).
    Candidates: the target among random negatives bought in the test weeks, of its slice
    (text or photo-only) and category, in shuffled order. Methods: ours (item tokens and
    text), tokens_only, text, generic_vision (projector on raw image features), cosine,
    random, keyword and off_the_shelf (the untrained LM reading text); hit@1 and MRR with 95%
    bootstrap intervals by family and slice (text, photo-only, warm, cold), and paired
    ratios. Trains on the training weeks the fusion model, stage 1 (twice: our embeddings
    and raw image features) and stage 2 for four LM methods: on 2 cores about 2 hours with
    the defaults. The LM is the settings' (TASTEGRAPH_LANGUAGE_MODEL).
    Writes reports/assistant-<split>.{md,json} in the workdir."""
    from tastegraph.assistant.facts import Catalog
    from tastegraph.assistant.models import cached_lm
    from tastegraph.assistant.shopping import ExampleConfig, ShoppingConfig
    from tastegraph.embeddings.job import prepare_features
    from tastegraph.encoders import load_text_tower
    from tastegraph.encoders.text import item_text
    from tastegraph.evaluate import report as reports
    from tastegraph.evaluate.assistant import AssistantEvalConfig, evaluate_assistant

    settings = _settings(ctx)
    with _open(settings) as store:
        table = prepare_features(store, settings).table
        events = list(store.iter_events())
        catalog = Catalog.open(store, settings)
        texts = {item.id: item_text(item) for item in store.iter_items()}
    options: dict[str, Any] = {
        "train_examples": train_examples,
        "queries_per_family": queries,
        "align_items": align_items,
        "resamples": resamples,
        "examples": ExampleConfig(candidates=candidates),
        "shopping": ShoppingConfig(epochs=epochs, lora_rank=lora),
    }
    config = (
        AssistantEvalConfig.validation(**options) if validation else AssistantEvalConfig(**options)
    )
    try:
        lm_folder = cached_lm(settings.workdir, settings.language_model)
        tower = load_text_tower(settings.text_model)
        report = evaluate_assistant(table, events, catalog, texts, lm_folder, tower, config)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    path = reports.write_assistant(report, settings.workdir / "reports")
    typer.echo(reports.assistant_markdown(report))
    typer.echo(f"report: {path}")


@evaluate_app.command("descriptions")
def evaluate_descriptions_command(
    ctx: typer.Context,
    items: Annotated[
        int, typer.Option(min=1, help="Held-out items to describe (about 1 s each on 2 cores).")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Which items are drawn; bootstrap resamples.")] = 0,
    projector: Annotated[
        str,
        typer.Option(
            help="alignment: the stage-1 projector, which `tastegraph describe` uses; "
            "current: the projector after stage 2, as the chat assistant reads items."
        ),
    ] = "alignment",
) -> None:
    """Does the assistant's LM name an item's colour and type from its embedding alone? On
    items with text that stage 1 did not train on, the LM describes each item as it
    describes photo-only items; a description counts when it names the item's colour
    (colour_attribute; "Dark Blue": "blue", and no other catalog colour) and type
    (kind_attribute; plurals count). Against (a) the nearest stage-1 item by raw image
    features, (b) chance from the training distribution and (c) the most common value,
    with 95% bootstrap intervals and the paired ratio ours / (a). Writes
    reports/descriptions.json in the workdir (descriptions-current.json with --projector
    current). About 7 minutes for 200 items on 2 CPU cores."""
    from tastegraph.assistant.describe import Which
    from tastegraph.evaluate.describe import DescribeEvalConfig, evaluate_store, table

    settings = _settings(ctx)
    if projector not in ("alignment", "current"):
        raise typer.BadParameter(f"unknown projector {projector!r}; expected alignment or current")
    which: Which = "current" if projector == "current" else "alignment"
    config = DescribeEvalConfig(items=items, seed=seed, projector=which)
    try:
        with _open(settings) as store:
            report = evaluate_store(store, settings, config)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    name = "descriptions.json" if which == "alignment" else "descriptions-current.json"
    path = settings.workdir / "reports" / name
    write_json(path, report)
    typer.echo(table(report))
    typer.echo(f"report: {path}")


@evaluate_app.command("conversations")
def evaluate_conversations_command(
    ctx: typer.Context,
    conversations: Annotated[
        int, typer.Option(min=1, help="Scripted conversations of 7 turns (~2 s a turn here).")
    ] = 300,
    replies: Annotated[
        int, typer.Option(min=0, help="Replies whose every claim is checked (LM reason on).")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Which shoppers and purchases are drawn.")] = 0,
) -> None:
    """Does the assistant obey what shoppers say, and is every reply true? Through the
    served assistant (what `tastegraph serve` holds), each held-out shopper (none of their
    purchases trained stage 2) talks about one of their real purchases: "I'm looking for a
    {type}", "in {colour}", "under {price}", "cheaper", "more like the second one", "not
    that one", "show me more". Every card is checked against what was said; a turn applied
    its intent when it holds, or when nothing is shown, the reply says why and no item
    meets it. The first turns' whole replies, the LM's reason included, have every colour,
    type, pattern, material and price claim checked against the item named. Writes
    reports/conversations.json in the workdir."""
    from tastegraph.assistant.projector import load_projector
    from tastegraph.evaluate.conversations import evaluate_conversations, scripts

    settings = _settings(ctx)
    with _served_assistant(settings) as (events, assistant):
        trained = set(load_projector(settings.workdir)[1].get("shoppers", []))
        if not trained:
            typer.echo("the projector lists no training shoppers: none are left out")
        held_out = scripts(
            events, assistant.catalog, lambda u: u not in trained, conversations, seed
        )
        report = evaluate_conversations(assistant, held_out, replies)
    path = settings.workdir / "reports" / "conversations.json"
    write_json(path, report)
    typer.echo(
        f"{report.conversations} conversations, {report.turns} turns, {report.cards} cards: "
        f"{report.violations} break a stated constraint\n"
        f"intent applied: {report.applied}\n"
        + "".join(f"  {k}: {v:.3f}\n" for k, v in report.by_intent.items())
        + f"turns with no card and a reason why: {report.no_match_turns}\n"
        f"replies checked: {report.replies}, attribute claims {report.claims}, true "
        f"{report.true_claims}; pick reason by the LM in {report.lm_written:.1%}; "
        f"degenerate replies {report.degenerate_replies}\n"
        f"the LM's reasons before the check: {report.lm_alone_true} of "
        f"{report.lm_alone_claims} claims true, {report.lm_alone_degenerate} degenerate\n"
        f"{report.seconds_per_turn:.2f} s a turn"
    )
    typer.echo(f"report: {path}")


app.command("eval", help="Shortcut for `tastegraph evaluate recommendations`.")(
    evaluate_recommendations_command
)


@app.command()
def stats(ctx: typer.Context) -> None:
    """Print how many items, photos, users, collections and events the store holds."""
    settings = _settings(ctx)
    with _open(settings) as store:
        counts = store.counts()
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

    settings = _settings(ctx)
    try:
        run(settings.workdir if catalog else None, synthetic_items, requests)
    except FileNotFoundError as exc:
        raise _fail(f"{exc}; or pass --no-catalog") from None


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

    with _served_assistant(_settings(ctx)) as (events, assistant):
        chosen = scripts(events, assistant.catalog, lambda _: True, conversations, seed=1)
        assistant.answer(chosen[0].user_id, "warm up")
        times = time_turns(assistant, chosen)
    typer.echo(table(times))


@contextmanager
def _served_assistant(settings: Settings) -> Iterator[tuple[list[Event], Assistant]]:
    """The store's events and the assistant exactly as `tastegraph serve` holds it."""
    from tastegraph.serve.service import Service

    with _open(settings) as store:
        service = Service(settings, store)
        try:
            events = list(store.iter_events())
            with service.assistant() as assistant:
                yield events, assistant
        except (FileNotFoundError, ValueError) as exc:
            raise _fail(str(exc)) from None
        finally:
            service.close()


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
) -> None:
    """Load-test the server on 127.0.0.1 over the workdir (a copy, since events are
    written): feed requests at each rate while events and related-items requests (one per
    four feeds) arrive, against GET /healthz at the feed's rate as the floor. Reports
    p50/p99 latency and errors per rate."""
    from tastegraph.bench.serve import LoadConfig, report, run_load

    settings = _settings(ctx)
    try:
        steps = tuple(float(rate) for rate in rates.split(","))
    except ValueError:
        raise typer.BadParameter(f"rates must be numbers, got {rates!r}") from None
    if not steps or min(steps) <= 0 or max(steps) > 2000:
        raise typer.BadParameter("rates must be between 0 and 2000 per second")
    config = LoadConfig(rates=steps, seconds=seconds, events_per_second=events_per_second)
    with _serving_copy(settings) as server:
        typer.echo(report(run_load(server.url, server.token, config)))


@contextmanager
def _serving_copy(settings: Settings) -> Iterator[Any]:
    """A server on 127.0.0.1 over a scratch copy of the workdir (benchmarks write events)."""
    import shutil
    import tempfile

    from tastegraph.bench.serve import running_server

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    with tempfile.TemporaryDirectory(prefix="tastegraph-bench-") as scratch:
        workdir = Path(scratch) / "work"
        skipped = shutil.ignore_patterns("features", "lm", "projector-training")
        shutil.copytree(settings.workdir, workdir, ignore=skipped)
        with running_server(workdir, assistant=False) as server:
            typer.echo(f"serving {settings.workdir} (a copy) at {server.url}")
            yield server


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
    with _serving_copy(_settings(ctx)) as server:
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

    settings = _settings(ctx)
    folder = data or settings.data
    if folder is None:
        raise _fail("no dataset folder for the photos: pass --data PATH or set TASTEGRAPH_DATA")
    sizes = (256, 512, 1024) if full else tuple(resolution or (256,))
    if any(size % 32 for size in sizes):
        raise _fail(f"resolutions must be multiples of 32 (patch 16, merge 2), got {sizes}")
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
        raise _fail(str(exc)) from None


@bench_app.command("embed")
def bench_embed_command(
    data: DataOption = None,
    images: Annotated[
        int, typer.Option(help="Photos to embed (and to time the raw tower on).")
    ] = 512,
    workers: Annotated[int, typer.Option(help="DataLoader processes decoding photos.")] = 1,
    full: Annotated[bool, typer.Option("--full", help="Embed every photo of the dataset.")] = False,
) -> None:
    """Time the embed job end to end against the raw image-tower forward pass, and an
    incremental re-run that adds 1% new photos."""
    from tastegraph.bench.embed import run

    folder = data or Settings().data
    if folder is None:
        raise _fail("no dataset folder: pass --data PATH or set TASTEGRAPH_DATA")
    run(folder, images, workers, full)
