"""Related items re-ranked by a model learned from real baskets ("complete the look").

The hand-weighted related score (`RelatedScore`) fetches a pool of candidates
and gradient-boosted trees, trained on baskets (`rerank_job.py`), order it. Their features
are the parts of that score plus what a weighted sum cannot express: whether the two items
share a colour, a type or a department (which of these matters depends on the rest), their
price gap, and how much each one sells. This module applies a published re-ranker; it
reads arrays only (no pickle).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastegraph import registry
from tastegraph.recommend.forest import BoostedTrees
from tastegraph.recommend.related import RelatedScore

log = logging.getLogger(__name__)

POOL = 100  # candidates per query, best by the hand-weighted related score
CHUNK = 256  # queries scored at once: (CHUNK, N) related scores in memory


@dataclass
class ItemContext:
    """What the re-ranker knows of each indexed item beyond the recommender's scores."""

    attributes: list[str]  # categorical attributes, in the order of `codes`' columns
    codes: np.ndarray  # (N, K) int64 value code of each attribute; -1 where unknown
    log_price: np.ndarray  # (N,) float32, nan where unknown
    sales: np.ndarray  # (N, 3) float32 log1p of purchases, recent purchases, baskets


def candidates(
    related: RelatedScore, context: ItemContext, queries: np.ndarray, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, P) pool of index rows per query (the best by the related score among `allowed`,
    (N,) bool; -1 pads a short pool) and (Q, P, F) their features."""
    parts = related.parts(queries)
    scores = related.scores(queries, parts)
    scores[:, ~allowed] = -np.inf
    size = min(POOL, len(related.items))  # the query itself, at -inf, pads a tiny catalog
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
    trees: BoostedTrees  # a binary classifier: is the candidate a basket partner?
    context: ItemContext  # of the items the re-ranker is applied to, at the time it applies
    measured: np.ndarray  # (F,) bool: the features the trees read (known for some pair)
    item_ids: list[str]  # the items `context`'s rows describe, in order

    def rank(
        self,
        related: RelatedScore,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k) best index rows per query by the model (-1 pads) and their scores. The
        context's rows must be the related score's index rows (see `over`)."""
        allowed = np.ones(len(related.items), dtype=bool) if allowed is None else allowed
        rows, scores = [], []
        for start in range(0, len(queries), CHUNK):
            pool, features = candidates(
                related, self.context, queries[start : start + CHUNK], allowed
            )
            flat = features.reshape(-1, features.shape[-1])[:, self.measured]
            predicted = self.trees.probability(flat).reshape(pool.shape)
            chance = np.where(pool >= 0, predicted, -np.inf)
            best = np.argsort(-chance, axis=1, kind="stable")[:, :k]
            best_chance = np.take_along_axis(chance, best, 1)
            rows.append(np.where(np.isfinite(best_chance), np.take_along_axis(pool, best, 1), -1))
            scores.append(best_chance)
        return np.concatenate(rows), np.concatenate(scores)

    def over(self, item_ids: Sequence[str]) -> RelatedReranker:
        """The same re-ranker with its context laid over `item_ids` (an index's rows); items
        it has not seen have no attributes, price or sales."""
        if list(item_ids) == self.item_ids:
            return self
        known = {item: r for r, item in enumerate(self.item_ids)}
        rows = np.array([known.get(i, -1) for i in item_ids], dtype=np.int64)
        seen = rows >= 0
        old = self.context
        codes = np.full((len(item_ids), old.codes.shape[1]), -1, dtype=np.int64)
        log_price = np.full(len(item_ids), np.nan, dtype=np.float32)
        sales = np.zeros((len(item_ids), old.sales.shape[1]), dtype=np.float32)
        codes[seen], log_price[seen], sales[seen] = (
            old.codes[rows[seen]],
            old.log_price[rows[seen]],
            old.sales[rows[seen]],
        )
        context = ItemContext(old.attributes, codes, log_price, sales)
        return RelatedReranker(self.trees, context, self.measured, list(item_ids))

    def save(self, folder: Path) -> None:
        """Write the re-ranker's files into `folder` (see `registry.publish`)."""
        self.trees.save(folder / "trees.npz")
        context = self.context
        np.savez(
            folder / "context.npz",
            item_ids=np.array(self.item_ids, dtype=str),
            codes=context.codes,
            log_price=context.log_price,
            sales=context.sales,
            measured=self.measured,
        )
        registry.write_manifest(folder, "reranker", {"attributes": context.attributes})

    @classmethod
    def load(cls, folder: Path) -> RelatedReranker:
        manifest = registry.read_manifest(folder, "reranker")
        with np.load(folder / "context.npz", allow_pickle=False) as saved:
            context = ItemContext(
                list(manifest["attributes"]),
                saved["codes"],
                saved["log_price"],
                saved["sales"],
            )
            measured, item_ids = saved["measured"], [str(i) for i in saved["item_ids"]]
        return cls(BoostedTrees.load(folder / "trees.npz"), context, measured, item_ids)


def open_reranker(workdir: Path) -> RelatedReranker | None:
    """The current published re-ranker; None if none was published, or if it is in an
    older format (a warning says to train it again)."""
    folder = registry.current(workdir, "reranker")
    if folder is None:
        return None
    if registry.outdated(folder, "reranker"):
        log.warning(
            "%s holds a re-ranker in an older format; related items keep the related score "
            "until `tastegraph train reranker` (or the demo) trains it again",
            folder,
        )
        return None
    return RelatedReranker.load(folder)
