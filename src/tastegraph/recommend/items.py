"""What the parts of the recommender share: every indexed item as a row, and the answers.

Items are handled as rows of the item index; the graph's rows are mapped onto them, so an
item added to the index after the graph was built is recommendable by content at once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tastegraph.graph import InterestMap, TasteGraph
from tastegraph.index import ItemIndex, PriceRange
from tastegraph.profiles import UserProfile


@dataclass(frozen=True)
class Filters:
    categories: Collection[str] | None = None  # only items in one of these categories
    price_range: PriceRange | None = None  # (low, high), inclusive; None for no bound
    exclude_engaged: bool = False  # leave out items the user already engaged with
    within: np.ndarray | None = None  # (N,) bool over index rows: only these may come

    @property
    def all_items(self) -> bool:
        """No category, price or row filter (exclude_engaged aside: it needs a user)."""
        return self.categories is None and self.price_range is None and self.within is None


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    score: float
    source: str  # interest | walk | popular | repeat | explore | similar | search
    reason: str  # for people: "Because you bought Strap top"
    interest: str  # label of the item's interest, e.g. "Black · Trousers"


class ItemRows:
    """The index's items with what ranking reads of each, row by row: embedding, taste-graph
    row, interest, product and popularity."""

    def __init__(
        self,
        index: ItemIndex,
        graph: TasteGraph,
        interests: InterestMap,
        popular: Sequence[tuple[str, float]],
        titles: Mapping[str, str],
        variants: Mapping[str, str],
    ) -> None:
        self.index = index
        self.graph = graph
        self.interests = interests
        self.titles = titles
        ids = self.ids = index.ids
        self.vectors: np.ndarray = index.index.reconstruct_n(0, len(index))  # (N, d) float32
        self.graph_row = np.array([graph.rows.get(i, -1) for i in ids], dtype=np.int64)
        self.index_row = np.full(len(graph), -1, dtype=np.int64)  # graph row -> index row
        self.index_row[self.graph_row[self.graph_row >= 0]] = np.flatnonzero(self.graph_row >= 0)
        self.interest = np.where(
            self.graph_row >= 0, interests.assignment[np.maximum(self.graph_row, 0)], -1
        )
        unassigned = np.flatnonzero(self.interest < 0)
        if len(unassigned):
            self.interest[unassigned] = interests.nearest(self.vectors[unassigned])
        known = [(index.row(i), s) for i, s in popular if i in index]
        self.popular_rows = np.array([r for r, _ in known], dtype=np.int64)
        self.popular_scores = np.array([s for _, s in known], dtype=np.float64)
        products = {p: c for c, p in enumerate(dict.fromkeys(variants.get(i, i) for i in ids))}
        self.variant = np.array([products[variants.get(i, i)] for i in ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def allowed(self, filters: Filters, profile: UserProfile | None) -> np.ndarray:
        """(N,) bool: items that pass the filters and that the user has not hidden."""
        allowed = passing(self.index, filters)
        if profile is not None:
            excluded = set(profile.hidden)
            if filters.exclude_engaged:
                excluded |= set(profile.engaged)
            allowed[[self.index.row(i) for i in excluded if i in self.index]] = False
        return allowed

    def title(self, item_id: str) -> str:
        """The item's title; without one, its interest's label ("a Black · Dress")."""
        if item_id in self.titles:
            return self.titles[item_id]
        if item_id in self.index:
            return f"a {self.interests.labels[int(self.interest[self.index.row(item_id)])]}"
        return f"item {item_id}"

    def recommendation(self, row: int, score: float, source: str, reason: str) -> Recommendation:
        label = self.interests.labels[int(self.interest[row])]
        return Recommendation(self.ids[row], score, source, reason, label)


def passing(index: ItemIndex, filters: Filters) -> np.ndarray:
    """(N,) bool: the indexed items in the filters' categories, price range and `within`
    (`exclude_engaged` is the caller's: it needs the user's history)."""
    mask = index.fields.mask(filters.categories, filters.price_range)
    allowed = np.ones(len(index), dtype=bool) if mask is None else mask.copy()
    if filters.within is not None:
        allowed &= filters.within
    return allowed


def check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer of at least 1, got {n!r}")
