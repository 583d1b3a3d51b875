"""The offline job that fits the related-items re-ranker (`rerank.py` applies it).

Training baskets come from the last weeks before the cut-off; the graph behind the
features (walks, freshness, complements, sales) is built from the weeks before them, so no
feature has seen the baskets it is trained to predict. The fitted trees are published as
arrays (`forest.py`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from tastegraph import registry
from tastegraph.config import Settings
from tastegraph.embeddings.job import fuse_table, prepare_features
from tastegraph.embeddings.train import TrainConfig, train_fusion
from tastegraph.graph.complements import attribute_codes, categorical_values
from tastegraph.graph.job import build_taste
from tastegraph.graph.taste import ItemDetails, item_attributes, item_details
from tastegraph.index import CATEGORY_KEY, ItemIndex
from tastegraph.profiles import ProfileConfig, ProfileStore
from tastegraph.progress import Progress
from tastegraph.recommend.assemble import assemble
from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.forest import BoostedTrees
from tastegraph.recommend.recommender import Recommender
from tastegraph.recommend.rerank import CHUNK, ItemContext, RelatedReranker, candidates
from tastegraph.store import Event, Store

log = logging.getLogger(__name__)

HOLDOUT_DAYS = 56.0  # the training baskets: this many days before the cut-off
RECENT_DAYS = 28.0
MIN_POSITIVES = 50  # fewer basket partners in the pools than this: no re-ranker
_DAY = 86400.0


def item_context(
    item_ids: Sequence[str],
    details: dict[str, ItemDetails],
    events: Sequence[Event],
    now: float,
    attributes: list[str] | None = None,
) -> ItemContext:
    """What the re-ranker knows of `item_ids` from events before `now`; `attributes` fixes
    the columns (default: every categorical attribute of the catalog)."""
    by_item = item_attributes(details)
    values = categorical_values(by_item)
    if attributes is not None:
        values = {name: values.get(name, []) for name in attributes}
    prices = [details[i].price if i in details else None for i in item_ids]
    log_price = np.array([np.log(p) if p else np.nan for p in prices], dtype=np.float32)
    return ItemContext(
        list(values),
        attribute_codes(item_ids, by_item, values),
        log_price,
        _sales(item_ids, events, now),
    )


def _sales(item_ids: Sequence[str], events: Sequence[Event], now: float) -> np.ndarray:
    """(N, 3) log1p of purchases, purchases in the last RECENT_DAYS, and baskets of two or
    more items each item was in, all before `now`."""
    row = {item: r for r, item in enumerate(item_ids)}
    before = [e for e in events if e.ts < now]
    counts = np.zeros((len(item_ids), 3), dtype=np.float32)
    for event in before:
        r = row.get(event.item_id)
        if r is not None and event.action == "purchase":
            counts[r, 0] += 1
            counts[r, 1] += event.ts >= now - RECENT_DAYS * _DAY
    for members in _baskets(before, row):
        counts[members, 2] += 1
    return np.log1p(counts)


def trees_of(model: HistGradientBoostingClassifier) -> BoostedTrees:
    """The fitted binary classifier's trees as arrays (numeric splits only)."""
    nodes = [predictors[0].nodes for predictors in model._predictors]
    if any(tree["is_categorical"].any() for tree in nodes):
        raise ValueError("categorical splits are not supported; the features are numeric")
    starts = np.cumsum([0] + [len(tree) for tree in nodes[:-1]])
    merged = np.concatenate(nodes)
    offset = np.repeat(starts, [len(tree) for tree in nodes])
    itself = np.arange(len(merged))
    leaf = merged["is_leaf"].astype(bool)
    return BoostedTrees(
        baseline=float(np.asarray(model._baseline_prediction).ravel()[0]),
        roots=starts.astype(np.int64),
        feature=np.where(leaf, 0, merged["feature_idx"]).astype(np.int64),
        threshold=merged["num_threshold"].astype(np.float64),
        missing_left=merged["missing_go_to_left"].astype(bool),
        left=np.where(leaf, itself, merged["left"].astype(np.int64) + offset),
        right=np.where(leaf, itself, merged["right"].astype(np.int64) + offset),
        leaf_value=np.where(leaf, merged["value"], 0.0).astype(np.float64),
        depth=int(merged["depth"].max()),
    )


def holdout_start(cutoff: float) -> float:
    """Where the re-ranker's training baskets begin, for a re-ranker used from `cutoff`."""
    return cutoff - HOLDOUT_DAYS * _DAY


def holdout_split(events: Sequence[Event], cutoff: float) -> tuple[list[Event], list[Event]]:
    """(the events before holdout_start(cutoff), the holdout weeks' events before `cutoff`)."""
    start = holdout_start(cutoff)
    past = [e for e in events if e.ts < start]
    return past, [e for e in events if start <= e.ts < cutoff]


def item_index(
    item_ids: Sequence[str], vectors: np.ndarray, details: dict[str, ItemDetails]
) -> ItemIndex:
    """An exact index over item vectors (N, d), with the items' categories and prices."""
    known = [details.get(i) for i in item_ids]
    categories = [d.attributes.get(CATEGORY_KEY) if d else None for d in known]
    return ItemIndex.build(
        item_ids,
        vectors,
        [None if c in (None, "") else str(c) for c in categories],
        [d.price if d else None for d in known],
        kind="exact",
    )


def earlier_recommender(
    index: ItemIndex,
    events: Sequence[Event],
    details: dict[str, ItemDetails],
    cutoff: float,
    config: RecommendConfig | None = None,
) -> Recommender:
    """A recommender for training the re-ranker of `cutoff`: graph from the events before
    holdout_start(cutoff), over an `index` whose vectors never saw the events after it."""
    start = holdout_start(cutoff)
    past, _ = holdout_split(events, cutoff)
    vectors = index.index.reconstruct_n(0, len(index))
    taste = build_taste(past, index.ids, vectors, details, now=start)
    return assemble(index, taste, ProfileStore(ProfileConfig()), details, config)


def fit_reranker(
    earlier: Recommender,
    events: Sequence[Event],
    details: dict[str, ItemDetails],
    cutoff: float,
) -> RelatedReranker | None:
    """Trained on the baskets between holdout_start(cutoff) and `cutoff`, with features from
    `earlier` (see earlier_recommender); returned with the item context at `cutoff`, ready
    to apply to a recommender built from every event before `cutoff`. None when the baskets
    hold too few examples to learn from."""
    start = holdout_start(cutoff)
    past, window = holdout_split(events, cutoff)
    ids = earlier.index.ids
    queries, partners, _ = basket_queries(window, ids)
    context = item_context(ids, details, past, start)
    features, labels = [], []
    chunks = range(0, len(queries), CHUNK)
    progress = Progress(len(chunks), "re-ranker: basket features", "chunks")
    for begin in chunks:
        chunk = queries[begin : begin + CHUNK]
        pool, x = candidates(earlier.related_score, context, chunk, np.ones(len(ids), dtype=bool))
        wanted = partners[begin : begin + CHUNK]
        labels += [
            row in want for rows, want in zip(pool, wanted, strict=True) for row in rows if row >= 0
        ]
        features.append(x[pool >= 0])
        progress.update()
    progress.close()
    y = np.array(labels, dtype=bool)
    if y.sum() < MIN_POSITIVES:
        log.info("re-ranker: %d basket partners in the pools, under %d", y.sum(), MIN_POSITIVES)
        return None
    x = np.concatenate(features)
    measured = ~np.isnan(x).all(axis=0)  # a catalog without prices has no price features
    model = HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=7,
        min_samples_leaf=100,
        l2_regularization=10.0,
        random_state=0,
    ).fit(x[:, measured], y)
    log.info("re-ranker: %d queries, %d basket partners in the pools", len(queries), y.sum())
    now = item_context(ids, details, [*past, *window], cutoff, context.attributes)
    return RelatedReranker(trees_of(model), now, measured, list(ids))


def basket_queries(
    events: Sequence[Event], item_ids: Sequence[str]
) -> tuple[np.ndarray, list[set[int]], np.ndarray]:
    """Every item of every collection (basket) with two or more items as a query (a row of
    `item_ids`), the rest of its collection as the query's partners, and (Q,) the basket
    each query came from."""
    groups = _baskets(events, {item: r for r, item in enumerate(item_ids)})
    queries = np.array([q for rows in groups for q in rows], dtype=np.int64)
    partners = [set(rows) - {q} for rows in groups for q in rows]
    basket = np.array([b for b, rows in enumerate(groups) for _ in rows], dtype=np.int64)
    return queries, partners, basket


def _baskets(events: Sequence[Event], row: dict[str, int]) -> list[list[int]]:
    """The rows of each collection with two or more items, in collection id order; hides
    are not basket members."""
    baskets: dict[str, set[int]] = defaultdict(set)
    for event in events:
        if event.collection_id and event.item_id in row and event.action != "hide":
            baskets[event.collection_id].add(row[event.item_id])
    return [sorted(rows) for _, rows in sorted(baskets.items()) if len(rows) >= 2]


# -- the job ---------------------------------------------------------------------


def train_and_publish(
    store: Store, settings: Settings, config: TrainConfig, show_progress: bool = True
) -> tuple[RelatedReranker | None, Path | None]:
    """Train a fusion model on the events before the holdout weeks (the last HOLDOUT_DAYS
    of the log), fit the re-ranker on the baskets of those weeks and publish it; (None, None)
    when the weeks hold too few baskets."""
    features = prepare_features(store, settings)
    events = list(store.iter_events())
    if not events:
        raise ValueError("the store holds no events; the re-ranker learns from baskets")
    cutoff = max(e.ts for e in events) + 1
    start = holdout_start(cutoff)
    past, window = holdout_split(events, cutoff)
    if not past:
        raise ValueError(
            f"the log spans less than {HOLDOUT_DAYS:.0f} days; the re-ranker needs events "
            "before its holdout weeks to build features from"
        )
    table = features.table
    _, partners, _ = basket_queries(window, table.item_ids)
    if sum(map(len, partners)) < MIN_POSITIVES:
        return None, None  # too few to learn from: spare the fusion training
    trained = train_fusion(table, past, replace(config, cutoff=start), show_progress=show_progress)
    details = item_details(store, settings.variant_attribute)
    index = item_index(table.item_ids, fuse_table(trained.model, table), details)
    reranker = fit_reranker(
        earlier_recommender(index, events, details, cutoff), events, details, cutoff
    )
    if reranker is None:
        return None, None
    return reranker, publish_reranker(reranker, settings.workdir)


def publish_reranker(reranker: RelatedReranker, workdir: Path) -> Path:
    return registry.publish(workdir, "reranker", reranker.save)
