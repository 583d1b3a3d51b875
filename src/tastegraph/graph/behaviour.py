"""How a catalog's people behave, measured from its log: whether they engage with an item
again. On the H&M sample 13% of purchases repeat an article the shopper had bought; on a
film-ratings log nobody rates a film twice. The graph job stores the share in the graph's
manifest; `recommend/behaviour.py` turns it into feed settings, and the offline evaluation
applies the same rule to its training events.

Only strong engagements count (weight at least `STRONG_WEIGHT`: saves, purchases, ratings
of 3.5 of 5 and up), so a view followed by a purchase of the same item is no repeat. A log
with too little evidence (under `MIN_USERS` users with two strong engagements) is "not
measured" (None), not "nobody repeats": a young shop keeps the tuned defaults.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tastegraph.store import Event

KEEP_REPEATS_FROM = 0.05  # share of strong engagements that repeat an item of the same user
STRONG_WEIGHT = 0.7
MIN_USERS = 20


def repeat_share(engagements: Iterable[tuple[str, str | int]]) -> float | None:
    """The share of (user, item) engagements whose item the same user engaged with more than
    once, counting each one after the first; None where fewer than MIN_USERS users have two
    engagements."""
    pairs = Counter(engagements)
    per_user = Counter(user for user, _ in pairs.elements())
    if sum(count >= 2 for count in per_user.values()) < MIN_USERS:
        return None
    total = sum(pairs.values())
    return (total - len(pairs)) / total


def event_repeat_share(events: Iterable[Event]) -> float | None:
    """`repeat_share` of the strong engagements among events (hides weigh below 0)."""
    return repeat_share((e.user_id, e.item_id) for e in events if e.weight >= STRONG_WEIGHT)


def repeats_are_rare(share: float | None) -> bool:
    """True where the log shows that people seldom engage with an item again; False where
    they do, or where the log cannot tell."""
    return share is not None and share < KEEP_REPEATS_FROM
