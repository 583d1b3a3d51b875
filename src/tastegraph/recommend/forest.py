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
        values, missing = x.ravel(), np.isnan(x).ravel()
        row_start = (np.arange(len(x)) * x.shape[1])[:, None]  # row r's feature f: r * F + f
        children = np.stack([self.left, self.right], axis=1).ravel()  # of node n: 2n, 2n + 1
        node = np.broadcast_to(self.roots, (len(x), len(self.roots)))
        for _ in range(self.depth):  # leaves point at themselves, so extra steps stay put
            at = row_start + self.feature.take(node)  # take: a faster gather than x[i]
            go_left = (values.take(at) <= self.threshold.take(node)) | (
                missing.take(at) & self.missing_left.take(node)
            )
            node = children.take(2 * node + ~go_left)
        # Tree by tree, as the trainer adds them up: a running sum keeps that order.
        leaves = np.concatenate([np.full((len(x), 1), self.baseline), self.leaf_value[node]], 1)
        return np.cumsum(leaves, axis=1)[:, -1]

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
