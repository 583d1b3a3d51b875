"""Maximal marginal relevance: trade a little score for items unlike those already picked."""

from __future__ import annotations

import numpy as np


def mmr(vectors: np.ndarray, scores: np.ndarray, n: int, relevance: float) -> list[int]:
    """Pick n of the candidates (vectors (C, d) L2-normalised, scores (C,)), greedily
    maximising relevance * score - (1 - relevance) * (max cosine to the picked ones).
    Scores are scaled to [0, 1] first so both terms are comparable. Returns rows in order."""
    count = len(scores)
    n = min(n, count)
    if n <= 0:
        return []
    low, high = float(np.min(scores)), float(np.max(scores))
    scaled = (scores - low) / (high - low) if high > low else np.ones(count)
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
