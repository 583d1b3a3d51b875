"""Positive pairs for the taste stage: items engaged together before a cut-off."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from tastegraph.store import Event

# A group larger than this contributes a random sample of its pairs, so one huge board
# does not drown out thousands of small baskets.
MAX_PAIRS_PER_GROUP = 200


def variant_pairs(
    variant_of: Sequence[str | None], trainable: np.ndarray, seed: int = 0
) -> np.ndarray:
    """(P, 2) row pairs of items that are variants of one product (e.g. two colours).

    Catalog structure, not engagement: it holds at any time, so it needs no cut-off."""
    groups: dict[object, set[int]] = defaultdict(set)
    for row, product in enumerate(variant_of):
        if product is not None and trainable[row]:
            groups[("product", product)].add(row)
    return _pairs_of_groups(groups.values(), seed)


def co_engaged_pairs(
    events: Iterable[Event],
    index: dict[str, int],
    *,
    cutoff: float | None = None,
    session_window_s: float = 3600.0,
    seed: int = 0,
) -> np.ndarray:
    """(P, 2) row pairs of items in the same collection, or engaged by the same user within
    `session_window_s` of each other. Hides are not engagement; only events before `cutoff`."""
    groups: dict[object, set[int]] = defaultdict(set)
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
        groups[("session", event.user_id, session_of[event.user_id])].add(row)
    return _pairs_of_groups(groups.values(), seed)


def _pairs_of_groups(groups: Iterable[set[int]], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pairs: set[tuple[int, int]] = set()
    for members in groups:
        group_pairs = list(itertools.combinations(sorted(members), 2))
        if len(group_pairs) > MAX_PAIRS_PER_GROUP:
            chosen = rng.choice(len(group_pairs), MAX_PAIRS_PER_GROUP, replace=False)
            group_pairs = [group_pairs[i] for i in chosen]
        pairs.update(group_pairs)
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
