"""Home feed, related items and search over the index, the taste graph and user profiles.

Every result carries a reason: the interest, source item or walk that produced it. The
parts live in their own modules: the shared item rows (items), candidate sources
(sources), ranking, exploration (explore), related items (related) and reasons (explain).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from tastegraph.graph import InterestMap, TasteGraph
from tastegraph.index import ItemIndex
from tastegraph.lru import LruMap
from tastegraph.profiles import ProfileStore
from tastegraph.recommend import explain
from tastegraph.recommend.config import RecommendConfig, check_explore
from tastegraph.recommend.explore import Explorer, interleave
from tastegraph.recommend.items import Filters, ItemRows, Recommendation, check_n
from tastegraph.recommend.ranking import rank
from tastegraph.recommend.related import RelatedScore
from tastegraph.recommend.related_table import RelatedTable
from tastegraph.recommend.sources import Caches, FeedSources
from tastegraph.store import Event

if TYPE_CHECKING:
    from tastegraph.recommend.rerank import RelatedReranker


class ItemRecommender(Protocol):
    """What every recommender answers, ours and the evaluation's baselines alike; the
    contract tests (tests/recommend/test_contract.py) hold each one to it."""

    index: ItemIndex  # the items it recommends

    def feed(
        self,
        user_id: str,
        n: int = 12,
        *,
        explore: float | None = None,
        filters: Filters | None = None,
    ) -> list[Recommendation]: ...

    def related(
        self, item_id: str, n: int = 12, *, filters: Filters | None = None
    ) -> list[Recommendation]: ...

    def record(self, event: Event) -> bool:
        """Take an event in (a hidden item never comes back); False when it changes nothing."""
        ...


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
        related_table: RelatedTable | None = None,
    ) -> None:
        """popular: (item id, score) best first; titles and variants (the product each item
        is a variant of) by item id, for reasons and for "more like this"; freshness and
        complements: see RelatedScore (none: every item alike, not used); reranker: orders
        related items (recommend/rerank), none: the related score does; related_table: the
        related items computed offline by this ranking (see RelatedTable), none: computed
        per request."""
        self.index = index
        self.graph = graph
        self.interests = interests
        self.profiles = profiles
        self.titles = titles
        self.variants = variants
        self.popular = list(popular)
        self.config = config or RecommendConfig()
        self.freshness = np.zeros(len(index), np.float32) if freshness is None else freshness
        if self.freshness.shape != (len(index),):
            raise ValueError(f"need one freshness per indexed item: {len(index)}")
        self.complements = complements
        self.reranker = reranker
        self.related_table = related_table
        self.items = ItemRows(index, graph, interests, popular, titles, variants)
        self.caches = Caches.empty(self.items, self.config)
        self.sources = FeedSources(self.items, self.caches, self.config)
        self.explorer = Explorer(self.items, self.config)
        self.related_score = RelatedScore(
            self.items, self.caches, self.config, self.freshness, complements
        )
        # Unfiltered related items depend on nothing a recommender changes (events change
        # profiles only), so an answer holds for this recommender's life; a new index,
        # graph or re-ranker comes with a new recommender and an empty cache.
        self.related_answers: LruMap[tuple[int, int], list[Recommendation]] = LruMap(
            self.config.related_cache_items
        )

    @property
    def item_vectors(self) -> np.ndarray:
        """(N, d) float32 item embeddings, in index row order."""
        return self.items.vectors

    @property
    def related_items_precomputed(self) -> int:
        """How many items' unfiltered related items come from the related-items table."""
        return 0 if self.related_table is None else len(self.related_table.queries)

    def take_over_caches(self, before: Recommender, *, nearest: bool) -> None:
        """Keep the walks `before` found (over the same graph) and, with `nearest`, its
        nearest items (over the same index), instead of finding them again."""
        self.caches.walks = before.caches.walks
        if nearest:
            self.caches.nearest = before.caches.nearest

    def record(self, event: Event) -> bool:
        """Take an event into the user's live profile; False when the item is not indexed."""
        return self.profiles.apply(event, self.index)

    def warm(self) -> tuple[int, int]:
        """Walk and search ahead of requests for the users with a profile, so that their
        feeds find both kept; returns (items walked from, interests searched)."""
        return self.sources.warm(self.profiles)

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
        check_n(n)
        explore = check_explore(self.config.explore if explore is None else explore)
        profile = self.profiles.get(user_id)
        filters = filters or Filters()
        if self.config.leave_out_engaged:
            filters = replace(filters, exclude_engaged=True)
        allowed = self.items.allowed(filters, profile)
        ranked = rank(self.items, self.sources.gather(profile, allowed), n, self.config)
        explore_slots = round(explore * n)
        self._take(ranked[: n - explore_slots], allowed)
        explored = self.explorer.explore(profile, explore_slots, allowed)
        # Slots exploration cannot fill (no adjacent interest left) go back to the ranking,
        # to items exploration did not pick meanwhile.
        picked = {r.item_id for r in explored}
        ranked = [r for r in ranked if r.item_id not in picked][: n - len(explored)]
        self._take(ranked, allowed)
        if len(ranked) + len(explored) < n:  # a shop with little history: fill from all interests
            explored += self.explorer.explore(
                profile, n - len(ranked) - len(explored), allowed, everywhere=True
            )
        return interleave(ranked, explored) if explored else ranked

    def _take(self, recommendations: list[Recommendation], allowed: np.ndarray) -> None:
        for rec in recommendations:
            allowed[self.index.row(rec.item_id)] = False

    def related(
        self, item_id: str, n: int = 12, *, filters: Filters | None = None
    ) -> list[Recommendation]:
        """More like this: nearest items by embedding, lifted when people engaged with them
        together (walks from the item) or when they are variants of the same product; the
        re-ranker, where there is one, orders the best of them by what baskets taught it."""
        check_n(n)
        query = self.index.row(item_id)
        if filters is not None and not filters.all_items:
            return self._related(query, n, self.items.allowed(filters, None))
        table = self.related_table
        computed_offline = None if table is None else table.answer(query, n)
        if computed_offline is not None:
            return self.related_score.explained(query, *computed_offline)
        key = (query, n)
        kept = self.related_answers.get_many([key])
        if key not in kept:
            kept[key] = self._related(query, n, self.items.allowed(Filters(), None))
            self.related_answers.put_many(kept)
        return list(kept[key])

    def _related(self, query: int, n: int, allowed: np.ndarray) -> list[Recommendation]:
        top, top_scores = self.ranked_related(np.array([query]), n, allowed)
        return self.related_score.explained(query, top[0], top_scores[0])

    def ranked_related(
        self, queries: np.ndarray, n: int, allowed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(Q, n) related index rows of index rows `queries` among `allowed`, best first
        (-1 pads), and their scores: the re-ranker's order where there is one, else the
        related score's."""
        if self.reranker is not None:
            return self.reranker.rank(self.related_score, queries, n, allowed)
        return self.related_score.top(queries, n, allowed)

    def search(
        self,
        query_vector: np.ndarray,
        n: int = 12,
        *,
        query: str = "",
        filters: Filters | None = None,
    ) -> list[Recommendation]:
        """Items nearest to a query embedded into the item space (see QueryEncoder)."""
        check_n(n)
        allowed = self.items.allowed(filters or Filters(), None)
        vector = np.asarray(query_vector, dtype=np.float32)
        scores, rows = self.index.search_rows(vector, n, within=allowed)
        reason = explain.searched(query)
        return [
            self.items.recommendation(int(r), float(s), "search", reason)
            for r, s in zip(rows[0], scores[0], strict=True)
            if r >= 0
        ]
