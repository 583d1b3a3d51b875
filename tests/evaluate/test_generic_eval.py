"""The evaluation on any catalog: positives by weight, engaged items left out where people
seldom repeat, baselines tuned inside the training period, and on synthetic catalogs with a
planted best method, that method found."""

from __future__ import annotations

import itertools

import numpy as np

from tastegraph.evaluate.baselines import TrainingLog
from tastegraph.evaluate.engagements import (
    engaged_before,
    excludes_engaged,
    next_engagements,
    ranked_rows,
)
from tastegraph.evaluate.recommend import RecommendEvalConfig, baseline_feeds, compare_feeds
from tastegraph.evaluate.tuning import ALS, EASE, GRIDS, ITEM_KNN, POPULARITY, tune_baselines
from tastegraph.store import Event

DAY = 24 * 3600.0
ITEMS, CLUSTERS, USERS = 200, 10, 300
INDEX = {f"i{row}": row for row in range(ITEMS)}
_ids = itertools.count()


def event(user: str, row: int, day: float, weight: float = 0.8, action: str = "save") -> Event:
    return Event(f"e{next(_ids)}", user, f"i{row}", action, weight, day * DAY)


def test_positives_are_heavy_enough_not_hidden_and_new_where_asked() -> None:
    test = [
        event("a", 1, 91),
        event("a", 2, 91, weight=0.1, action="view"),  # too light
        event("a", 3, 92, weight=-1.0, action="hide"),
        event("b", 4, 93),
        event("b", 5, 93),
        event("c", 999, 93),  # an item the index does not hold
    ]
    targets = next_engagements(test, INDEX, threshold=0.7)
    assert (targets.users, targets.relevant) == (["a", "b"], [{1}, {4, 5}])
    left = next_engagements(test, INDEX, threshold=0.7, leave_out={"a": {1}, "b": {4}})
    assert (left.users, left.relevant) == (["b"], [{5}])  # a has nothing new left


def test_engaged_items_leave_every_feed_where_repeats_are_rare() -> None:
    once = [event(f"u{u}", r, r) for u in range(30) for r in (1, 2)]
    assert excludes_engaged(once)  # 30 users, two items each, none twice
    assert not excludes_engaged(once, choice=False)  # an explicit choice wins
    again = [event(f"u{u}", 1, d) for u in range(30) for d in (1, 2)]
    assert not excludes_engaged(again)
    assert not excludes_engaged(once[:10])  # too few users to tell: kept, as tuned on H&M
    log = TrainingLog.build(once, INDEX, 10 * DAY)

    def feed(user: str, n: int) -> np.ndarray:
        return np.arange(n, dtype=np.int64)  # 0, 1, 2, ...

    ranked = ranked_rows(feed, ["u0", "z"], 3, ITEMS, engaged_before(log))
    assert ranked.tolist() == [[0, 3, 4], [0, 1, 2]]  # u0's items 1 and 2 skipped


def taste_world(seed: int = 0) -> list[Event]:
    """Each user engages with items of one cluster of 20; no item is popular overall, so
    what a user engaged with says what they engage with next."""
    rng = np.random.default_rng(seed)
    events = []
    for u in range(USERS):
        cluster = np.arange(u % CLUSTERS * 20, (u % CLUSTERS + 1) * 20)
        rows = rng.permutation(cluster)[:13]
        events += [
            event(f"u{u}", int(r), float(d))
            for r, d in zip(rows[:10], rng.uniform(0, 90, 10), strict=True)
        ]
        events += [event(f"u{u}", int(r), 95.0) for r in rows[10:]]
        events.append(event(f"u{u}", int(rng.integers(ITEMS)), 95.0, 0.1, "view"))  # noise
    return events


def trend_world(seed: int = 0) -> list[Event]:
    """Taste says nothing (users engage with random items), but ten items trend from day 70
    on; ten others trended harder at the start. Recent popularity is the best guess, and only
    a short half-life tells the current trend from the old one."""
    rng = np.random.default_rng(seed)
    old, new = np.arange(0, 10), np.arange(100, 110)
    events = []
    for u in range(USERS):
        user = f"u{u}"
        rows = rng.permutation(ITEMS)
        events += [
            event(user, int(r), float(d))
            for r, d in zip(rows[:5], rng.uniform(0, 90, 5), strict=True)
        ]
        events += [
            event(user, int(r), float(rng.uniform(0, 15)))
            for r in rng.choice(old, 3, replace=False)
        ]
        trending = rng.permutation(new)
        events += [event(user, int(r), float(rng.uniform(70, 90))) for r in trending[:1]]
        events += [event(user, int(r), 95.0) for r in trending[1:3]]
    return events


def evaluate(events: list[Event]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean NDCG@12 of each baseline on the days after day 90, tuned on days 80 to 90."""
    config = RecommendEvalConfig(cutoff=90 * DAY, test_weeks=10 / 7, resamples=200)
    train, test = config.partition(events)
    logbook = TrainingLog.build(train, INDEX, config.cutoff)
    exclude = excludes_engaged(train)
    tuning = config.tuning(train)
    tuned = tune_baselines(train, INDEX, tuning, config.feed_k, config.positive_weight, exclude)
    feeds = baseline_feeds(logbook, tuned, exclude)
    report = compare_feeds(feeds, logbook, test, INDEX, config, exclude, reference=POPULARITY)
    ndcg = {name: m["NDCG@12"].mean for name, m in report.metrics.items()}
    assert all(len(t.scores) == len(GRIDS[name]) for name, t in tuned.items())  # all tried
    return ndcg, {name: t.params for name, t in tuned.items()}


def test_on_a_taste_catalog_the_collaborative_baselines_win() -> None:
    ndcg, _ = evaluate(taste_world())
    best = max(ndcg, key=ndcg.__getitem__)
    assert best in {ITEM_KNN, EASE, ALS}, ndcg
    assert ndcg[best] > 3 * ndcg[POPULARITY], ndcg


def test_on_a_trending_catalog_tuned_popularity_wins() -> None:
    ndcg, params = evaluate(trend_world())
    assert max(ndcg, key=ndcg.__getitem__) == POPULARITY, ndcg
    assert params[POPULARITY]["half_life_days"] <= 7  # tuning saw the trend turn
    assert "repurchase + popularity" not in ndcg  # nobody engages twice: engaged left out
