"""Helpers for the profile tests: a synthetic space of well-separated clusters, events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.profiles.config import DAY_S
from tastegraph.store import Event

T0 = 1_700_000_000.0
WEIGHTS = {"view": 0.1, "click": 0.3, "save": 0.7, "purchase": 1.0, "hide": -1.0}


@dataclass
class Space:
    embeddings: EmbeddingStore
    clusters: list[list[str]]  # item ids, by cluster

    def vector(self, item_id: str) -> np.ndarray:
        return self.embeddings.vector(item_id)


def make_space(
    workdir: Path, n_clusters: int = 6, per_cluster: int = 10, dim: int = 32, seed: int = 0
) -> Space:
    """Items around orthonormal centres: about 0.85 alike within a cluster, 0 across."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.standard_normal((dim, n_clusters)))[0].T  # (C, dim)
    ids, rows, clusters = [], [], []
    for c, centre in enumerate(centres):
        clusters.append([f"c{c}-i{k}" for k in range(per_cluster)])
        ids += clusters[-1]
        rows.append(centre + 0.4 * rng.standard_normal((per_cluster, dim)) / np.sqrt(dim))
    vectors = np.concatenate(rows).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    folder = EmbeddingStore.publish(workdir, ids, vectors, {"fusion_model": "test"})
    return Space(EmbeddingStore(folder), clusters)


def event(
    item: str, action: str = "purchase", day: float = 0.0, user: str = "u1", weight: float = 0.0
) -> Event:
    """An event `day` days after T0, weighing the default for its action unless given."""
    return Event(
        event_id=f"{user}-{item}-{action}-{day}",
        user_id=user,
        item_id=item,
        action=action,
        weight=weight or WEIGHTS[action],
        ts=T0 + day * DAY_S,
    )
