"""Related items ("more like this"): the hand-weighted related score of every indexed
item to a query item, and the reasons its answers carry. The learned re-ranker
(recommend/rerank) reads the score's parts and orders the best of them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tastegraph.recommend import explain
from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.items import ItemRows, Recommendation
from tastegraph.recommend.sources import Caches


class RelatedScore:
    def __init__(
        self,
        items: ItemRows,
        caches: Caches,
        config: RecommendConfig,
        freshness: np.ndarray,
        complements: Callable[[np.ndarray], np.ndarray] | None,
    ) -> None:
        """freshness: (N,) log-lift of each indexed item from the age of its last engagement
        (graph/freshness); complements: index rows (Q,) -> (Q, N) how well their attribute
        values go with every item's (graph/complements), none: not used."""
        self.items = items
        self.caches = caches
        self.config = config
        self.freshness = freshness
        self.complements = complements

    def scores(self, queries: np.ndarray, parts: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(Q, N) related-item scores of index rows `queries` over every indexed item; each
        query scores -inf against itself. `parts`: their `parts`, if already at hand."""
        config = self.config
        weights = {
            "cosine": 1.0,
            "same_product": config.related_variant_weight,
            "freshness": config.related_freshness_weight,
            "complement": config.related_complement_weight,
            "walk": config.related_walk_weight,
        }
        scores = np.zeros((len(queries), len(self.items)), dtype=np.float32)
        for name, part in (parts or self.parts(queries)).items():
            scores += weights[name] * part
        scores[np.arange(len(queries)), queries] = -np.inf
        return scores

    def parts(self, queries: np.ndarray) -> dict[str, np.ndarray]:
        """The parts of the related score, each (Q, N) or (N,) over every indexed item:
        embedding cosine, same product (0/1), freshness log-lift, attribute complements
        (summed PMI) and log(1 + walk visits) from the query."""
        items = self.items
        parts = {
            "cosine": self.cosine(queries),
            "same_product": (items.variant[queries][:, None] == items.variant[None, :]).astype(
                np.float32
            ),
            "freshness": self.freshness,
        }
        if self.complements is not None and self.config.related_complement_weight > 0:
            parts["complement"] = self.complements(queries)
        walk = np.zeros((len(queries), len(items)), dtype=np.float32)
        graph_queries = items.graph_row[queries]
        walked = np.flatnonzero(graph_queries >= 0)
        if len(walked) and self.config.related_walk_weight > 0:
            visits = self.caches.walks.visits(graph_queries[walked]).tocoo()  # (W, N graph)
            rows = items.index_row[visits.col]
            ok = rows >= 0
            walk[walked[visits.row[ok]], rows[ok]] = np.log1p(visits.data[ok])
        parts["walk"] = walk
        return parts

    def cosine(self, queries: np.ndarray) -> np.ndarray:
        """(Q, N) embedding cosine of each query row with every item, one query at a time:
        a product of many rows at once rounds differently in the last bits, enough to swap
        near-ties, and an answer must not depend on what else was computed with it (the
        related-items table holds what a request would get)."""
        vectors = self.items.vectors
        cosine = np.empty((len(queries), len(vectors)), dtype=np.float32)
        for i, query in enumerate(queries):
            cosine[i] = vectors[query] @ vectors.T
        return cosine

    def top(
        self, queries: np.ndarray, n: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(Q, n) best rows among `allowed` for each of index rows `queries`, and their
        scores."""
        scores = self.scores(queries)
        scores[:, ~allowed] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        return top, np.take_along_axis(scores, top, 1)

    def explained(self, query: int, rows: np.ndarray, scores: np.ndarray) -> list[Recommendation]:
        """Ranked rows related to `query` with their reasons; -1 rows and -inf scores
        (nothing left to fill with) are dropped."""
        items = self.items
        title = items.title(items.ids[query])
        walked = self._walk_neighbours(query)
        out = []
        for row, score in zip(rows, scores, strict=True):
            if row < 0 or not np.isfinite(score):
                continue
            source, reason = explain.related(
                title,
                same_product=bool(items.variant[row] == items.variant[query]),
                bought_together=row in walked,
            )
            out.append(items.recommendation(int(row), float(score), source, reason))
        return out

    def _walk_neighbours(self, row: int) -> set[int]:
        """Index rows that share a collection or user with the item at `row`."""
        items = self.items
        graph_row = items.graph_row[row]
        if graph_row < 0:
            return set()
        nodes = items.graph.item_to_node[graph_row].indices
        neighbours = items.index_row[np.unique(items.graph.node_to_item[nodes].indices)]
        return set(neighbours[neighbours >= 0].tolist()) - {row}
