"""Freshness: how likely an item is to be engaged with again, from when it last was.

A catalog keeps items long after they stop selling: on the H&M sample, 40% of the catalog
was last bought more than 6 months before the validation cut-off, and those items make up
6% of the basket items bought in the weeks after it. The prior puts items in groups by the
age of their last positive event (never engaged is a group of its own: new arrivals and
items that never sold) and learns each group's log-lift from the log itself: how much more
or less often than the average item its items were engaged in the last `window_days`, with
the groups drawn at the window's start. Only events up to `now` are read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastegraph.graph.graph import read_graph_json
from tastegraph.store import Event

DAY_S = 86_400.0
AGE_EDGES_DAYS = (7.0, 14.0, 28.0, 56.0, 112.0, 224.0, 448.0)
FILE = "freshness.json"
# Pseudo-items at the average rate added to every group, so a small group's lift stays
# near 0 (no evidence) instead of swinging on a handful of items.
SMOOTHING_ITEMS = 20.0


@dataclass
class Freshness:
    # Log-lift of each age group: ages up to AGE_EDGES_DAYS[0], ..., beyond the last edge,
    # then items never engaged.
    log_lift: list[float]
    last_engaged: dict[str, float]  # item id -> unix seconds of its latest positive event
    now: float

    @classmethod
    def fit(
        cls,
        events: Iterable[Event],
        item_ids: Sequence[str],
        now: float,
        window_days: float = 56.0,
    ) -> Freshness:
        """Learn the groups' lifts over the catalog `item_ids` from positive events up to
        `now`: groups at `now - window_days`, engagement in the window after it."""
        if window_days <= 0:
            raise ValueError(f"window_days must be positive, got {window_days}")
        start = now - window_days * DAY_S
        known = set(item_ids)
        positive = [e for e in events if e.action != "hide" and e.ts <= now and e.item_id in known]
        before = _latest([e for e in positive if e.ts < start])
        engaged = {e.item_id for e in positive if e.ts >= start}
        groups = _age_group([age_days(before.get(i), start) for i in item_ids])
        hit = np.array([i in engaged for i in item_ids], dtype=np.float64)
        n_groups = len(AGE_EDGES_DAYS) + 2
        size = np.bincount(groups, minlength=n_groups)
        hits = np.bincount(groups, weights=hit, minlength=n_groups)
        base = hit.mean() if len(hit) else 0.0
        if base == 0.0:  # nothing engaged in the window: no evidence either way
            return cls([0.0] * n_groups, _latest(positive), now)
        rate = (hits + SMOOTHING_ITEMS * base) / (size + SMOOTHING_ITEMS)
        return cls(np.log(rate / base).tolist(), _latest(positive), now)

    def scores(self, item_ids: Sequence[str]) -> np.ndarray:
        """(N,) log-lift of each item at `now`; 0 is an average item."""
        ages = [age_days(self.last_engaged.get(i), self.now) for i in item_ids]
        scores: np.ndarray = np.asarray(self.log_lift, dtype=np.float32)[_age_group(ages)]
        return scores

    def save(self, folder: Path) -> None:
        state = {"log_lift": self.log_lift, "last_engaged": self.last_engaged, "now": self.now}
        (folder / FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, folder: Path) -> Freshness:
        state = read_graph_json(folder, FILE)
        return cls([float(x) for x in state["log_lift"]], state["last_engaged"], state["now"])


def age_days(ts: float | None, now: float) -> float:
    """Age in days at `now` of an event at `ts`; infinite for no event."""
    return math.inf if ts is None else (now - ts) / DAY_S


def _age_group(ages_days: Sequence[float]) -> np.ndarray:
    ages = np.asarray(ages_days, dtype=np.float64)
    groups = np.searchsorted(AGE_EDGES_DAYS, ages)
    groups[np.isinf(ages)] = len(AGE_EDGES_DAYS) + 1
    return groups.astype(np.int64)


def _latest(events: Iterable[Event]) -> dict[str, float]:
    latest: dict[str, float] = {}
    for event in events:
        latest[event.item_id] = max(event.ts, latest.get(event.item_id, -math.inf))
    return latest
