"""Ranking metrics with bootstrap confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float  # 95% bootstrap interval
    high: float
    n: int  # independent units (queries, baskets) behind the estimate

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}] (n={self.n})"


def bootstrap(values: np.ndarray, resamples: int = 1000, seed: int = 0) -> Estimate:
    """Mean of per-unit values with a 95% percentile bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(values.mean()), float(low), float(high), len(values))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k best scores of each row, best first. scores: (Q, N)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def recall_at_k(ranked: np.ndarray, relevant: list[set[int]]) -> np.ndarray:
    """Per query: the share of its relevant items found in its ranked list (Q, k)."""
    return np.array(
        [
            len(rel.intersection(row.tolist())) / len(rel)
            for row, rel in zip(ranked, relevant, strict=True)
        ]
    )
