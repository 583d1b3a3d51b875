"""Home feed, related items and search over the index, the taste graph and user profiles.

Every result carries a reason: the interest, source item or walk that produced it.
Items are handled as rows of the item index; the graph's rows are mapped onto them, so an
item added to the index after the graph was built is recommendable by content at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tastegraph.graph import InterestMap, RandomWalker, TasteGraph, WalkCache, WalkConfig
from tastegraph.index import ItemIndex, PriceRange
from tastegraph.profiles import ProfileStore, UserProfile
from tastegraph.recommend.config import RecommendConfig, check_explore
from tastegraph.recommend.diversify import mmr
from tastegraph.recommend.nearest import NearestCache
from tastegraph.store import Event

if TYPE_CHECKING:
    from tastegraph.recommend.rerank import RelatedReranker

ACTION_VERBS = {"purchase": "bought", "save": "saved", "click": "opened", "view": "viewed"}
SOURCES = ("interest", "walk", "popular", "repeat")


@dataclass(frozen=True)
class Filters:
    categories: Collection[str] | None = None  # only items in one of these categories
    price_range: PriceRange | None = None  # (low, high), inclusive; None for no bound
    exclude_engaged: bool = False  # leave out items the user already engaged with
    within: np.ndarray | None = None  # (N,) bool over index rows: only these may come


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    source: str  # interest | walk | popular | repeat | explore | similar | search
    reason: str  # for people: "Because you bought Strap top"
    interest: str  # label of the item's interest, e.g. "Black · Trousers"


@dataclass
class _Source:
    """One candidate source: distinct rows, their scores, and why each came."""

    rows: np.ndarray  # (C,) int64, sorted
    scores: np.ndarray  # (C,) float64
    reasons: np.ndarray  # (C,) str

    @classmethod
    def of(cls, rows: np.ndarray, scores: np.ndarray, reasons: Sequence[str]) -> _Source:
        """Keep each row's best score (and its reason)."""
        order = np.lexsort((-scores, rows))
        rows, scores = rows[order], scores[order]
        first = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, bool)
        return cls(rows[first], scores[first], np.asarray(reasons, dtype=object)[order[first]])

    def reason(self, row: int) -> str:
        return str(self.reasons[int(np.searchsorted(self.rows, row))])


class Recommender:
    def __init__(
        self,
        index: ItemIndex,
        graph: TasteGraph,
        interests: InterestMap,
        popular: Sequence[tuple[str, float]],
        profiles: ProfileStore,
        titles: Mapping[str, str],
        variants: Mapping[str, str],
        config: RecommendConfig | None = None,
        freshness: np.ndarray | None = None,
        complements: Callable[[np.ndarray], np.ndarray] | None = None,
        reranker: RelatedReranker | None = None,
    ) -> None:
        """popular: (item id, score) best first; titles and variants (the product each item
        is a variant of) by item id, for reasons and for "more like this"; freshness: (N,)
        log-lift of each indexed item from the age of its last engagement (graph/freshness),
        none: every item alike; complements: index rows (Q,) -> (Q, N) how well their
        attribute values go with every item's (graph/complements), none: not used;
        reranker: orders related items (recommend/rerank), none: the related score does."""
        self.index = index
        self.graph = graph
        self.interests = interests
        self.profiles = profiles
        self.titles = titles
        self.variants = variants
        self.popular = list(popular)
        self.config = config or RecommendConfig()
        self.walker = RandomWalker(
            graph, WalkConfig(walkers=self.config.walkers, steps=self.config.walk_steps)
        )
        self.walks = WalkCache(self.walker, self.config.walk_cache_items)
        self.nearest = NearestCache(
            index, self.config.per_interest, self.config.interest_cache_items
        )
        ids = self._ids = index.ids
        self._vectors: np.ndarray = index.index.reconstruct_n(0, len(index))  # (N, d) float32
        self._graph_row = np.array([graph.rows.get(i, -1) for i in ids], dtype=np.int64)
        self._index_row = np.full(len(graph), -1, dtype=np.int64)  # graph row -> index row
        self._index_row[self._graph_row[self._graph_row >= 0]] = np.flatnonzero(
            self._graph_row >= 0
        )
        self._interest = np.where(
            self._graph_row >= 0, interests.assignment[np.maximum(self._graph_row, 0)], -1
        )
        unassigned = np.flatnonzero(self._interest < 0)
        if len(unassigned):
            self._interest[unassigned] = interests.nearest(self._vectors[unassigned])
        known = [(index.row(i), s) for i, s in popular if i in index]
        self._popular_rows = np.array([r for r, _ in known], dtype=np.int64)
        self._popular_scores = np.array([s for _, s in known], dtype=np.float64)
        products = {p: c for c, p in enumerate(dict.fromkeys(variants.get(i, i) for i in ids))}
        self._variant = np.array([products[variants.get(i, i)] for i in ids], dtype=np.int64)
        self._explore_items = self._items_per_interest()
        self.freshness = np.zeros(len(index), np.float32) if freshness is None else freshness
        if self.freshness.shape != (len(index),):
            raise ValueError(f"need one freshness per indexed item: {len(index)}")
        self.complements = complements
        self.reranker = reranker

    @property
    def item_vectors(self) -> np.ndarray:
        """(N, d) float32 item embeddings, in index row order."""
        return self._vectors

    # -- live updates ----------------------------------------------------------------------

    def record(self, event: Event) -> bool:
        """Take an event into the user's live profile; False when the item is not indexed."""
        return self.profiles.apply(event, self.index)

    # -- home feed -------------------------------------------------------------------------

    def feed(
        self,
        user_id: str,
        n: int = 12,
        *,
        explore: float | None = None,
        filters: Filters | None = None,
    ) -> list[Recommendation]:
        """n items for the user: their interests, walks from their recent items, popular
        items, then diversified; a share `explore` (0-1) of slots goes to interests next to
        the user's that they have not engaged with. New users start from popular items."""
        _check_n(n)
        explore = check_explore(self.config.explore if explore is None else explore)
        profile = self.profiles.get(user_id)
        allowed = self._allowed(filters or Filters(), profile)
        sources = self._feed_candidates(profile, allowed)
        ranked = self._rank(sources, n)
        explore_slots = round(explore * n)
        self._take(ranked[: n - explore_slots], allowed)
        explored = self._explore(profile, explore_slots, allowed)
        # Slots exploration cannot fill (no adjacent interest left) go back to the ranking,
        # to items exploration did not pick meanwhile.
        picked = {r.item_id for r in explored}
        ranked = [r for r in ranked if r.item_id not in picked][: n - len(explored)]
        self._take(ranked, allowed)
        if len(ranked) + len(explored) < n:  # a shop with little history: fill from all interests
            explored += self._explore(
                profile, n - len(ranked) - len(explored), allowed, everywhere=True
            )
        return _interleave(ranked, explored) if explored else ranked

    def _take(self, recommendations: list[Recommendation], allowed: np.ndarray) -> None:
        for rec in recommendations:
            allowed[self.index.row(rec.item_id)] = False

    def _feed_candidates(
        self, profile: UserProfile | None, allowed: np.ndarray
    ) -> dict[str, _Source]:
        config = self.config
        sources = {}
        if profile is not None and profile.interests:
            sources["interest"] = self._interest_candidates(profile, allowed)
            sources["walk"] = self._walk_candidates(profile, allowed)
            sources["repeat"] = self._repeat_candidates(profile, allowed)
        top = self._popular_rows[: config.popular]
        fits = allowed[top]
        sources["popular"] = _Source.of(
            top[fits],
            self._popular_scores[: config.popular][fits],
            ["Popular right now"] * len(top),
        )
        return sources

    def _interest_candidates(self, profile: UserProfile, allowed: np.ndarray) -> _Source:
        """Nearest items to each interest's medoid, scored by cosine times the square root of
        the interest's importance relative to the top one: a minor or brand-new interest
        still gets its share of the feed (PinnerSage serves several interests, not one)."""
        queries = profile.interests_for_retrieval(n=self.config.interests)
        vectors = np.stack([q.vector for q in queries])  # (Q, d)
        if allowed.all():
            scores, rows = self.nearest.search(vectors)
        else:  # filters, or the user's items left out: kept answers are unfiltered
            scores, rows = self.index.search_rows(vectors, self.config.per_interest, within=allowed)
        importance = np.array([q.importance for q in queries])
        weighted = scores * np.sqrt(importance / importance.max())[:, None]  # (Q, k)
        reasons = [self._because(profile, q.medoid_id) for q in queries]
        found = rows >= 0
        origin = np.broadcast_to(np.arange(len(queries))[:, None], rows.shape)[found]
        return _Source.of(rows[found], weighted[found], [reasons[q] for q in origin])

    def _walk_candidates(self, profile: UserProfile, allowed: np.ndarray) -> _Source:
        """Pixie-boosted visits of walks from the user's latest items, the latest weighing
        most; each candidate is credited to the query item whose walks reached it most."""
        known = [(i, w) for i, w in self._recent_items(profile) if i in self.graph.rows]
        if not known:
            return _Source.of(np.zeros(0, np.int64), np.zeros(0), [])
        visits = self.walks.visits(np.array([self.graph.rows[i] for i, _ in known]))
        origin = np.repeat(np.arange(len(known)), np.diff(visits.indptr))  # visit -> query
        graph_rows = visits.indices
        values = visits.data * np.array([w for _, w in known])[origin]
        visited, at = np.unique(graph_rows, return_inverse=True)
        boosted = np.bincount(at, weights=np.sqrt(values)) ** 2  # (distinct visited,)
        rows = self._index_row[graph_rows]
        fits = rows >= 0
        fits[fits] &= allowed[rows[fits]]
        reasons = np.array([self._because(profile, item_id) for item_id, _ in known], object)
        best = _Source.of(rows[fits], values[fits], reasons[origin[fits]])
        best.scores = boosted[np.searchsorted(visited, self._graph_row[best.rows])]
        return best

    def warm(self) -> tuple[int, int]:
        """Walk and search ahead of requests for the users with a profile, the most recently
        active first, as many as the caches keep, so that their feeds find both kept;
        returns (items walked from, interests searched)."""
        latest_first = sorted(
            (p for p in self.profiles if p.recent), key=lambda p: -p.recent[-1][2]
        )
        rows = dict.fromkeys(
            self.graph.rows[item_id]
            for profile in latest_first
            for item_id, _ in self._recent_items(profile)
            if item_id in self.graph.rows
        )
        self.walks.warm(np.fromiter(rows, dtype=np.int64, count=len(rows)))
        medoids = [
            query.vector
            for profile in latest_first
            if profile.interests
            for query in profile.interests_for_retrieval(n=self.config.interests)
        ]
        if medoids:
            self.nearest.warm(np.stack(medoids))
        return min(len(rows), self.walks.kept.size), min(len(medoids), self.nearest.kept.size)

    def _recent_items(self, profile: UserProfile) -> list[tuple[str, float]]:
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

    def _repeat_candidates(self, profile: UserProfile, allowed: np.ndarray) -> _Source:
        """The user's own items, by decayed weight."""
        items, weights = _heaviest_members(profile, self.config.per_interest)
        rows = np.array([self.index.row(i) if i in self.index else -1 for i in items], np.int64)
        fits = rows >= 0
        fits[fits] &= allowed[rows[fits]]
        reasons = [
            f"You {ACTION_VERBS.get(profile.engaged.get(i, ''), 'liked')} this before"
            for i in items
        ]
        return _Source.of(
            rows[fits],
            np.array(weights)[fits],
            [r for r, f in zip(reasons, fits, strict=True) if f],
        )

    def _rank(self, sources: dict[str, _Source], n: int) -> list[Recommendation]:
        """The n best candidates by weighted source scores (each scaled by the source's
        best), diversified by MMR; each credited to the source that contributed most."""
        if n <= 0:
            return []
        config = self.config
        weights = {
            "interest": config.interest_weight,
            "walk": config.walk_weight,
            "popular": config.popular_weight,
            "repeat": config.repeat_weight,
        }
        names = [s for s in SOURCES if s in sources and len(sources[s].rows)]
        if not names:
            return []
        rows = np.unique(np.concatenate([sources[s].rows for s in names]))
        parts = np.zeros((len(rows), len(names)))  # (C, sources)
        present = np.zeros(parts.shape, dtype=bool)
        for column, name in enumerate(names):
            source = sources[name]
            at = np.searchsorted(rows, source.rows)
            best = source.scores.max()
            parts[at, column] = weights[name] * source.scores / best if best > 0 else 0.0
            present[at, column] = True
        totals = parts.sum(axis=1)
        top = np.argsort(-totals, kind="stable")[: config.mmr_pool * n]
        picked = top[mmr(self._vectors[rows[top]], totals[top], n, config.mmr_lambda)]
        out = []
        for i in picked:
            name = names[int(np.argmax(np.where(present[i], parts[i], -np.inf)))]
            reason = sources[name].reason(int(rows[i]))
            out.append(self._recommendation(int(rows[i]), float(totals[i]), name, reason))
        return out

    # -- exploration -----------------------------------------------------------------------

    def _items_per_interest(self) -> list[np.ndarray]:
        """Per interest, its items best first: popular ones, then those nearest the centroid."""
        popularity = np.zeros(len(self.index))
        popularity[self._popular_rows] = self._popular_scores
        centroids = self.interests.centroids[self._interest]  # (N, d)
        closeness = np.einsum("nd,nd->n", self._vectors, centroids)
        order = np.lexsort((-closeness, -popularity))
        by_interest = self._interest[order]
        return [order[by_interest == c] for c in range(len(self.interests))]

    def _explore(
        self,
        profile: UserProfile | None,
        slots: int,
        allowed: np.ndarray,
        *,
        everywhere: bool = False,
    ) -> list[Recommendation]:
        """Items from interests adjacent to the user's that they have not engaged with,
        one per interest in turn, nearest interests first. A new user explores around the
        interests of popular items; `everywhere` (or a shop without any) takes every
        interest in turn."""
        if slots <= 0:
            return []
        own: list[int] = []
        engaged: set[int] = set()
        if profile is not None and profile.interests:
            queries = profile.interests_for_retrieval(n=self.config.interests)
            own = self.interests.nearest(np.stack([q.vector for q in queries])).tolist()
            rows = [self.index.row(i) for i in profile.engaged if i in self.index]
            engaged = set(self._interest[rows].tolist())
        origins = list(dict.fromkeys(own or self._interest[self._popular_rows[:slots]].tolist()))
        engaged |= set(origins) if own else set()
        adjacent = self.interests.adjacent
        targets: dict[int, int] = {}  # adjacent interest -> the interest it is next to
        for rank in range(adjacent.shape[1]):
            for origin in origins:
                target = int(adjacent[origin, rank])
                if target not in engaged:
                    targets.setdefault(target, origin)
        if everywhere or not origins:
            targets = {c: c for c in range(len(self.interests))}
        queues = {t: iter(self._explore_items[t].tolist()) for t in targets}
        out: list[Recommendation] = []
        while queues and len(out) < slots:  # one item per adjacent interest in turn
            for target in list(queues):
                row = next((r for r in queues[target] if allowed[r]), None)
                if row is None:
                    del queues[target]
                    continue
                allowed[row] = False
                label, near = self.interests.labels[target], self.interests.labels[targets[target]]
                reason = (
                    f"Something to start with: {label}"
                    if target == targets[target]
                    else f"Something new: {label}, next to {near}"
                )
                out.append(self._recommendation(row, 0.0, "explore", reason))
                if len(out) == slots:
                    break
        return out

    # -- related items and search ----------------------------------------------------------

    def related(
        self, item_id: str, n: int = 12, *, filters: Filters | None = None
    ) -> list[Recommendation]:
        """More like this: nearest items by embedding, lifted when people engaged with them
        together (walks from the item) or when they are variants of the same product; the
        re-ranker, where there is one, orders the best of them by what baskets taught it."""
        _check_n(n)
        query = self.index.row(item_id)
        allowed = self._allowed(filters or Filters(), None)
        if self.reranker is not None:
            ranked, best = self.reranker.rank(self, np.array([query]), n, allowed)
            top, top_scores = ranked[0], best[0]
        else:
            scores = self.related_scores(np.array([query]))[0]
            scores[~allowed] = -np.inf
            top = np.argsort(-scores, kind="stable")[:n]
            top_scores = scores[top]
        title = self._title(item_id)
        walked = self._walk_neighbours(query)
        out = []
        for row, score in zip(top, top_scores, strict=True):
            if row < 0 or not np.isfinite(score):
                continue
            if self._variant[row] == self._variant[query]:
                source, reason = "similar", f"Another version of {title}"
            elif row in walked:
                source, reason = "walk", f"Often bought with {title}"
            else:
                source, reason = "similar", f"Looks like {title}"
            out.append(self._recommendation(int(row), float(score), source, reason))
        return out

    def related_scores(
        self, queries: np.ndarray, parts: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """(Q, N) related-item scores of index rows `queries` over every indexed item; each
        query scores -inf against itself. `parts`: their related_parts, if already at hand."""
        config = self.config
        weights = {
            "cosine": 1.0,
            "same_product": config.related_variant_weight,
            "freshness": config.related_freshness_weight,
            "complement": config.related_complement_weight,
            "walk": config.related_walk_weight,
        }
        scores = np.zeros((len(queries), len(self.index)), dtype=np.float32)
        for name, part in (parts or self.related_parts(queries)).items():
            scores += weights[name] * part
        scores[np.arange(len(queries)), queries] = -np.inf
        return scores

    def related_parts(self, queries: np.ndarray) -> dict[str, np.ndarray]:
        """The parts of the related score, each (Q, N) or (N,) over every indexed item:
        embedding cosine, same product (0/1), freshness log-lift, attribute complements
        (summed PMI) and log(1 + walk visits) from the query."""
        parts = {
            "cosine": self._vectors[queries] @ self._vectors.T,
            "same_product": (self._variant[queries][:, None] == self._variant[None, :]).astype(
                np.float32
            ),
            "freshness": self.freshness,
        }
        if self.complements is not None and self.config.related_complement_weight > 0:
            parts["complement"] = self.complements(queries)
        walk = np.zeros((len(queries), len(self.index)), dtype=np.float32)
        graph_queries = self._graph_row[queries]
        walked = np.flatnonzero(graph_queries >= 0)
        if len(walked) and self.config.related_walk_weight > 0:
            visits = self.walks.visits(graph_queries[walked]).tocoo()  # (W, N graph)
            rows = self._index_row[visits.col]
            ok = rows >= 0
            walk[walked[visits.row[ok]], rows[ok]] = np.log1p(visits.data[ok])
        parts["walk"] = walk
        return parts

    def search(
        self,
        query_vector: np.ndarray,
        n: int = 12,
        *,
        query: str = "",
        filters: Filters | None = None,
    ) -> list[Recommendation]:
        """Items nearest to a query embedded into the item space (see QueryEncoder)."""
        _check_n(n)
        allowed = self._allowed(filters or Filters(), None)
        vector = np.asarray(query_vector, dtype=np.float32)
        scores, rows = self.index.search_rows(vector, n, within=allowed)
        reason = f"Matches “{query}”" if query else "Matches your search"
        return [
            self._recommendation(int(r), float(s), "search", reason)
            for r, s in zip(rows[0], scores[0], strict=True)
            if r >= 0
        ]

    # -- helpers ---------------------------------------------------------------------------

    def _allowed(self, filters: Filters, profile: UserProfile | None) -> np.ndarray:
        """(N,) bool: items that pass the filters and that the user has not hidden."""
        mask = self.index.fields.mask(filters.categories, filters.price_range)
        allowed = np.ones(len(self.index), dtype=bool) if mask is None else mask.copy()
        if filters.within is not None:
            allowed &= filters.within
        if profile is not None:
            excluded = set(profile.hidden)
            if filters.exclude_engaged:
                excluded |= set(profile.engaged)
            allowed[[self.index.row(i) for i in excluded if i in self.index]] = False
        return allowed

    def _walk_neighbours(self, row: int) -> set[int]:
        """Index rows that share a collection or user with the item at `row`."""
        graph_row = self._graph_row[row]
        if graph_row < 0:
            return set()
        nodes = self.graph.item_to_node[graph_row].indices
        neighbours = self._index_row[np.unique(self.graph.node_to_item[nodes].indices)]
        return set(neighbours[neighbours >= 0].tolist()) - {row}

    def _because(self, profile: UserProfile, item_id: str) -> str:
        verb = ACTION_VERBS.get(profile.engaged.get(item_id, ""), "liked")
        return f"Because you {verb} {self._title(item_id)}"

    def _title(self, item_id: str) -> str:
        """The item's title; without one, its interest's label ("a Black · Dress")."""
        if item_id in self.titles:
            return self.titles[item_id]
        if item_id in self.index:
            return f"a {self.interests.labels[int(self._interest[self.index.row(item_id)])]}"
        return f"item {item_id}"

    def _recommendation(self, row: int, score: float, source: str, reason: str) -> Recommendation:
        label = self.interests.labels[int(self._interest[row])]
        return Recommendation(self._ids[row], score, source, reason, label)


def _heaviest_members(profile: UserProfile, n: int) -> tuple[list[str], list[float]]:
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


def _interleave(
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


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer of at least 1, got {n!r}")
