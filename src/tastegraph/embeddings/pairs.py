"""Positive pairs for the taste stage: items engaged together before a cut-off.

Pairs come from groups: a collection, one user's session, or the variants of one product.
Each group has an owner (the user of a session, else the group itself), and the taste stage
draws pairs by a weight that damps dense owners, so one user who rates hundreds of films in
a sitting does not drown out thousands of shoppers with a basket of two.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tastegraph.store import Event

# A group larger than this contributes a random sample of its pairs, so one huge board
# does not drown out thousands of small baskets.
MAX_PAIRS_PER_GROUP = 200

Groups = dict[tuple[str, ...], set[int]]


@dataclass(frozen=True)
class TastePairs:
    """Distinct row pairs, and the probability of drawing each into a taste batch."""

    rows: np.ndarray  # (P, 2) int64
    weights: np.ndarray  # (P,) float64, sums to 1

    def __len__(self) -> int:
        return len(self.rows)

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """About `size` distinct pairs drawn by weight (drawn with replacement, repeats
        dropped, so a batch never holds one pair twice)."""
        drawn = np.searchsorted(self._cumulative, rng.random(size) * self._cumulative[-1], "right")
        rows: np.ndarray = self.rows[np.unique(np.minimum(drawn, len(self.rows) - 1))]
        return rows

    @cached_property
    def _cumulative(self) -> np.ndarray:
        return np.cumsum(self.weights)


def engagement_groups(
    events: Iterable[Event],
    index: dict[str, int],
    *,
    cutoff: float | None = None,
    session_window_s: float = 3600.0,
) -> Groups:
    """Rows of the items in each collection, and in each user's sessions (engagements within
    `session_window_s` of the previous one). Hides are not engagement; only events before
    `cutoff` count."""
    groups: Groups = defaultdict(set)
    last_seen: dict[str, float] = {}
    session_of: dict[str, int] = defaultdict(int)
    for event in events:
        if event.action == "hide" or event.item_id not in index:
            continue
        if cutoff is not None and event.ts >= cutoff:
            continue
        row = index[event.item_id]
        if event.collection_id is not None:
            groups[("collection", event.collection_id)].add(row)
        previous = last_seen.get(event.user_id)
        if previous is not None and event.ts - previous > session_window_s:
            session_of[event.user_id] += 1
        last_seen[event.user_id] = event.ts
        groups[("session", event.user_id, str(session_of[event.user_id]))].add(row)
    return groups


def variant_groups(variant_of: Sequence[str | None], trainable: np.ndarray) -> Groups:
    """Rows of the variants of each product (e.g. two colours). Catalog structure, not
    engagement: it holds at any time, so it needs no cut-off."""
    groups: Groups = defaultdict(set)
    for row, product in enumerate(variant_of):
        if product is not None and trainable[row]:
            groups[("product", product)].add(row)
    return groups


def co_engaged_pairs(
    events: Iterable[Event],
    index: dict[str, int],
    *,
    cutoff: float | None = None,
    session_window_s: float = 3600.0,
    seed: int = 0,
) -> np.ndarray:
    """(P, 2) distinct row pairs of items in the same collection, or engaged by the same user
    within `session_window_s` of each other, before `cutoff`."""
    groups = engagement_groups(events, index, cutoff=cutoff, session_window_s=session_window_s)
    return _distinct(_pairs_by_owner(groups, seed).values())


def variant_pairs(
    variant_of: Sequence[str | None], trainable: np.ndarray, seed: int = 0
) -> np.ndarray:
    """(P, 2) row pairs of items that are variants of one product."""
    return _distinct(_pairs_by_owner(variant_groups(variant_of, trainable), seed).values())


def taste_pairs(groups: Groups, owner_power: float = 0.5, seed: int = 0) -> TastePairs:
    """The distinct pairs of the groups, each drawn in proportion to the sum, over the owners
    that hold it, of n ** (owner_power - 1), where n is that owner's number of pairs: an
    owner weighs n ** owner_power in all. 1 weighs every pair alike (a dense user weighs
    as much as their pairs), 0 weighs every user alike, 0.5 is in between."""
    owned = [
        (pairs, np.full(len(pairs), float(len(pairs)) ** (owner_power - 1.0)))
        for pairs in _pairs_by_owner(groups, seed).values()
        if len(pairs)
    ]
    if not owned:
        return TastePairs(np.zeros((0, 2), dtype=np.int64), np.zeros(0))
    rows, inverse = np.unique(
        np.concatenate([pairs for pairs, _ in owned]), axis=0, return_inverse=True
    )
    summed = np.bincount(
        inverse.reshape(-1), weights=np.concatenate([w for _, w in owned]), minlength=len(rows)
    )
    return TastePairs(rows, summed / summed.sum())


def _owner(key: tuple[str, ...]) -> tuple[str, ...]:
    """Who a group's pairs belong to: the user of a session, else the group itself."""
    return ("user", key[1]) if key[0] == "session" else key


def _pairs_by_owner(groups: Groups, seed: int) -> dict[tuple[str, ...], np.ndarray]:
    """Each owner's distinct pairs, at most MAX_PAIRS_PER_GROUP from any one group."""
    rng = np.random.default_rng(seed)
    owned: dict[tuple[str, ...], set[tuple[int, int]]] = defaultdict(set)
    for key, members in groups.items():
        group_pairs = list(itertools.combinations(sorted(members), 2))
        if len(group_pairs) > MAX_PAIRS_PER_GROUP:
            chosen = rng.choice(len(group_pairs), MAX_PAIRS_PER_GROUP, replace=False)
            group_pairs = [group_pairs[i] for i in chosen]
        owned[_owner(key)].update(group_pairs)
    return {owner: _as_rows(pairs) for owner, pairs in owned.items()}


def _as_rows(pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def _distinct(pair_arrays: Iterable[np.ndarray]) -> np.ndarray:
    arrays = list(pair_arrays)
    if not arrays:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(arrays), axis=0).reshape(-1, 2)
