"""Maximal marginal relevance: trade a little score for items unlike those already picked."""

from __future__ import annotations

import numpy as np


def mmr(vectors: np.ndarray, scores: np.ndarray, n: int, relevance: float) -> list[int]:
    """Pick n of the candidates (vectors (C, d) L2-normalised, scores (C,)), greedily
    maximising relevance * score - (1 - relevance) * (max cosine to the picked ones).
    Scores enter by rank, mapped onto [0, 1] (best 1, worst 0), so both terms are
    comparable whatever the scale of the scores. Returns rows in order."""
    count = len(scores)
    n = min(n, count)
    if n <= 0:
        return []
    ranks = np.empty(count)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(count)
    scaled = 1.0 - ranks / max(count - 1, 1)
    closest = np.full(count, -np.inf)  # max cosine of each candidate to the picked ones
    free = np.ones(count, dtype=bool)
    picked: list[int] = []
    for _ in range(n):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = np.where(free, relevance * scaled - (1 - relevance) * penalty, -np.inf)
        best = int(np.argmax(value))
        picked.append(best)
        free[best] = False
        closest = np.maximum(closest, vectors @ vectors[best])
    return picked
