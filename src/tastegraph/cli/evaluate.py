"""`tastegraph evaluate ...` and `eval`: quality on held-out data against baselines."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tastegraph.artifacts import write_json
from tastegraph.cli.apps import app, evaluate_app
from tastegraph.cli.common import (
    CutoffOption,
    TestWeeksOption,
    ValidationOption,
    fail,
    open_store_of,
    parse_time,
    served_assistant,
    settings_of,
)
from tastegraph.evaluate.engagements import POSITIVE_WEIGHT


@evaluate_app.command("embeddings")
def evaluate_embeddings_command(
    ctx: typer.Context,
    holdout_items: Annotated[
        int, typer.Option(help="Items with text kept out of training.")
    ] = 1000,
    test_weeks: TestWeeksOption = 8.0,
    cutoff: CutoffOption = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    validation: ValidationOption = False,
) -> None:
    """Train on the training split, then report text-to-image retrieval and basket completion
    with 95% bootstrap intervals, against raw-tower and popularity baselines."""
    from tastegraph.embeddings.job import prepare_features
    from tastegraph.embeddings.train import TrainConfig
    from tastegraph.evaluate.embeddings import EvalConfig, evaluate_embeddings

    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        features = prepare_features(store, settings)
        events = list(store.iter_events())
    config = EvalConfig(
        holdout_items=holdout_items,
        test_weeks=test_weeks,
        cutoff=parse_time(cutoff),
        seed=seed,
        validation=validation,
    )
    try:
        report = evaluate_embeddings(features.table, events, TrainConfig(seed=seed), config)
    except ValueError as exc:
        raise fail(str(exc)) from None
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


@evaluate_app.command("recommendations")
def evaluate_recommendations_command(
    ctx: typer.Context,
    validation: ValidationOption = False,
    test_weeks: TestWeeksOption = 8.0,
    cutoff: CutoffOption = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=0.5,
            help="The log's last share of events is the test split (a global temporal "
            "split, e.g. 0.1), instead of its last test-weeks.",
        ),
    ] = None,
    positive_weight: Annotated[
        float,
        typer.Option(
            help="Test events at least this heavy (and not a hide) are positives: 0.7 counts "
            "saves and purchases under the default action weights, ratings of 3.5 of 5 and up."
        ),
    ] = POSITIVE_WEIGHT,
    exclude_engaged: Annotated[
        bool | None,
        typer.Option(
            "--exclude-engaged/--keep-engaged",
            help="Leave out what each user engaged with before the cut-off, from the "
            "positives and every feed. Default: where under 5% of training events repeat an "
            "item of the same user (films); kept where people buy again (H&M).",
            show_default=False,
        ),
    ] = None,
    k: Annotated[
        int,
        typer.Option("--k", min=1, max=500, help="Feed length measured (MAP, recall, NDCG at k)."),
    ] = 12,
    explore: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="The explore dial of the measured feed.")
    ] = 0.0,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 1000,
) -> None:
    """Next engagements (purchases on H&M) and basket completion on a temporal split of the
    store's log, on any ingested catalog: the last 8 weeks by default (on the H&M sample
    from 2020-07-28), or --test-fraction. Against popularity, repurchase, co-visitation,
    item-kNN, implicit ALS, EASE (catalogs up to 20,000 items) and content baselines, the
    first four tuned on a split inside the training period, with 95% bootstrap intervals
    and paired ratios. Fits everything on events before the cut-off, including the fusion
    model. Writes reports/recommend-<split>.{md,json,png} in the workdir.

    Example: tastegraph evaluate recommendations --test-fraction 0.1 --positive-weight 0.8"""
    from tastegraph.embeddings.job import prepare_features
    from tastegraph.evaluate import report as reports
    from tastegraph.evaluate.recommend import RecommendEvalConfig, evaluate_recommendations
    from tastegraph.graph.taste import item_details

    if cutoff is not None and test_fraction is not None:
        raise fail("--cutoff and --test-fraction both place the test split; give one of them")
    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        table = prepare_features(store, settings).table
        events = list(store.iter_events())
        details = item_details(store, settings.variant_attribute)
    try:
        config = RecommendEvalConfig.from_log(
            events,
            test_weeks=test_weeks,
            test_fraction=test_fraction,
            cutoff=parse_time(cutoff),
            validation=validation,
            explore=explore,
            resamples=resamples,
            positive_weight=positive_weight,
            exclude_engaged=exclude_engaged,
            popular_weight=settings.popular_weight,
            feed_k=k,
        )
        report = evaluate_recommendations(table, events, details, config)
    except ValueError as exc:
        raise fail(str(exc)) from None
    path = reports.write(report, settings.workdir / "reports")
    typer.echo(reports.markdown(report))
    typer.echo(f"report: {path}")


@evaluate_app.command("assistant")
def evaluate_assistant_command(
    ctx: typer.Context,
    validation: ValidationOption = False,
    test_weeks: TestWeeksOption = 8.0,
    cutoff: CutoffOption = None,
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
            min=0,
            help="Items with text that stage 1 aligns the projectors on, as `train assistant` "
            "does (0: no stage 1).",
        ),
    ] = 8000,
    epochs: Annotated[int, typer.Option(min=1, help="Stage-2 passes over the examples.")] = 1,
    lora: Annotated[
        int,
        typer.Option(
            min=0,
            help="LoRA rank on the LM in stage 2 (0: LM frozen), for every LM method alike.",
        ),
    ] = 0,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 1000,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated methods to run (ours always runs): ours, tokens_only, text, "
            "generic_vision, cosine, random, keyword, off_the_shelf. Each LM method "
            "trains its own stage 2 (about 15 minutes on 2 cores), so fewer cost less.",
        ),
    ] = "all",
) -> None:
    """Does reading item embeddings help the LM pick what the shopper bought, where text
    cannot tell? On a temporal split of the log (the last 8 weeks by default: on the H&M
    sample from 2020-07-28; --validation to tune) with
    held-out shoppers, each query one real purchase in the test weeks, asked three ways:
    "for me" (history only, photo-only items included), "attribute" (the item's colour and
    type) and "like this, but" (an item from the shopper's history, another colour).
    Candidates: the target among random negatives bought in the test weeks, of its slice
    (text or photo-only) and category, in shuffled order. Methods: ours (item tokens and
    text), tokens_only, text, generic_vision (projector on raw image features), cosine,
    random, keyword and off_the_shelf (the untrained LM reading text); hit@1 and MRR with 95%
    bootstrap intervals by family and slice (text, photo-only, warm, cold), and paired
    ratios; then where text cannot tell: every query again with the text hidden, each item
    read by its photo alone (families "..., text hidden"). Trains on the training weeks the
    fusion model, stage 1 (twice: our embeddings and raw image features) and stage 2 for
    four LM methods: on 2 cores about 2 hours with the defaults. The LM is the settings'
    (TASTEGRAPH_LANGUAGE_MODEL). Writes reports/assistant-<split>.{md,json} in the workdir."""
    from tastegraph.assistant.facts import Catalog
    from tastegraph.assistant.models import cached_lm
    from tastegraph.assistant.shopping import ExampleConfig, ShoppingConfig
    from tastegraph.embeddings.job import prepare_features
    from tastegraph.encoders import load_text_tower
    from tastegraph.encoders.text import item_text
    from tastegraph.evaluate import report as reports
    from tastegraph.evaluate.assistant import AssistantEvalConfig, evaluate_assistant

    settings = settings_of(ctx)
    with open_store_of(settings) as store:
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
    if methods != "all":
        options["methods"] = tuple(m.strip() for m in methods.split(",") if m.strip())
    try:
        config = AssistantEvalConfig.from_log(
            events,
            test_weeks=test_weeks,
            cutoff=parse_time(cutoff),
            validation=validation,
            **options,
        )
        lm_folder = cached_lm(settings.workdir, settings.language_model)
        tower = load_text_tower(settings.text_model)
        report = evaluate_assistant(table, events, catalog, texts, lm_folder, tower, config)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
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
    """Does the assistant name an item's colour and type from its photo's embedding and
    colour signature alone? On items with text that stage 1 did not train on, each item is
    described as photo-only items are; a description counts when it names the item's colour
    (colour_attribute; "Dark Blue": "blue", and no other catalog colour) and type
    (kind_attribute; plurals count). Against (a) the nearest stage-1 item by raw image
    features, (a2) by raw image features and colour signature, (b) chance from the training
    distribution, (c) the most common value, and linear probes fitted on the stage-1 items,
    reading (d) raw image features and (e) the embeddings the LM reads (how much colour and
    type the features hold at all), with 95% bootstrap intervals and the paired ratios ours
    / (a) and ours / (a2). Writes reports/descriptions.json in the workdir
    (descriptions-current.json with --projector current). About 8 minutes for 200 items on
    2 CPU cores."""
    from tastegraph.assistant.describe import Which
    from tastegraph.evaluate.describe import DescribeEvalConfig, evaluate_store, table

    settings = settings_of(ctx)
    if projector not in ("alignment", "current"):
        raise typer.BadParameter(f"unknown projector {projector!r}; expected alignment or current")
    which: Which = "current" if projector == "current" else "alignment"
    config = DescribeEvalConfig(items=items, seed=seed, projector=which)
    try:
        with open_store_of(settings) as store:
            report = evaluate_store(store, settings, config)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
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

    settings = settings_of(ctx)
    with served_assistant(settings) as (events, assistant):
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
        f"{report.lm_alone_claims} claims true, {report.lm_alone_degenerate} degenerate, "
        f"{report.lm_alone_uninformative} true but empty\n"
        f"{report.seconds_per_turn:.2f} s a turn"
    )
    typer.echo(f"report: {path}")


app.command("eval", help="Shortcut for `tastegraph evaluate recommendations`.")(
    evaluate_recommendations_command
)
