"""Offline evaluation of recommendations on a temporal split, against classical baselines.

Everything the recommender uses (fusion model, graph, interests, profiles, popularity) and
every baseline is fitted on events before the cut-off only; the weeks after it are held out.
The split is the log's last weeks or its last share of events (`evaluate/split.py`), so any
ingested catalog can be evaluated.

1. Next engagements (home feed; purchases on H&M): n items per user with a positive event
   after the cut-off (`evaluate/engagements.py`: a weight threshold; what each user engaged
   with before is left out where the catalog's people seldom engage twice); MAP@n (the H&M
   Kaggle definition), recall, NDCG, hits on cold items (never engaged with before the
   cut-off) and warm ones, catalog coverage, intra-list diversity. Intervals resample
   users. Popularity, item-kNN, ALS and EASE are tuned on a split inside the training
   period (`evaluate/tuning.py`); repurchase, co-visitation and content kNN keep defaults.
   Our feed's popular weight is fitted on the training events' last tenth, as `tastegraph
   train feed` fits it on the whole log (`evaluate/feed_weights.py`).
2. Basket completion (related items), where the test period holds baskets: every basket
   after the cut-off with two or more items; each item is a query, the rest of its basket
   the targets; k results from the whole catalog, the query excluded; recall@k and MRR.
   Intervals resample whole baskets (the queries of one basket are not independent).
All methods are measured on the same users and baskets, with the same resamples, so ratios
to a baseline come with paired intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tastegraph.embeddings.job import fuse_table
from tastegraph.embeddings.table import FeatureTable
from tastegraph.embeddings.train import TrainConfig, train_fusion
from tastegraph.evaluate import baselines as base
from tastegraph.evaluate.engagements import (
    POSITIVE_WEIGHT,
    FeedRows,
    engaged_before,
    excludes_engaged,
    next_engagements,
    ranked_rows,
    ranking_metrics,
)
from tastegraph.evaluate.feed_weights import FeedFit, ServedAs, fit_popular_weight, served_feed
from tastegraph.evaluate.metrics import (
    Estimate,
    catalog_coverage,
    clustered_bootstrap,
    hits,
    intra_list_diversity,
    recall_at_k,
    reciprocal_rank,
    top_k,
)
from tastegraph.evaluate.split import SplitConfig
from tastegraph.evaluate.tuning import POPULARITY, Tuned, fit_tuned, tune_baselines
from tastegraph.graph.behaviour import event_repeat_share
from tastegraph.graph.job import build_taste
from tastegraph.graph.sage import graph_aware_embeddings, train_aggregator
from tastegraph.graph.taste import ItemDetails
from tastegraph.profiles import ProfileConfig
from tastegraph.profiles.batch import build_profiles
from tastegraph.recommend import RecommendConfig, Recommender
from tastegraph.recommend.assemble import assemble
from tastegraph.recommend.rerank import RelatedReranker
from tastegraph.recommend.rerank_job import (
    basket_queries,
    earlier_recommender,
    fit_reranker,
    holdout_split,
    holdout_start,
    item_index,
)
from tastegraph.store import Event

OURS = "tastegraph"
HAND_WEIGHTED = "tastegraph, hand-weighted related score"
_CHUNK = 256


@dataclass
class RecommendEvalConfig(SplitConfig):
    feed_k: int = 12
    related_k: int = 20
    explore: float = 0.0  # the explore dial of the measured feed
    positive_weight: float = POSITIVE_WEIGHT  # test events at least this heavy are positives
    # Leave out what each user engaged with before the cut-off; None: where repeats are rare.
    exclude_engaged: bool | None = None
    # Popular items' weight in our feed; None: fitted as `tastegraph train feed` fits it.
    popular_weight: float | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)


@dataclass
class TaskReport:
    unit: str  # what the intervals resample
    units: int
    queries: int
    metrics: dict[str, dict[str, Estimate]]  # method -> metric -> estimate
    # Ours over each baseline on the headline metric: paired ratio with its interval.
    ratio_to: dict[str, Estimate]
    headline: str
    extra: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> figure


@dataclass
class RecommendReport:
    split: dict[str, str | int | float]
    next_purchase: TaskReport
    basket_completion: TaskReport | None  # None where the test period holds no basket
    # Tuned baseline -> "params" (its chosen setting), "tuning_ndcg" (the tuning split's
    # NDCG@feed_k of each grid setting).
    tuned: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Our feed's popular weight as `tastegraph train feed` fits it on the training events;
    # None where it kept its default for want of tuning users.
    feed_fit: FeedFit | None = None


def evaluate_recommendations(
    table: FeatureTable,
    events: Sequence[Event],
    details: dict[str, ItemDetails],
    config: RecommendEvalConfig,
    *,
    show_progress: bool = True,
) -> RecommendReport:
    """Fit everything on events before the cut-off, then measure both tasks after it."""
    train, test = config.partition(events)
    if not train or not test:
        raise ValueError(
            f"the cut-off leaves {len(train)} training and {len(test)} test events; both must "
            "be non-empty"
        )
    index = table.index()
    logbook = base.TrainingLog.build(train, index, config.cutoff)
    exclude = excludes_engaged(train, config.exclude_engaged)
    tuning = config.tuning(train)
    tuned = tune_baselines(train, index, tuning, config.feed_k, config.positive_weight, exclude)
    recommender, vectors, fitted = fit_recommender(
        table, train, details, config, exclude, show_progress
    )
    reranker = fit_related_reranker(table, train, details, config, show_progress)
    share = event_repeat_share(train)
    split: dict[str, str | int | float] = {
        "name": config.split,
        **period(config.cutoff, config.end),
        "training_events": len(train),
        "test_events": len(test),
        "explore": config.explore,
        "positive weight at least": config.positive_weight,
        "repeat share in training": "not measured" if share is None else round(share, 4),
        "engaged items left out": str(exclude).lower(),
        "baselines tuned on": "{cutoff} to {end}".format(**period(tuning.cutoff, tuning.end)),
    }
    aggregator = train_aggregator(train, table.item_ids, vectors, config.cutoff)
    graph_aware = graph_aware_embeddings(aggregator, recommender.graph, vectors)
    return RecommendReport(
        split,
        next_purchases(recommender, logbook, table, vectors, test, config, tuned, exclude),
        basket_completion(
            recommender, logbook, table, vectors, test, config, graph_aware, reranker
        ),
        {name: {"params": t.params, "tuning_ndcg": t.scores} for name, t in tuned.items()},
        fitted,
    )


def period(cutoff: float, end: float | None) -> dict[str, str]:
    """The test period's first and last day as ISO dates."""

    def day(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).date().isoformat()

    return {"cutoff": day(cutoff), "end": "end of log" if end is None else day(end)}


def fit_recommender(
    table: FeatureTable,
    train: Sequence[Event],
    details: dict[str, ItemDetails],
    config: RecommendEvalConfig,
    exclude: bool,
    show_progress: bool,
) -> tuple[Recommender, np.ndarray, FeedFit | None]:
    """The full pipeline on training events: fusion model, index, graph, profiles, and the
    feed's popular weight fitted on them (None: kept at its default)."""
    trained = train_fusion(
        table, train, replace(config.train, cutoff=config.cutoff), show_progress=show_progress
    )
    vectors = fuse_table(trained.model, table)  # (N, d) float32, L2-normalised
    recommender, fit = build_recommender(table, vectors, train, details, config, exclude)
    return recommender, vectors, fit


def fit_related_reranker(
    table: FeatureTable,
    train: Sequence[Event],
    details: dict[str, ItemDetails],
    config: RecommendEvalConfig,
    show_progress: bool,
) -> RelatedReranker | None:
    """The related-items re-ranker, fitted as `tastegraph train reranker` fits it: a second
    fusion model on the events before the re-ranker's holdout weeks, so that no feature has
    seen the baskets the re-ranker learns from. None where those weeks hold too few."""
    past, _ = holdout_split(train, config.cutoff)
    if not past:
        return None
    trained = train_fusion(
        table,
        past,
        replace(config.train, cutoff=holdout_start(config.cutoff)),
        show_progress=show_progress,
    )
    index = item_index(table.item_ids, fuse_table(trained.model, table), details)
    earlier = earlier_recommender(index, train, details, config.cutoff, config.recommend)
    return fit_reranker(earlier, train, details, config.cutoff)


def build_recommender(
    table: FeatureTable,
    vectors: np.ndarray,
    train: Sequence[Event],
    details: dict[str, ItemDetails],
    config: RecommendEvalConfig,
    exclude: bool,
) -> tuple[Recommender, FeedFit | None]:
    """Index, graph, interests and profiles over item vectors (N, d) and training events;
    buy-again as the evaluation decided (`exclude`: off, the feeds leave engaged items
    out), which is what the served feed decides from the same log unless told otherwise;
    popular items weighed as `tastegraph train feed` would fit them on these events."""
    index = item_index(table.item_ids, vectors, details)
    taste = build_taste(train, table.item_ids, vectors, details, now=config.cutoff)
    profiles = build_profiles(train, index, ProfileConfig())
    fit = None
    if config.popular_weight is None:
        served = ServedAs(exclude, config.recommend.repeat_weight)
        fit = fit_popular_weight(index, train, details, config.recommend, served)
    recommender = assemble(
        index,
        taste,
        profiles,
        details,
        config.recommend,
        repeat_weight=0.0 if exclude else config.recommend.repeat_weight,
        popular_weight=config.popular_weight if fit is None else fit.popular_weight,
    )
    return recommender, fit


# -- next engagements (next purchases on H&M) ---------------------------------------------


def next_purchases(
    recommender: Recommender,
    logbook: base.TrainingLog,
    table: FeatureTable,
    vectors: np.ndarray,
    test: Sequence[Event],
    config: RecommendEvalConfig,
    tuned: Mapping[str, Tuned],
    exclude: bool,
) -> TaskReport:
    """Our feed against every baseline's on each user's next engagements (`exclude`: what
    each user engaged with before is left out)."""
    rows_of = table.index()
    feeds = {OURS: served_feed(recommender, rows_of, exclude, config.explore)}
    image = table.image if table.has_image.any() else None  # a catalog without photos
    feeds |= baseline_feeds(logbook, tuned, exclude, image)
    return compare_feeds(feeds, logbook, test, rows_of, config, exclude, vectors)


def baseline_feeds(
    logbook: base.TrainingLog,
    tuned: Mapping[str, Tuned],
    exclude: bool,
    image: np.ndarray | None = None,
) -> dict[str, FeedRows]:
    """The baselines' feeds fitted on `logbook`: the tuned ones with their chosen settings,
    the others at fixed defaults; repurchase only where engaged items stay in (without
    them it is popularity again), content kNN where there are image features (N, D)."""
    popularity = base.Popularity(logbook, **tuned[POPULARITY].params)
    feeds: dict[str, FeedRows] = {POPULARITY: popularity.recommend}
    if not exclude:
        feeds["repurchase + popularity"] = base.RepurchasePopularity(logbook, popularity).recommend
    feeds["co-visitation"] = base.CoVisitation(logbook, popularity=popularity).recommend
    feeds |= fit_tuned({k: t for k, t in tuned.items() if k != POPULARITY}, logbook, popularity)
    if image is not None:
        feeds["content kNN, raw image features"] = base.ContentKNN(
            logbook, image, popularity=popularity
        ).recommend
    return feeds


def compare_feeds(
    feeds: Mapping[str, FeedRows],
    logbook: base.TrainingLog,
    test: Sequence[Event],
    index: Mapping[str, int],
    config: RecommendEvalConfig,
    exclude: bool,
    vectors: np.ndarray | None = None,
    reference: str = OURS,
) -> TaskReport:
    """Each user's next engagements (`evaluate/engagements.py`) against the first
    `config.feed_k` items of each method's feed, with `reference`'s paired ratio to each
    other method; `exclude`: every user's engaged items leave the positives and every feed
    alike; intra-list diversity where item `vectors` (N, d) are given."""
    leave_out = engaged_before(logbook) if exclude else None
    targets = next_engagements(test, index, config.positive_weight, leave_out)
    if not targets.users:
        raise ValueError(
            f"no user has a positive event (weight at least {config.positive_weight}, not a "
            "hide) after the cut-off on an item not engaged with before; lower the positive "
            "weight or move the cut-off"
        )
    users, relevant = targets.users, targets.relevant
    seen = {row for history in logbook.history.values() for row, _ in history}
    cold = [r - seen for r in relevant]
    warm = [r & seen for r in relevant]
    k = config.feed_k
    per_user: dict[str, dict[str, np.ndarray]] = {}
    extra: dict[str, dict[str, float]] = {}
    for name, feed in feeds.items():
        ranked = ranked_rows(feed, users, k, logbook.n_items, leave_out)
        per_user[name] = ranking_metrics(ranked, relevant, k)
        if vectors is not None:
            diversity = np.nan_to_num(intra_list_diversity(ranked, vectors))
            per_user[name]["intra-list diversity"] = diversity
        extra[name] = {
            "cold hits": float(hits(ranked, cold, k).sum()),
            "warm hits": float(hits(ranked, warm, k).sum()),
            "catalog coverage": catalog_coverage(ranked, logbook.n_items),
        }
    pairs = {"cold pairs": float(sum(map(len, cold))), "warm pairs": float(sum(map(len, warm)))}
    extra["test set"] = pairs
    return task_report(
        per_user,
        np.arange(len(users)),
        "users",
        f"MAP@{k}",
        extra,
        config.resamples,
        config.seed,
        reference,
    )


# -- basket completion ---------------------------------------------------------------------


def basket_completion(
    recommender: Recommender,
    logbook: base.TrainingLog,
    table: FeatureTable,
    vectors: np.ndarray,
    test: Sequence[Event],
    config: RecommendEvalConfig,
    graph_aware: np.ndarray | None = None,
    reranker: RelatedReranker | None = None,
) -> TaskReport | None:
    """graph_aware: (N, d) PinSage-style embeddings, measured as queries against the
    content embeddings of every item (an ablation; None leaves it out). reranker: ours
    re-ranks related items with it, and the hand-weighted score becomes an ablation."""
    queries, relevant, cluster = basket_queries(test, table.item_ids)
    if len(queries) == 0:
        return None  # no basket of two or more items after the cut-off
    k = config.related_k
    ranked: dict[str, np.ndarray] = {}
    if reranker is not None:
        ranked[OURS] = reranker.rank(recommender.related_score, queries, k)[0]
    scorers: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        OURS if reranker is None else HAND_WEIGHTED: recommender.related_score.scores,
        "our embedding, cosine only": base.cosine_scorer(vectors),
        "raw image cosine": base.cosine_scorer(table.image),
        "raw text cosine (image where no text)": _text_then_image(table),
        "same product, then raw image cosine": base.same_product_then_cosine(
            table.variant_of, table.image
        ),
        "co-visitation": base.CoVisitation(logbook).score,
    }
    if graph_aware is not None:
        scorers["graph-aware (PinSage-style) query, cosine"] = lambda rows: (
            graph_aware[rows] @ vectors.T
        )
    ranked |= {name: _rank(score, queries, k) for name, score in scorers.items()}
    per_query = {
        name: {f"recall@{k}": recall_at_k(rows, relevant), "MRR": reciprocal_rank(rows, relevant)}
        for name, rows in ranked.items()
    }
    return task_report(
        per_query, cluster, "baskets", f"recall@{k}", {}, config.resamples, config.seed
    )


def _rank(score: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) best rows per query, the query itself never among them."""
    out = []
    for start in range(0, len(queries), _CHUNK):
        chunk = queries[start : start + _CHUNK]
        scores = np.array(score(chunk), dtype=np.float32)
        scores[np.arange(len(chunk)), chunk] = -np.inf
        out.append(top_k(scores, k))
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def _text_then_image(table: FeatureTable) -> Callable[[np.ndarray], np.ndarray]:
    """Text cosine for queries with text, image cosine for the others."""
    text, image = base.unit_rows(table.text), base.unit_rows(table.image)

    def score(rows: np.ndarray) -> np.ndarray:
        scores: np.ndarray = np.where(
            table.has_text[rows][:, None], text[rows] @ text.T, image[rows] @ image.T
        )
        return scores

    return score


# -- summaries ------------------------------------------------------------------------------


def task_report(
    values: dict[str, dict[str, np.ndarray]],
    clusters: np.ndarray,
    unit: str,
    headline: str,
    extra: dict[str, dict[str, float]],
    resamples: int,
    seed: int,
    reference: str = OURS,
) -> TaskReport:
    """Per-query values of every method (`reference` among them) as estimates with
    intervals that resample clusters, and the reference's paired ratio to each method on
    the headline metric."""

    def estimate(x: np.ndarray, baseline: np.ndarray | None = None) -> Estimate:
        return clustered_bootstrap(x, clusters, resamples, seed, baseline)

    metrics = {
        method: {metric: estimate(x) for metric, x in by_metric.items()}
        for method, by_metric in values.items()
    }
    ours = values[reference][headline]
    ratios = {
        method: estimate(ours, by_metric[headline])
        for method, by_metric in values.items()
        if method != reference and by_metric[headline].mean() > 0
    }
    units = len(np.unique(clusters))
    return TaskReport(unit, units, len(clusters), metrics, ratios, headline, extra)
