"""A gradient-boosted tree ensemble kept as plain arrays: saved without pickle, applied
with numpy.

Every tree's nodes are stacked into flat arrays; `roots` says where each tree starts. A
row goes left at a node when its feature is at most the threshold, or is missing (NaN)
and the node sends missing values left.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit


@dataclass(frozen=True)
class BoostedTrees:
    baseline: float  # the raw score before any tree
    roots: np.ndarray  # (T,) int64: the node each tree starts at
    feature: np.ndarray  # (M,) int64: the feature a split reads (0 at leaves)
    threshold: np.ndarray  # (M,) float64
    missing_left: np.ndarray  # (M,) bool: a missing value goes left
    left: np.ndarray  # (M,) int64: node index of the left child (itself at leaves)
    right: np.ndarray  # (M,) int64
    leaf_value: np.ndarray  # (M,) float64: what a leaf adds to the raw score
    depth: int  # the most splits from a root to a leaf

    def raw_score(self, x: np.ndarray) -> np.ndarray:
        """(n,) float64 raw scores (log-odds for a classifier) of rows x (n, F)."""
        x = np.asarray(x, dtype=np.float64)
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):  # leaves point at themselves, so extra steps stay put
            value = x[rows, self.feature[node]]
            go_left = np.where(
                np.isnan(value), self.missing_left[node], value <= self.threshold[node]
            )
            node = np.where(go_left, self.left[node], self.right[node])
        values = self.leaf_value[node]
        score = np.full(len(x), self.baseline)
        for tree in range(values.shape[1]):  # tree by tree, as the trainer adds them up
            score += values[:, tree]
        return score

    def probability(self, x: np.ndarray) -> np.ndarray:
        """(n,) chance of the positive class, for a binary classifier's trees."""
        return np.asarray(expit(self.raw_score(x)), dtype=np.float64)

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        with path.open("wb") as f:
            np.savez(f, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> BoostedTrees:
        with np.load(path, allow_pickle=False) as saved:
            return cls(
                baseline=float(saved["baseline"]),
                depth=int(saved["depth"]),
                **{
                    f.name: saved[f.name]
                    for f in fields(cls)
                    if f.name not in ("baseline", "depth")
                },
            )
