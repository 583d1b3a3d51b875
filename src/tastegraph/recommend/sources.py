"""Where home-feed candidates come from: the user's interests (nearest items to each
medoid), walks on the taste graph from their latest items, their own items again, and
what is popular right now. Each source gives distinct rows, their scores and a reason."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tastegraph.graph import RandomWalker, WalkCache, WalkConfig
from tastegraph.profiles import UserProfile
from tastegraph.recommend import explain
from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.items import ItemRows
from tastegraph.recommend.nearest import NearestCache

SOURCES = ("interest", "walk", "popular", "repeat")


@dataclass
class Candidates:
    """One source's candidates: distinct rows, their scores, and why each came."""

    rows: np.ndarray  # (C,) int64, sorted
    scores: np.ndarray  # (C,) float64
    reasons: np.ndarray  # (C,) str

    @classmethod
    def of(cls, rows: np.ndarray, scores: np.ndarray, reasons: Sequence[str]) -> Candidates:
        """Keep each row's best score (and its reason)."""
        order = np.lexsort((-scores, rows))
        rows, scores = rows[order], scores[order]
        first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, bool)
        return cls(rows[first], scores[first], np.asarray(reasons, dtype=object)[order[first]])

    def reason(self, row: int) -> str:
        return str(self.reasons[int(np.searchsorted(self.rows, row))])


@dataclass
class Caches:
    """Walks and nearest items found for earlier requests. The feed and related items share
    them; a recommender over the same graph (or index) may take over the walks (or nearest
    items) of the one it replaces."""

    walks: WalkCache
    nearest: NearestCache

    @classmethod
    def empty(cls, items: ItemRows, config: RecommendConfig) -> Caches:
        walker = RandomWalker(
            items.graph, WalkConfig(walkers=config.walkers, steps=config.walk_steps)
        )
        return cls(
            WalkCache(walker, config.walk_cache_items),
            NearestCache(items.index, config.per_interest, config.interest_cache_items),
        )


class FeedSources:
    def __init__(self, items: ItemRows, caches: Caches, config: RecommendConfig) -> None:
        self.items = items
        self.caches = caches
        self.config = config

    def gather(self, profile: UserProfile | None, allowed: np.ndarray) -> dict[str, Candidates]:
        """Every source's candidates among `allowed` (N,) bool items."""
        sources = {}
        if profile is not None and profile.interests:
            sources["interest"] = self._interests(profile, allowed)
            sources["walk"] = self._walks(profile, allowed)
            sources["repeat"] = self._again(profile, allowed)
        sources["popular"] = self._popular(allowed)
        return sources

    def _popular(self, allowed: np.ndarray) -> Candidates:
        top = self.items.popular_rows[: self.config.popular]
        fits = allowed[top]
        return Candidates.of(
            top[fits],
            self.items.popular_scores[: self.config.popular][fits],
            [explain.POPULAR] * len(top),
        )

    def _interests(self, profile: UserProfile, allowed: np.ndarray) -> Candidates:
        """Nearest items to each interest's medoid, scored by cosine times the square root of
        the interest's importance relative to the top one: a minor or brand-new interest
        still gets its share of the feed (PinnerSage serves several interests, not one)."""
        queries = profile.interests_for_retrieval(n=self.config.interests)
        vectors = np.stack([q.vector for q in queries])  # (Q, d)
        if allowed.all():
            scores, rows = self.caches.nearest.search(vectors)
        else:  # filters, or the user's items left out: kept answers are unfiltered
            scores, rows = self.items.index.search_rows(
                vectors, self.config.per_interest, within=allowed
            )
        importance = np.array([q.importance for q in queries])
        weighted = scores * np.sqrt(importance / importance.max())[:, None]  # (Q, k)
        reasons = [self._because(profile, q.medoid_id) for q in queries]
        found = rows >= 0
        origin = np.broadcast_to(np.arange(len(queries))[:, None], rows.shape)[found]
        return Candidates.of(rows[found], weighted[found], [reasons[q] for q in origin])

    def _walks(self, profile: UserProfile, allowed: np.ndarray) -> Candidates:
        """Pixie-boosted visits of walks from the user's latest items, the latest weighing
        most; each candidate is credited to the query item whose walks reached it most."""
        items = self.items
        known = [(i, w) for i, w in self.recent_items(profile) if i in items.graph.rows]
        if not known:
            return Candidates.of(np.zeros(0, np.int64), np.zeros(0), [])
        visits = self.caches.walks.visits(np.array([items.graph.rows[i] for i, _ in known]))
        origin = np.repeat(np.arange(len(known)), np.diff(visits.indptr))  # visit -> query
        graph_rows = visits.indices
        values = visits.data * np.array([w for _, w in known])[origin]
        visited, at = np.unique(graph_rows, return_inverse=True)
        boosted = np.bincount(at, weights=np.sqrt(values)) ** 2  # (distinct visited,)
        rows = items.index_row[graph_rows]
        fits = rows >= 0
        fits[fits] &= allowed[rows[fits]]
        reasons = np.array([self._because(profile, item_id) for item_id, _ in known], object)
        best = Candidates.of(rows[fits], values[fits], reasons[origin[fits]])
        best.scores = boosted[np.searchsorted(visited, items.graph_row[best.rows])]
        return best

    def _again(self, profile: UserProfile, allowed: np.ndarray) -> Candidates:
        """The user's own items, by decayed weight."""
        index = self.items.index
        item_ids, weights = heaviest_members(profile, self.config.per_interest)
        rows = np.array([index.row(i) if i in index else -1 for i in item_ids], np.int64)
        fits = rows >= 0
        fits[fits] &= allowed[rows[fits]]
        reasons = [explain.again(profile, i) for i, f in zip(item_ids, fits, strict=True) if f]
        return Candidates.of(rows[fits], np.array(weights)[fits], reasons)

    def recent_items(self, profile: UserProfile) -> list[tuple[str, float]]:
        """The user's latest distinct items with weights: action weight, halved for every
        walk_half_life_hours before the latest event."""
        if not profile.recent:
            return []
        latest = profile.recent[-1][2]
        half_life_s = self.config.walk_half_life_hours * 3600.0
        weights: dict[str, float] = {}
        for item_id, action, ts in profile.recent:
            weight = profile.config.action_weights[action] * 0.5 ** ((latest - ts) / half_life_s)
            weights[item_id] = weights.get(item_id, 0.0) + weight
        ranked = sorted(weights.items(), key=lambda pair: -pair[1])
        return ranked[: self.config.walk_items]

    def warm(self, profiles: Iterable[UserProfile]) -> tuple[int, int]:
        """Walk and search ahead of requests for these users, the most recently active
        first, as many as the caches keep; returns (items walked from, interests searched)."""
        latest_first = sorted((p for p in profiles if p.recent), key=lambda p: -p.recent[-1][2])
        graph_rows = self.items.graph.rows
        rows = dict.fromkeys(
            graph_rows[item_id]
            for profile in latest_first
            for item_id, _ in self.recent_items(profile)
            if item_id in graph_rows
        )
        walks, nearest = self.caches.walks, self.caches.nearest
        walks.warm(np.fromiter(rows, dtype=np.int64, count=len(rows)))
        medoids = [
            query.vector
            for profile in latest_first
            if profile.interests
            for query in profile.interests_for_retrieval(n=self.config.interests)
        ]
        if medoids:
            nearest.warm(np.stack(medoids))
        return min(len(rows), walks.kept.size), min(len(medoids), nearest.kept.size)

    def _because(self, profile: UserProfile, item_id: str) -> str:
        return explain.because(profile, item_id, self.items.title(item_id))


def heaviest_members(profile: UserProfile, n: int) -> tuple[list[str], list[float]]:
    """The user's n heaviest engaged items across interests (decayed weights: recent and
    strong actions weigh most)."""
    weights: dict[str, float] = {}
    at = profile.updated_at or 0.0
    for interest in profile.interests:
        factor = profile.config.decay(at - interest.last_update)
        for item_id, weight in zip(interest.item_ids, interest.weights, strict=True):
            weights[item_id] = max(weights.get(item_id, 0.0), float(weight) * factor)
    ranked = sorted(weights.items(), key=lambda p: (-p[1], p[0]))[:n]
    return [i for i, _ in ranked], [w for _, w in ranked]
