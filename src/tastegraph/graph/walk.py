"""Pixie-style random walks with restarts over the item-node bipartite graph.

A walker stands on an item, steps to one of its nodes (a collection or a user) and from
there to one of that node's items, each with probability proportional to the edge weight;
after each step it jumps back to its query item with probability `restart`. Items visited
often are close to the query in the taste graph. Walks from several query items are
combined with Pixie's boost, (sum_q sqrt(visits_q))^2, which favours items reached from
many queries over items reached very often from one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tastegraph.graph.graph import TasteGraph
from tastegraph.lru import LruMap


@dataclass(frozen=True)
class WalkConfig:
    walkers: int = 200  # walkers per query item, each taking `steps` steps
    steps: int = 10
    restart: float = 0.3  # chance of jumping back to the query item after a step
    seed: int = 0

    def __post_init__(self) -> None:
        if self.walkers < 1 or self.steps < 1:
            raise ValueError(f"walkers and steps must be at least 1, got {self}")
        if not 0.0 <= self.restart < 1.0:
            raise ValueError(f"restart is a probability in [0, 1), got {self.restart}")


class _Sampler:
    """Weighted sampling of one neighbour per walker, vectorised over walkers, from rows
    that have edges.

    Each row's edge range and weight total are computed once here, not at every step; the
    binary search over the running weights is what a step costs (about 120 ns a walker
    on H&M)."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.indices = matrix.indices
        self.cumulative = np.cumsum(matrix.data, dtype=np.float64)
        start, end = matrix.indptr[:-1], matrix.indptr[1:]
        running = np.r_[0.0, self.cumulative]  # running[i]: weight of the edges before i
        self.last = np.maximum(end - 1, start)  # (R,) each row's last edge
        self.before = running[start]  # (R,)
        self.total = running[end] - self.before  # (R,)

    def step(self, at: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """One neighbour of each row in `at` (all with edges), drawn by uniforms in [0, 1)."""
        target = self.before[at] + uniform * self.total[at]
        # The first edge whose running weight passes the target; a target rounded up to the
        # row's total would pass the row's end.
        position = np.searchsorted(self.cumulative, target, side="right")
        neighbours: np.ndarray = self.indices[np.minimum(position, self.last[at])]
        return neighbours


class RandomWalker:
    def __init__(self, graph: TasteGraph, config: WalkConfig | None = None) -> None:
        self.graph = graph
        self.config = config or WalkConfig()
        self._to_node = _Sampler(graph.item_to_node)
        self._to_item = _Sampler(graph.node_to_item)

    def visits(self, queries: np.ndarray, seed: int | None = None) -> sp.csr_matrix:
        """(Q, N) visit counts of walks from each query item row; the query itself and
        items reached from nowhere get no visits. An item's walks draw from a random
        stream of their own (the seed and the item), so its visits are the same whatever
        else is walked in the same call: a cache may keep them."""
        config = self.config
        queries = np.asarray(queries, dtype=np.int64)
        shape = (len(queries), len(self.graph))
        walked = np.flatnonzero(self._to_node.total[queries] > 0)  # the others go nowhere
        if len(walked) == 0:
            return sp.csr_matrix(shape, dtype=np.float32)
        seed = config.seed if seed is None else seed
        draws = np.concatenate(  # (steps, 3, W): to a node, back to an item, restart
            [
                np.random.default_rng((seed, int(q))).random((config.steps, 3, config.walkers))
                for q in queries[walked]
            ],
            axis=2,
        )
        origin = np.repeat(walked, config.walkers)  # walker -> position in queries
        home = queries[origin]
        at = home
        visited = np.empty((config.steps, len(home)), dtype=np.int64)
        for step, (to_node, to_item, restart) in enumerate(draws):
            visited[step] = self._to_item.step(self._to_node.step(at, to_node), to_item)
            at = np.where(restart < config.restart, home, visited[step])
        rows, cols = np.tile(origin, config.steps), visited.ravel()
        elsewhere = cols != queries[rows]  # never recommend the query to itself
        items = len(self.graph)
        pairs, visits = np.unique(rows[elsewhere] * items + cols[elsewhere], return_counts=True)
        indptr = np.searchsorted(pairs, np.arange(len(queries) + 1) * items)  # pairs sort by query
        return sp.csr_matrix((visits.astype(np.float32), pairs % items, indptr), shape=shape)

    def recommend(
        self, queries: np.ndarray, weights: np.ndarray | None = None, seed: int | None = None
    ) -> np.ndarray:
        """(N,) Pixie-boosted visit scores of walks from several query items.

        weights (Q,) scale each query's walk (e.g. recency of the user's engagement with
        it); the query items themselves score 0."""
        queries = np.asarray(queries, dtype=np.int64)
        if len(queries) == 0:
            return np.zeros(len(self.graph), dtype=np.float64)
        counts = self.visits(queries, seed)
        if weights is not None:
            counts = sp.diags(np.asarray(weights, dtype=np.float64)) @ counts
        boosted = np.asarray(counts.sqrt().sum(axis=0)).ravel() ** 2  # (N,)
        boosted[queries] = 0.0
        return boosted


class WalkCache:
    """Walk visits per query item, kept for reuse (least recently used dropped first).

    An item's walk neighbourhood changes only when the graph does, and a new graph comes
    with a new walker, so a server need not walk from the same item on every request: the
    user's recent items (the queries) still change with every event. Walks are the same
    cached or not (each item has its own random stream), so a server may warm the cache
    ahead of requests."""

    def __init__(self, walker: RandomWalker, size: int = 10_000) -> None:
        self.walker = walker
        self.kept: LruMap[int, tuple[np.ndarray, np.ndarray]] = LruMap(size)  # item row -> visits

    def visits(self, queries: np.ndarray) -> sp.csr_matrix:
        """(Q, N) visit counts, as RandomWalker.visits."""
        queries = np.asarray(queries, dtype=np.int64)
        found = self._visits_of(queries)
        parts = [found[int(q)] for q in queries]
        indptr = np.r_[0, np.cumsum([len(cols) for cols, _ in parts])]
        indices = np.concatenate([cols for cols, _ in parts]) if parts else np.zeros(0, np.int32)
        data = np.concatenate([v for _, v in parts]) if parts else np.zeros(0, np.float32)
        return sp.csr_matrix((data, indices, indptr), shape=(len(queries), len(self.walker.graph)))

    def warm(self, queries: np.ndarray, batch: int = 256) -> None:
        """Walk from these items ahead of requests, in batches; the first `size` are kept."""
        queries = np.asarray(queries, dtype=np.int64)[: self.kept.size]
        for start in range(0, len(queries), batch):
            self._visits_of(queries[start : start + batch])

    def _visits_of(self, queries: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """(visited items, counts) of each distinct query, walking from those not kept yet."""
        found = self.kept.get_many(int(q) for q in queries)
        missing = np.array(sorted({int(q) for q in queries} - found.keys()), dtype=np.int64)
        if len(missing):
            walked = self.walker.visits(missing)
            fresh = {
                int(q): (walked.indices[a:b], walked.data[a:b])
                for q, a, b in zip(missing, walked.indptr[:-1], walked.indptr[1:], strict=True)
            }
            found |= fresh
            self.kept.put_many(fresh)
        return found
