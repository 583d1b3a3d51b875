"""Next engagements: what a home feed should have foreseen after the cut-off, and its scores.

A positive is a test event on an indexed item that is not a hide and weighs at least the
threshold (`POSITIVE_WEIGHT`: saves and purchases under the default action weights, a
rating of 3.5 of 5 and up through the generic ingest). Users with no positive are not
scored.

What each user engaged with before the cut-off is left out, of the positives and of every
method's feed, where the catalog's people seldom engage with an item twice: under 5% of
the strong training engagements repeat an item the same user had (`graph/behaviour.py`; nobody
rates a film twice, and a feed of films already rated helps no one). Where repeats are
common, as on H&M (people buy again), those items stay in: buying again is a real next
purchase. It is the rule the served feed follows (`recommend/behaviour.py`). The evaluation
prints the measured share and the choice; an explicit choice wins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tastegraph.evaluate.baselines import TrainingLog, first_allowed
from tastegraph.evaluate.metrics import average_precision_at_k, ndcg_at_k, recall_at_k
from tastegraph.graph.behaviour import event_repeat_share, repeats_are_rare
from tastegraph.store import Event

POSITIVE_WEIGHT = 0.7

# A method's feed as item rows, best first: (user id, n) -> up to n rows.
FeedRows = Callable[[str, int], np.ndarray]


def excludes_engaged(train: Iterable[Event], choice: bool | None = None) -> bool:
    """Whether items engaged with before the cut-off leave the feeds: `choice` where given,
    else whether repeats are rare among the training events (as the served feed decides)."""
    return repeats_are_rare(event_repeat_share(train)) if choice is None else choice


def engaged_before(log: TrainingLog) -> dict[str, set[int]]:
    """Each user's item rows in the training log."""
    return {user: {row for row, _ in history} for user, history in log.history.items()}


@dataclass
class Targets:
    users: list[str]  # sorted
    relevant: list[set[int]]  # per user: rows of their positives after the cut-off


def next_engagements(
    test: Sequence[Event],
    index: Mapping[str, int],
    threshold: float = POSITIVE_WEIGHT,
    leave_out: Mapping[str, set[int]] | None = None,
) -> Targets:
    """The positives of each user in the test events, less the rows in `leave_out` (the
    items each user engaged with before, where they are excluded)."""
    found: dict[str, set[int]] = defaultdict(set)
    for event in test:
        row = index.get(event.item_id)
        if row is not None and event.action != "hide" and event.weight >= threshold:
            found[event.user_id].add(row)
    if leave_out:
        found = {user: rows - leave_out.get(user, set()) for user, rows in found.items()}
    users = sorted(user for user, rows in found.items() if rows)
    return Targets(users, [found[user] for user in users])


def ranked_rows(
    feed: FeedRows,
    users: Sequence[str],
    k: int,
    n_items: int,
    leave_out: Mapping[str, set[int]] | None = None,
) -> np.ndarray:
    """(U, k) rows of each user's feed, -1 where it runs short; rows in `leave_out` of that
    user are skipped (more are asked for), so every method is held to the same exclusion."""
    ranked = np.full((len(users), k), -1, dtype=np.int64)
    everything = np.ones(n_items, dtype=bool)
    for i, user in enumerate(users):
        excluded = list(leave_out.get(user, ())) if leave_out else []
        allowed = everything
        if excluded:
            allowed = everything.copy()
            allowed[excluded] = False
        rows = first_allowed(feed, user, k, allowed)
        ranked[i, : len(rows)] = rows
    return ranked


def ranking_metrics(ranked: np.ndarray, relevant: list[set[int]], k: int) -> dict[str, np.ndarray]:
    """Per user: MAP@k (the H&M Kaggle definition), recall@k and NDCG@k."""
    return {
        f"MAP@{k}": average_precision_at_k(ranked, relevant, k),
        f"recall@{k}": recall_at_k(ranked, relevant),
        f"NDCG@{k}": ndcg_at_k(ranked, relevant, k),
    }
