"""Pixie-style random walks with restarts over the item-node bipartite graph.

A walker stands on an item, steps to one of its nodes (a collection or a user) and from
there to one of that node's items, each with probability proportional to the edge weight;
after each step it jumps back to its query item with probability `restart`. Items visited
often are close to the query in the taste graph. Walks from several query items are
combined with Pixie's boost, (sum_q sqrt(visits_q))^2, which favours items reached from
many queries over items reached very often from one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from tastegraph.graph.graph import TasteGraph


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
    """Weighted sampling of one neighbour per walker, vectorised over walkers.

    Each row's edge range and weight total are computed once here: a feed's walks take
    16 steps of about a thousand walkers, where every numpy call per step costs."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.indices = matrix.indices
        self.cumulative = np.cumsum(matrix.data, dtype=np.float64)
        start, end = matrix.indptr[:-1], matrix.indptr[1:]
        running = np.r_[0.0, self.cumulative]  # running[i]: weight of the edges before i
        self.first, self.last = start, np.maximum(end - 1, start)  # (R,) edge positions
        self.moves = end > start  # (R,) rows with an edge to follow
        self.before = running[start]  # (R,)
        self.total = np.where(self.moves, running[end] - self.before, 0.0)  # (R,)

    def step(self, at: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(next rows, whether each walker had anywhere to go); stuck walkers stay put."""
        moves = self.moves[at]
        target = self.before[at] + rng.random(len(at)) * self.total[at]
        position = np.searchsorted(self.cumulative, target, side="right")
        position = np.clip(position, self.first[at], self.last[at])
        return np.where(moves, self.indices[np.minimum(position, len(self.indices) - 1)], at), moves


class RandomWalker:
    def __init__(self, graph: TasteGraph, config: WalkConfig | None = None) -> None:
        self.graph = graph
        self.config = config or WalkConfig()
        self._to_node = _Sampler(graph.item_to_node)
        self._to_item = _Sampler(graph.node_to_item)

    def visits(self, queries: np.ndarray, seed: int | None = None) -> sp.csr_matrix:
        """(Q, N) visit counts of walks from each query item row; the query itself and
        items reached from nowhere get no visits."""
        config = self.config
        queries = np.asarray(queries, dtype=np.int64)
        if len(self.graph.node_ids) == 0:
            return sp.csr_matrix((len(queries), len(self.graph)), dtype=np.float32)
        rng = np.random.default_rng(config.seed if seed is None else seed)
        origin = np.repeat(np.arange(len(queries)), config.walkers)  # walker -> query
        home = queries[origin]
        at = home.copy()
        visited_query, visited_item = [], []
        for _ in range(config.steps):
            node, moved = self._to_node.step(at, rng)
            item, moved_back = self._to_item.step(np.where(moved, node, 0), rng)
            landed = moved & moved_back
            visited_query.append(origin[landed])
            visited_item.append(item[landed])
            at = np.where(landed, item, home)
            at = np.where(rng.random(len(at)) < config.restart, home, at)
        rows, cols = np.concatenate(visited_query), np.concatenate(visited_item)
        elsewhere = cols != queries[rows]  # never recommend the query to itself
        rows, cols = rows[elsewhere], cols[elsewhere]
        counts = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(queries), len(self.graph)),
        )
        counts.sum_duplicates()
        return counts

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
    user's recent items (the queries) still change with every event."""

    def __init__(self, walker: RandomWalker, size: int = 10_000) -> None:
        self.walker = walker
        self.size = size
        self._rows: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def visits(self, queries: np.ndarray) -> sp.csr_matrix:
        """(Q, N) visit counts, as RandomWalker.visits."""
        queries = np.asarray(queries, dtype=np.int64)
        with self._lock:
            found = {int(q): self._rows[int(q)] for q in queries if int(q) in self._rows}
            for q in found:
                self._rows.move_to_end(q)
        missing = np.array(sorted({int(q) for q in queries} - found.keys()), dtype=np.int64)
        if len(missing):
            walked = self.walker.visits(missing)
            fresh = {
                int(q): (walked.indices[a:b], walked.data[a:b])
                for q, a, b in zip(missing, walked.indptr[:-1], walked.indptr[1:], strict=True)
            }
            found |= fresh
            with self._lock:
                self._rows.update(fresh)
                while len(self._rows) > self.size:
                    self._rows.popitem(last=False)
        parts = [found[int(q)] for q in queries]
        indptr = np.r_[0, np.cumsum([len(cols) for cols, _ in parts])]
        indices = np.concatenate([cols for cols, _ in parts]) if parts else np.zeros(0, np.int32)
        data = np.concatenate([v for _, v in parts]) if parts else np.zeros(0, np.float32)
        return sp.csr_matrix((data, indices, indptr), shape=(len(queries), len(self.walker.graph)))
