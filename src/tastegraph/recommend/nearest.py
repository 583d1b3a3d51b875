"""Nearest items to interest medoids, kept between feeds.

A user's interests move only with their events, and a medoid is one of their items, so
most feeds ask for neighbours that an earlier feed (of this user or another) already
found. Answers are keyed by the query vector's bytes: a kept answer is the one the index
gave for that very vector. A recommender over a new index starts a new cache."""

from __future__ import annotations

import numpy as np

from tastegraph.index import ItemIndex
from tastegraph.lru import LruMap


class NearestCache:
    def __init__(self, index: ItemIndex, k: int, size: int = 10_000) -> None:
        self.index = index
        self.k = k
        self.kept: LruMap[bytes, tuple[np.ndarray, np.ndarray]] = LruMap(size)

    def search(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores (Q, k') float32 and rows (Q, k') int64 of the items nearest each vector
        (Q, d) float32, best first, without filters; k' = min(k, indexed items)."""
        keys = [vector.tobytes() for vector in vectors]
        found = self.kept.get_many(keys)
        first = {key: q for q, key in reversed(list(enumerate(keys))) if key not in found}
        if first:
            scores, rows = self.index.search_rows(vectors[list(first.values())], self.k)
            fresh = {key: (scores[j], rows[j]) for j, key in enumerate(first)}
            found |= fresh
            self.kept.put_many(fresh)
        return (
            np.stack([found[key][0] for key in keys]),
            np.stack([found[key][1] for key in keys]),
        )

    def warm(self, vectors: np.ndarray, batch: int = 1024) -> None:
        """Search these vectors ahead of requests, in batches; the first `size` are kept."""
        vectors = vectors[: self.kept.size]
        for start in range(0, len(vectors), batch):
            self.search(vectors[start : start + batch])
