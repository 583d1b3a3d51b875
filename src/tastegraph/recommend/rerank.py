"""Related items re-ranked by a model learned from real baskets ("complete the look").

The hand-weighted related score (`Recommender.related_scores`) fetches a pool of candidates
and a gradient-boosted classifier, trained on baskets, orders it. Its features are the parts
of that score plus what a weighted sum cannot express: whether the two items share a colour,
a type or a department (which of these matters depends on the rest), their price gap, and
how much each one sells. Training baskets come from the last weeks before the cut-off; the
graph behind the features (walks, freshness, complements, sales) is built from the weeks
before them, so no feature has seen the baskets it is trained to predict.
"""

from __future__ import annotations

import logging
import pickle
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from tastegraph.artifacts import current_version, publish_version, read_manifest, write_json
from tastegraph.config import Settings
from tastegraph.embeddings.job import fuse_table, prepare_features
from tastegraph.embeddings.train import TrainConfig, train_fusion
from tastegraph.graph.complements import attribute_codes, categorical_values
from tastegraph.graph.job import ItemDetails, TasteArtifacts, item_attributes, item_details
from tastegraph.index import CATEGORY_KEY, ItemIndex
from tastegraph.profiles import ProfileConfig, ProfileStore
from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.load import assemble
from tastegraph.recommend.recommender import Recommender
from tastegraph.store import Event, Store

log = logging.getLogger(__name__)

POOL = 100  # candidates per query, best by the hand-weighted related score
HOLDOUT_DAYS = 56.0  # the training baskets: this many days before the cut-off
RECENT_DAYS = 28.0
MIN_POSITIVES = 50  # fewer basket partners in the pools than this: no re-ranker
_DAY = 86400.0
_CHUNK = 256
FORMAT = 1


@dataclass
class ItemContext:
    """What the re-ranker knows of each indexed item beyond the recommender's scores."""

    attributes: list[str]  # categorical attributes, in the order of `codes`' columns
    codes: np.ndarray  # (N, K) int64 value code of each attribute; -1 where unknown
    log_price: np.ndarray  # (N,) float32, nan where unknown
    sales: np.ndarray  # (N, 3) float32 log1p of purchases, recent purchases, baskets

    @classmethod
    def build(
        cls,
        item_ids: Sequence[str],
        details: dict[str, ItemDetails],
        events: Sequence[Event],
        now: float,
        attributes: list[str] | None = None,
    ) -> ItemContext:
        """From events before `now`; `attributes` fixes the columns (default: every
        categorical attribute of the catalog)."""
        by_item = item_attributes(details)
        values = categorical_values(by_item)
        if attributes is not None:
            values = {name: values.get(name, []) for name in attributes}
        prices = [details[i].price if i in details else None for i in item_ids]
        log_price = np.array([np.log(p) if p else np.nan for p in prices], dtype=np.float32)
        return cls(
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


def candidates(
    recommender: Recommender, context: ItemContext, queries: np.ndarray, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, P) pool of index rows per query (the best by the related score among `allowed`,
    (N,) bool; -1 pads a short pool) and (Q, P, F) their features."""
    parts = recommender.related_parts(queries)
    scores = recommender.related_scores(queries, parts)
    scores[:, ~allowed] = -np.inf
    size = min(POOL, len(recommender.index))  # the query itself, at -inf, pads a tiny catalog
    pool = np.argpartition(-scores, size - 1, axis=1)[:, :size]
    pool_scores = np.take_along_axis(scores, pool, 1)
    order = np.argsort(-pool_scores, axis=1, kind="stable")
    pool, pool_scores = (
        np.take_along_axis(pool, order, 1),
        np.take_along_axis(pool_scores, order, 1),
    )
    pool[~np.isfinite(pool_scores)] = -1
    safe = np.maximum(pool, 0)

    def per_pair(values: np.ndarray) -> np.ndarray:
        return np.take_along_axis(values, safe, 1) if values.ndim == 2 else values[safe]

    same = [
        np.where(
            (context.codes[queries, k, None] >= 0) & (context.codes[safe, k] >= 0),
            context.codes[queries, k, None] == context.codes[safe, k],
            np.nan,
        )
        for k in range(len(context.attributes))
    ]
    columns = [
        pool_scores,
        *(per_pair(parts[name]) for name in ("cosine", "same_product", "freshness", "walk")),
        per_pair(parts["complement"]) if "complement" in parts else np.zeros(pool.shape),
        np.broadcast_to(np.log1p(np.arange(size)), pool.shape),
        *(context.sales[safe, j] for j in range(3)),
        np.broadcast_to(context.sales[queries, 2, None], pool.shape),
        context.log_price[safe] - context.log_price[queries, None],
        context.log_price[safe],
        *same,
    ]
    return pool, np.stack(columns, axis=-1).astype(np.float32)


@dataclass
class RelatedReranker:
    model: HistGradientBoostingClassifier
    context: ItemContext  # of the items the re-ranker is applied to, at the time it applies
    measured: np.ndarray  # (F,) bool: the features the model reads (known for some pair)

    def rank(
        self,
        recommender: Recommender,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k) best index rows per query by the model (-1 pads) and their scores."""
        allowed = np.ones(len(recommender.index), dtype=bool) if allowed is None else allowed
        rows, scores = [], []
        for start in range(0, len(queries), _CHUNK):
            pool, features = candidates(
                recommender, self.context, queries[start : start + _CHUNK], allowed
            )
            shape = pool.shape
            flat = features.reshape(-1, features.shape[-1])[:, self.measured]
            # One thread: on a request's 100 rows, waking OpenMP threads on busy cores cost
            # seconds at the tail (p99 3.7 s against 41 ms, measured).
            with threadpool_limits(1, "openmp"):
                predicted = self.model.predict_proba(flat)
            chance = np.where(pool >= 0, predicted[:, 1].reshape(shape), -np.inf)
            best = np.argsort(-chance, axis=1, kind="stable")[:, :k]
            best_chance = np.take_along_axis(chance, best, 1)
            rows.append(np.where(np.isfinite(best_chance), np.take_along_axis(pool, best, 1), -1))
            scores.append(best_chance)
        return np.concatenate(rows), np.concatenate(scores)


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
    taste = TasteArtifacts.build(past, index.ids, vectors, details, now=start)
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
    context = ItemContext.build(ids, details, past, start)
    features, labels = [], []
    for begin in range(0, len(queries), _CHUNK):
        chunk = queries[begin : begin + _CHUNK]
        pool, x = candidates(earlier, context, chunk, np.ones(len(ids), dtype=bool))
        wanted = partners[begin : begin + _CHUNK]
        labels += [
            row in want for rows, want in zip(pool, wanted, strict=True) for row in rows if row >= 0
        ]
        features.append(x[pool >= 0])
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
    now = ItemContext.build(ids, details, [*past, *window], cutoff, context.attributes)
    return RelatedReranker(model, now, measured)


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
    return reranker, publish_reranker(reranker, table.item_ids, settings.workdir)


def reranker_root(workdir: Path) -> Path:
    return workdir / "reranker"


def publish_reranker(reranker: RelatedReranker, item_ids: Sequence[str], workdir: Path) -> Path:
    def write(folder: Path) -> None:
        with (folder / "model.pkl").open("wb") as f:
            pickle.dump(reranker.model, f)
        context = reranker.context
        np.savez(
            folder / "context.npz",
            item_ids=np.array(item_ids),
            codes=context.codes,
            log_price=context.log_price,
            sales=context.sales,
            measured=reranker.measured,
        )
        manifest = {"kind": "related-reranker", "format": FORMAT, "attributes": context.attributes}
        write_json(folder / "manifest.json", manifest)

    return publish_version(reranker_root(workdir), write)


def open_reranker(workdir: Path, item_ids: Sequence[str]) -> RelatedReranker | None:
    """The current re-ranker with its item context laid over `item_ids` (items it has not
    seen: no attributes, price or sales); None if none was published."""
    folder = current_version(reranker_root(workdir))
    if folder is None:
        return None
    manifest = read_manifest(folder, "related-reranker", FORMAT)
    with (folder / "model.pkl").open("rb") as f:
        model = pickle.load(f)  # written by publish_reranker above, never from elsewhere
    saved = np.load(folder / "context.npz", allow_pickle=False)
    known = {str(item): r for r, item in enumerate(saved["item_ids"])}
    rows = np.array([known.get(i, -1) for i in item_ids])
    seen = rows >= 0
    codes = np.full((len(item_ids), saved["codes"].shape[1]), -1, dtype=np.int64)
    log_price = np.full(len(item_ids), np.nan, dtype=np.float32)
    sales = np.zeros((len(item_ids), 3), dtype=np.float32)
    codes[seen], log_price[seen], sales[seen] = (
        saved["codes"][rows[seen]],
        saved["log_price"][rows[seen]],
        saved["sales"][rows[seen]],
    )
    return RelatedReranker(
        model,
        ItemContext(list(manifest["attributes"]), codes, log_price, sales),
        saved["measured"],
    )
