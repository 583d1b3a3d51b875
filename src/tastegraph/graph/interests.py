"""Interests: clusters of the item embedding space, each with a human-readable label.

Items are grouped by spherical k-means over their embeddings. A label names the most
common catalog attribute values of an interest's items (e.g. "Black · Trousers"), or its
most common title words when the catalog has no attributes. Interests whose centroids are
near each other are adjacent: that is where lateral exploration goes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

LABEL_KEYS = ("colour_group", "product_type")
_WORD = re.compile(r"[a-z][a-z'-]{2,}")
_STOP_WORDS = frozenset({"the", "and", "with", "for", "new"})


@dataclass(frozen=True)
class InterestConfig:
    # Interests in the catalog; None: about sqrt(N / 2), at least 2.
    count: int | None = None
    neighbours: int = 5  # adjacent interests kept per interest
    label_keys: tuple[str, ...] = LABEL_KEYS  # attributes a label is drawn from, in order
    kmeans_iterations: int = 20
    kmeans_restarts: int = 3  # runs from different starts; the best clustering is kept
    seed: int = 0

    def count_for(self, items: int) -> int:
        wanted = self.count if self.count is not None else round((items / 2) ** 0.5)
        return max(1, min(max(wanted, 2), items))


@dataclass
class InterestMap:
    centroids: np.ndarray  # (K, d) float32, L2-normalised
    assignment: np.ndarray  # (N,) int64: the interest of each item row
    labels: list[str]  # (K,)
    adjacent: np.ndarray  # (K, m) int64: nearest other interests, nearest first

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        attributes: Sequence[Mapping[str, Any]],
        titles: Sequence[str | None],
        config: InterestConfig | None = None,
    ) -> InterestMap:
        """Cluster the item vectors (N, d), L2-normalised, aligned with attributes/titles."""
        config = config or InterestConfig()
        if len(vectors) != len(attributes) or len(vectors) != len(titles):
            raise ValueError("vectors, attributes and titles must describe the same items")
        if len(vectors) == 0:
            raise ValueError("cannot find interests in an empty catalog")
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        k = config.count_for(len(data))
        kmeans = faiss.Kmeans(
            data.shape[1],
            k,
            niter=config.kmeans_iterations,
            nredo=config.kmeans_restarts,
            spherical=True,
            seed=config.seed,
            min_points_per_centroid=1,  # a small catalog is still worth clustering
        )
        kmeans.train(data)
        centroids = _normalise(np.asarray(kmeans.centroids))
        assignment = np.argmax(data @ centroids.T, axis=1).astype(np.int64)  # (N,)
        members = [np.flatnonzero(assignment == c).tolist() for c in range(k)]
        labels = [
            label([attributes[i] for i in rows], [titles[i] for i in rows], config.label_keys)
            for rows in members
        ]
        return cls(centroids, assignment, _dedupe(labels), adjacency(centroids, config.neighbours))

    def save(self, folder: Path) -> None:
        np.save(folder / "interest_centroids.npy", self.centroids)
        np.save(folder / "interest_assignment.npy", self.assignment)
        np.save(folder / "interest_adjacent.npy", self.adjacent)
        (folder / "interest_labels.json").write_text(json.dumps(self.labels))

    @classmethod
    def load(cls, folder: Path) -> InterestMap:
        return cls(
            np.load(folder / "interest_centroids.npy", allow_pickle=False),
            np.load(folder / "interest_assignment.npy", allow_pickle=False),
            json.loads((folder / "interest_labels.json").read_text()),
            np.load(folder / "interest_adjacent.npy", allow_pickle=False),
        )

    def nearest(self, vectors: np.ndarray) -> np.ndarray:
        """The interest of each vector (Q, d)."""
        nearest: np.ndarray = np.argmax(np.atleast_2d(vectors) @ self.centroids.T, axis=1)
        return nearest.astype(np.int64)


def adjacency(centroids: np.ndarray, neighbours: int) -> np.ndarray:
    """(K, m) the m nearest other centroids of each, by cosine, nearest first."""
    sims = centroids @ centroids.T  # (K, K)
    np.fill_diagonal(sims, -np.inf)
    m = min(neighbours, len(centroids) - 1)
    nearest: np.ndarray = np.argsort(-sims, axis=1, kind="stable")[:, :m].astype(np.int64)
    return nearest


def label(
    attributes: Sequence[Mapping[str, Any]], titles: Sequence[str | None], keys: Sequence[str]
) -> str:
    """The most common value of each label key among the items, joined by " · "; where no
    item has those keys, the two most common title words."""
    parts = []
    for key in keys:
        values = Counter(str(a[key]) for a in attributes if a.get(key) not in (None, ""))
        if values:
            parts.append(values.most_common(1)[0][0])
    if not parts:
        words = Counter(
            word
            for title in titles
            if title
            for word in _WORD.findall(title.lower())
            if word not in _STOP_WORDS
        )
        parts = [word for word, _ in words.most_common(2)]
    return " · ".join(parts) or "Miscellaneous"


def _dedupe(labels: list[str]) -> list[str]:
    """Number repeated labels ("Black · Dress", "Black · Dress 2") so each names one interest."""
    seen: Counter[str] = Counter()
    out = []
    for text in labels:
        seen[text] += 1
        out.append(text if seen[text] == 1 else f"{text} {seen[text]}")
    return out


def _normalise(x: np.ndarray) -> np.ndarray:
    unit: np.ndarray = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )
    return unit
