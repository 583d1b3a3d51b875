"""How a catalog's people behave, measured from its log: whether they engage with an item
again. On the H&M sample 13% of purchases repeat an article the shopper had bought; on a
film-ratings log nobody rates a film twice. The graph job stores the share in the graph's
manifest; `recommend/behaviour.py` turns it into feed settings, and the offline evaluation
applies the same rule to its training events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tastegraph.store import Event

KEEP_REPEATS_FROM = 0.05  # share of positive events that repeat an item of the same user


def repeat_share(engagements: Iterable[tuple[str, str | int]]) -> float:
    """The share of (user, item) engagements, in time order, whose item the same user had
    engaged with before; 0.0 for none."""
    seen: dict[str, set[str | int]] = defaultdict(set)
    repeats = total = 0
    for user, item in engagements:
        repeats += item in seen[user]
        seen[user].add(item)
        total += 1
    return repeats / total if total else 0.0


def event_repeat_share(events: Iterable[Event]) -> float:
    """`repeat_share` of the positive events (not "hide"), in time order."""
    positive = sorted((e for e in events if e.action != "hide"), key=lambda e: e.ts)
    return repeat_share((e.user_id, e.item_id) for e in positive)


def repeats_are_rare(share: float) -> bool:
    return share < KEEP_REPEATS_FROM
