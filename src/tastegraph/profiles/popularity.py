"""Time-decayed popularity: where a new user's recommendations start."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from tastegraph.profiles.config import DAY_S
from tastegraph.store import Event


def popular_items(
    events: Iterable[Event],
    now: float,
    half_life_days: float,
    n: int,
    *,
    action_weights: Mapping[str, float] | None = None,
) -> list[tuple[str, float]]:
    """The n items with the highest sum of positive weights decayed to now, best first.

    A weight counts half after half_life_days. Weights are each event's own, or
    action_weights[action] when given; hides and events after now count nothing.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    half_life_s = half_life_days * DAY_S
    scores: dict[str, float] = defaultdict(float)
    for event in events:
        weight = event.weight if action_weights is None else action_weights[event.action]
        if event.action == "hide" or weight <= 0 or event.ts > now:
            continue
        scores[event.item_id] += weight * 0.5 ** ((now - event.ts) / half_life_s)
    ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:n]
