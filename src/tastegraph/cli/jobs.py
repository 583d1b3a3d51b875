"""The offline jobs: `train ...`, `embed`, `index`, `graph`, `profiles` and `related-table`."""

from __future__ import annotations

from typing import Annotated

import typer

from tastegraph.cli.apps import app, train_app
from tastegraph.cli.common import (
    EngineOption,
    fail,
    open_store_of,
    parse_time,
    settings_of,
    training_line,
    with_engine,
)

TasteEpochsOption = Annotated[
    int,
    typer.Option(
        help="Taste batches: this many times the co-engaged pairs over the batch size, each "
        "batch drawn with dense users damped (then capped by the budget)."
    ),
]


@train_app.command("embeddings")
def train_embeddings_command(
    ctx: typer.Context,
    cutoff: Annotated[
        str | None,
        typer.Option(help="Use only events before this time (ISO 8601 or unix seconds)."),
    ] = None,
    content_epochs: Annotated[int, typer.Option(help="Epochs of photo-text pairs.")] = 30,
    taste_epochs: TasteEpochsOption = 10,
    max_content_steps: Annotated[
        int, typer.Option(min=1, help="Budget: at most this many photo-text batches.")
    ] = 1000,
    max_taste_steps: Annotated[
        int, typer.Option(min=1, help="Budget: at most this many co-engaged batches.")
    ] = 2500,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    engine: EngineOption = None,
) -> None:
    """Train the fusion model that maps photo and text features into one item space.

    Encodes any photo or text not cached yet with the frozen towers (resumable), then trains
    stage 1 on photo-text pairs of the same item and stage 2 on items engaged together.
    Each stage stops at its epochs or its budget of batches, whichever comes first, so a
    long event log costs no more than the budget (H&M: 720 and 1,980 batches, under it).
    """
    from tastegraph.embeddings.job import train_fusion_model
    from tastegraph.embeddings.train import TrainConfig

    settings = with_engine(settings_of(ctx), engine)
    config = TrainConfig(
        content_epochs=content_epochs,
        taste_epochs=taste_epochs,
        max_content_steps=max_content_steps,
        max_taste_steps=max_taste_steps,
        cutoff=parse_time(cutoff),
        seed=seed,
    )
    with open_store_of(settings) as store:
        result, folder = train_fusion_model(store, settings, config)
    final_loss = result.losses[-1][1] if result.losses else float("nan")
    typer.echo(
        f"trained on {result.content_items:,} photo-text pairs and {result.taste_pairs:,} "
        f"co-engaged pairs ({result.steps['content']:,} and {result.steps['taste']:,} "
        f"batches); final loss {final_loss:.3f}\nsaved {folder}"
    )


@train_app.command("reranker")
def train_reranker_command(
    ctx: typer.Context,
    content_epochs: Annotated[int, typer.Option(help="Epochs of photo-text pairs.")] = 30,
    taste_epochs: TasteEpochsOption = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train the related-items re-ranker on the baskets of the log's last 8 weeks.

    Its features must not have seen those baskets, so it trains its own fusion model on the
    events before them (as long as `train embeddings` takes) and builds the taste graph from
    those events too. `tastegraph related` and the server use it once published.
    """
    from tastegraph.embeddings.train import TrainConfig
    from tastegraph.recommend.rerank_job import HOLDOUT_DAYS, train_and_publish

    settings = settings_of(ctx)
    config = TrainConfig(content_epochs=content_epochs, taste_epochs=taste_epochs, seed=seed)
    with open_store_of(settings) as store:
        try:
            reranker, folder = train_and_publish(store, settings, config)
        except ValueError as exc:
            raise fail(str(exc)) from None
    if reranker is None:
        raise fail(
            f"too few baskets of two or more items in the last {HOLDOUT_DAYS:.0f} days of the "
            "log to learn from; related items keep the related score",
            code=1,
        )
    typer.echo(f"published the related-items re-ranker: {folder}")


@train_app.command("feed")
def train_feed_command(ctx: typer.Context) -> None:
    """Fit how much popular items weigh in the home feed, on the log's last tenth.

    The feed sums its sources (the user's interests, walks from their recent items, popular
    items, their own items). Each popular weight in 0.3 (the default), 0.1, 1, 3, 10 is
    scored by NDCG@12 on the next engagements of up to 2,000 users in the log's last tenth
    of events, with the taste graph and profiles rebuilt from the events before it; another
    value replaces the default only where it beats it by more than one paired standard
    error and by 5%. The server and `tastegraph recommend` use the published weight;
    TASTEGRAPH_POPULAR_WEIGHT wins over it. Needs the index (`tastegraph index`); takes
    about 10 s on the H&M sample.
    """
    from tastegraph.evaluate.feed_weights import train_and_publish

    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        try:
            fit, folder = train_and_publish(store, settings)
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
    if fit is None:
        raise fail(
            "the log is too short to fit on (no events before its last tenth, or no user with "
            "an engagement of weight 0.7 or more in it); the feed keeps its default",
            code=1,
        )
    typer.echo(f"{fit.summary()}\npublished {folder}")


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
        typer.Option(
            min=10,
            help="Stage 1: items with text the warm start reads (about a minute for 8,000).",
        ),
    ] = 8000,
    lm_items: Annotated[
        int,
        typer.Option(
            min=0,
            help="Stage 1: of those, items the frozen LM then reads in the loop (5-12 min per "
            "1,000); 0: the warm start alone, which described H&M items better.",
        ),
    ] = 0,
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
    or a path). Stage 1, alignment: the projector learns tokens that the LM reads as the item's
    look and text ("Black Dress. ..."), half of the items by their photo alone.
    Stage 2, shopping: from real purchases, the LM learns to pick the bought item among
    negatives of its slice and category, reading each item as its tokens and its text line,
    given the shopper's recent items and a request ("for me", an attribute, or "like this,
    but"). Each stage resumes from its last checkpoint and publishes the projector under
    models/projector."""
    from tastegraph.assistant.shopping import ShoppingConfig, shop_assistant
    from tastegraph.assistant.train import AlignConfig, align_assistant

    if stage not in ("alignment", "shopping", "all"):
        raise typer.BadParameter(f"unknown stage {stage!r}; expected alignment, shopping or all")
    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        try:
            if stage in ("alignment", "all"):
                align = AlignConfig(
                    epochs=epochs,
                    batch_size=batch_size or AlignConfig.batch_size,
                    lm_items=lm_items,
                )
                aligned, published = align_assistant(store, settings, align, max_items, tokens)
                typer.echo(
                    f"stage 1: warm start on {aligned.items:,} items ({aligned.seconds:.0f} s); "
                    f"error {aligned.error_before:.3f} -> {aligned.error_after:.3f}"
                )
                if aligned.lm is not None:
                    typer.echo(f"stage 1, the LM in the loop: {training_line(aligned.lm)}")
                typer.echo(f"saved {published}")
            if stage in ("shopping", "all"):
                batch = batch_size or ShoppingConfig.batch_size
                config = ShoppingConfig(epochs=epochs, batch_size=batch, lora_rank=lora)
                result, published = shop_assistant(store, settings, config, examples, tokens)
                typer.echo(f"stage 2: {training_line(result)}\nsaved {published}")
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None


@app.command()
def embed(ctx: typer.Context, engine: EngineOption = None) -> None:
    """Compute item embeddings offline and publish a new embedding store version.

    Beside each embedding the store keeps the photo's colour signature (the colours of its
    subject), which the describer reads. Only photos and texts no earlier run encoded are
    encoded (features are cached by content hash and tower version); a killed run resumes
    where it stopped. Needs a fusion model:
    run `tastegraph train embeddings` first.
    """
    from tastegraph.embeddings.job import run_embed

    settings = with_engine(settings_of(ctx), engine)
    with open_store_of(settings) as store:
        try:
            result = run_embed(store, settings)
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc)) from None
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

    settings = settings_of(ctx)
    try:
        embeddings = EmbeddingStore.open(settings.workdir)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    publish = build_index if rebuild else update_index
    with open_store_of(settings) as store:
        folder = publish(embeddings, store, settings.workdir, **index_options(settings))
    typer.echo(f"indexed {len(embeddings):,} items of embeddings {embeddings.version}\n{folder}")


@app.command("graph")
def graph_command(ctx: typer.Context) -> None:
    """Build the taste graph, its interests (labelled clusters) and fresh popular items
    over the current embeddings and all events, and publish them as a new version."""
    from tastegraph import registry
    from tastegraph.graph.behaviour import repeats_are_rare
    from tastegraph.graph.job import build_and_publish

    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        try:
            folder = build_and_publish(store, settings.workdir, settings)
        except FileNotFoundError as exc:
            raise fail(str(exc)) from None
    share = registry.read_manifest(folder, "graph")["repeat_share"]
    measured = "too few users engaged twice to tell" if share is None else f"{share:.1%}"
    kept = "leave" if repeats_are_rare(share) else "stay in"
    typer.echo(
        f"engagements that repeat an item the same user had: {measured}; each user's own "
        f"items {kept} their feed (TASTEGRAPH_REPEAT_WEIGHT overrides)"
    )
    typer.echo(f"published the taste graph: {folder}")


@app.command("profiles")
def profiles_command(ctx: typer.Context) -> None:
    """Recompute every user's interest profile from all their events (the batch job; the
    server also updates profiles live on each event) and publish them."""
    from tastegraph.index import open_index
    from tastegraph.profiles.batch import publish_profiles

    settings = settings_of(ctx)
    try:
        index = open_index(settings.workdir)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    with open_store_of(settings) as store:
        folder, profiles = publish_profiles(store, index, settings)
    interests = sum(len(p.interests) for p in profiles)
    typer.echo(f"published {len(profiles):,} profiles with {interests:,} interests: {folder}")


@app.command("related-table")
def related_table_command(
    ctx: typer.Context,
    # The defaults are related_job's WIDTH and BUDGET_SECONDS (imported below, not here).
    width: Annotated[
        int,
        typer.Option(
            min=1, max=100, help="Related items kept per item (n up to this; the re-ranker's pool)."
        ),
    ] = 50,
    budget_seconds: Annotated[
        float,
        typer.Option(min=0, help="Stop after this long; items not reached are computed live."),
    ] = 3600,
) -> None:
    """Compute every item's related items ahead of requests and publish them, so the server
    looks "more like this" up instead of scoring every item per request.

    Answers are ranked as the server ranks them (the re-ranker included), popular items
    first, 256 at a time (about 3.8 ms an item on 2 cores: 95 s for the H&M sample's 24,717
    items). The server swaps the table in without a restart and uses it while the index,
    taste graph and re-ranker are those it was computed over; run it again after any of
    them is published (the demo does). Filtered requests, requests for more than --width
    items, items the budget did not reach and items added after the index are computed per
    request. Example: tastegraph related-table --budget-seconds 600
    """
    from tastegraph.recommend.related_job import publish_related_table

    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        try:
            table, folder = publish_related_table(store, settings, width, budget_seconds)
        except (FileNotFoundError, RuntimeError) as exc:
            raise fail(str(exc)) from None
    typer.echo(
        f"published the related items of {len(table.queries):,} of {len(table.item_ids):,} "
        f"items, {table.width} each: {folder}"
    )
