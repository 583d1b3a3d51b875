"""Test data for the index tests: random unit vectors with categories and prices."""

from __future__ import annotations

import numpy as np

CATEGORIES = [f"cat{c:03d}" for c in range(100)]  # each category holds about 1% of items


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)  # (n, dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


class Catalog:
    """n random items: ids, (n, dim) unit vectors, a category each, a price each."""

    def __init__(self, n: int, dim: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.ids = [f"item{i:06d}" for i in range(n)]
        self.vectors = unit_vectors(rng, n, dim)
        self.categories: list[str | None] = [CATEGORIES[c] for c in rng.integers(0, 100, n)]
        self.prices = rng.uniform(0.0, 100.0, n)  # (n,) float64
        self.queries = unit_vectors(rng, 40, dim)  # (40, dim)

    def truth(
        self, queries: np.ndarray, k: int, passing: np.ndarray | None = None
    ) -> list[list[tuple[str, float]]]:
        """Brute-force top-k by inner product among rows where `passing` is True."""
        scores = queries @ self.vectors.T  # (B, n)
        if passing is not None:
            scores[:, ~passing] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (B, k)
        return [
            [(self.ids[r], float(s[r])) for r in row if np.isfinite(s[r])]
            for row, s in zip(top, scores, strict=True)
        ]
