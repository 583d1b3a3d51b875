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


def clustered_bootstrap(
    values: np.ndarray,
    clusters: np.ndarray,
    resamples: int = 1000,
    seed: int = 0,
    baseline: np.ndarray | None = None,
) -> Estimate:
    """Mean of per-query values whose queries come in clusters (e.g. the items of one
    basket), resampling whole clusters: queries of one cluster are not independent.

    With `baseline` (per-query values of another method on the same queries), the estimate
    is the ratio mean(values) / mean(baseline), on the same resamples: a paired ratio.
    Reproducible resamples (same seed, same clusters) pair estimates across methods."""
    values = np.asarray(values, dtype=np.float64)
    ids, codes = np.unique(np.asarray(clusters), return_inverse=True)
    if len(values) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    weights = np.stack(
        [
            np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
            for _ in range(resamples)
        ]
    )[:, codes]  # (resamples, queries): how often each query's cluster was drawn
    numerator = weights @ values / weights.sum(axis=1)
    point = values.mean()
    if baseline is not None:
        baseline = np.asarray(baseline, dtype=np.float64)
        denominator = weights @ baseline / weights.sum(axis=1)
        # A resample where the baseline scores 0 has no ratio; it is left out.
        numerator = numerator[denominator > 0] / denominator[denominator > 0]
        point = point / baseline.mean()
    if len(numerator) == 0:
        return Estimate(float(point), float("nan"), float("nan"), len(ids))
    low, high = np.percentile(numerator, [2.5, 97.5])
    return Estimate(float(point), float(low), float(high), len(ids))


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


# Per-query ranking metrics. `ranked` is (Q, n): item rows of each query's list, best first,
# padded with -1 where a list is short. `relevant` holds each query's relevant rows. An item
# counts only where it first appears in a list, as in the Kaggle reference code, so a list
# cannot score twice for one item.


def _gains(ranked: np.ndarray, relevant: list[set[int]], k: int | None = None) -> np.ndarray:
    """(Q, min(k, n)) 1.0 where a position holds a relevant item seen there first."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be (queries, positions), got shape {ranked.shape}")
    if len(ranked) != len(relevant):
        raise ValueError(f"{len(ranked)} ranked lists but {len(relevant)} relevant sets")
    top = ranked[:, :k] if k is not None else ranked
    gains = np.zeros(top.shape, dtype=np.float64)
    for q, (row, rel) in enumerate(zip(top.tolist(), relevant, strict=True)):
        seen: set[int] = set()
        for i, item in enumerate(row):
            if item >= 0 and item in rel and item not in seen:
                gains[q, i] = 1.0
            seen.add(item)
    return gains


def average_precision_at_k(ranked: np.ndarray, relevant: list[set[int]], k: int = 12) -> np.ndarray:
    """Per query AP@k as in the H&M Kaggle MAP@12: the sum of precision@i at each relevant
    position i <= k, over min(len(relevant), k); 0 for a query with nothing relevant."""
    gains = _gains(ranked, relevant, k)
    precision = np.cumsum(gains, axis=1) / np.arange(1, gains.shape[1] + 1)
    denominator = np.array([min(len(rel), k) for rel in relevant], dtype=np.float64)
    total = (precision * gains).sum(axis=1)
    ap: np.ndarray = np.divide(total, denominator, out=np.zeros_like(total), where=denominator > 0)
    return ap


def ndcg_at_k(ranked: np.ndarray, relevant: list[set[int]], k: int = 12) -> np.ndarray:
    """Per query NDCG@k with binary gains and a log2 discount; 0 with nothing relevant."""
    gains = _gains(ranked, relevant, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (gains * discount[: gains.shape[1]]).sum(axis=1)
    ideal = np.array([discount[: min(len(rel), k)].sum() for rel in relevant])
    ndcg: np.ndarray = np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
    return ndcg


def reciprocal_rank(ranked: np.ndarray, relevant: list[set[int]]) -> np.ndarray:
    """Per query 1 / rank of the first relevant item in the whole list; 0 if none is there."""
    gains = _gains(ranked, relevant)
    found = gains.any(axis=1)
    first = gains.argmax(axis=1)
    rr: np.ndarray = np.where(found, 1.0 / (first + 1), 0.0)
    return rr


def hits(ranked: np.ndarray, relevant: list[set[int]], k: int = 12) -> np.ndarray:
    """Per query, how many distinct relevant items the top k hold (int64)."""
    counts: np.ndarray = _gains(ranked, relevant, k).sum(axis=1).astype(np.int64)
    return counts


def intra_list_diversity(ranked: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Per list, the mean pairwise cosine distance (1 - cosine) between its items' vectors;
    -1 padding is ignored, and a list of fewer than 2 items gives nan. An all-zeros vector
    has cosine 0 with everything (distance 1)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.maximum(norms, 1e-12)
    out = np.full(len(ranked), np.nan)
    for q, row in enumerate(np.asarray(ranked)):
        items = row[row >= 0]
        m = len(items)
        if m >= 2:
            sims = unit[items] @ unit[items].T
            out[q] = 1.0 - (sims.sum() - np.trace(sims)) / (m * (m - 1))
    return out


def catalog_coverage(ranked: np.ndarray, catalog_size: int) -> float:
    """Share of the catalog's items that appear in at least one list."""
    if catalog_size <= 0:
        raise ValueError(f"catalog_size must be positive, got {catalog_size}")
    ranked = np.asarray(ranked)
    return len(np.unique(ranked[ranked >= 0])) / catalog_size
