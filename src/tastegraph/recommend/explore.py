"""Exploration: feed slots given to interests next to the user's that they have not
engaged with yet, spread through the feed."""

from __future__ import annotations

import numpy as np

from tastegraph.profiles import UserProfile
from tastegraph.recommend import explain
from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.items import ItemRows, Recommendation


class Explorer:
    def __init__(self, items: ItemRows, config: RecommendConfig) -> None:
        self.items = items
        self.config = config
        self.best_per_interest = self._items_per_interest()

    def _items_per_interest(self) -> list[np.ndarray]:
        """Per interest, its items best first: popular ones, then those nearest the centroid."""
        items = self.items
        popularity = np.zeros(len(items))
        popularity[items.popular_rows] = items.popular_scores
        centroids = items.interests.centroids[items.interest]  # (N, d)
        closeness = np.einsum("nd,nd->n", items.vectors, centroids)
        order = np.lexsort((-closeness, -popularity))
        by_interest = items.interest[order]
        return [order[by_interest == c] for c in range(len(items.interests))]

    def explore(
        self,
        profile: UserProfile | None,
        slots: int,
        allowed: np.ndarray,
        *,
        everywhere: bool = False,
    ) -> list[Recommendation]:
        """Items from interests adjacent to the user's that they have not engaged with,
        one per interest in turn, nearest interests first; the picked rows are taken out of
        `allowed`. A new user explores around the interests of popular items; `everywhere`
        (or a shop without any) takes every interest in turn."""
        if slots <= 0:
            return []
        targets = self._targets(profile, slots, everywhere)
        labels = self.items.interests.labels
        queues = {t: iter(self.best_per_interest[t].tolist()) for t in targets}
        out: list[Recommendation] = []
        while queues and len(out) < slots:  # one item per adjacent interest in turn
            for target in list(queues):
                row = next((r for r in queues[target] if allowed[r]), None)
                if row is None:
                    del queues[target]
                    continue
                allowed[row] = False
                origin = targets[target]
                reason = explain.explored(
                    labels[target], None if target == origin else labels[origin]
                )
                out.append(self.items.recommendation(row, 0.0, "explore", reason))
                if len(out) == slots:
                    break
        return out

    def _targets(self, profile: UserProfile | None, slots: int, everywhere: bool) -> dict[int, int]:
        """Interests to explore, each with the interest it is next to, nearest first."""
        items = self.items
        own: list[int] = []
        engaged: set[int] = set()
        if profile is not None and profile.interests:
            queries = profile.interests_for_retrieval(n=self.config.interests)
            own = items.interests.nearest(np.stack([q.vector for q in queries])).tolist()
            rows = [items.index.row(i) for i in profile.engaged if i in items.index]
            engaged = set(items.interest[rows].tolist())
        origins = list(dict.fromkeys(own or items.interest[items.popular_rows[:slots]].tolist()))
        engaged |= set(origins) if own else set()
        if everywhere or not origins:
            return {c: c for c in range(len(items.interests))}
        adjacent = items.interests.adjacent
        targets: dict[int, int] = {}  # adjacent interest -> the interest it is next to
        for rank in range(adjacent.shape[1]):
            for origin in origins:
                target = int(adjacent[origin, rank])
                if target not in engaged:
                    targets.setdefault(target, origin)
        return targets


def interleave(
    ranked: list[Recommendation], explored: list[Recommendation]
) -> list[Recommendation]:
    """Spread explore items evenly through the feed instead of piling them at the end."""
    total = len(ranked) + len(explored)
    positions = {int((i + 0.5) * total / len(explored)) for i in range(len(explored))}
    ranked_left, explored_left = list(ranked), list(explored)
    out = []
    for position in range(total):
        take_explore = (position in positions and explored_left) or not ranked_left
        out.append((explored_left if take_explore else ranked_left).pop(0))
    return out
