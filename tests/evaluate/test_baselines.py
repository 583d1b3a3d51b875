from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tastegraph.evaluate.baselines import (
    ALS,
    EASE,
    ContentKNN,
    CoVisitation,
    ItemKNN,
    Popularity,
    RepurchasePopularity,
    TrainingLog,
    cosine_scorer,
    fill,
)
from tastegraph.store import Event, SQLiteStore

DAY = 24 * 3600.0
NOW = 100 * DAY
INDEX = {f"i{row}": row for row in range(10)}
_ids = itertools.count()


def ev(
    user: str, row: int, day: float, basket: str | None = None, action: str = "purchase"
) -> Event:
    return Event(f"e{next(_ids)}", user, f"i{row}", action, 1.0, day * DAY, basket)


def log_of(events: list[Event]) -> TrainingLog:
    return TrainingLog.build(events, INDEX, NOW)


def test_training_log_keeps_positive_indexed_events_in_time_order() -> None:
    events = [ev("u", 2, 5), ev("u", 1, 3), ev("u", 3, 4, action="hide"), ev("v", 4, 1, "b")]
    events.append(Event("x", "u", "not-indexed", "purchase", 1.0, 2 * DAY))
    log = log_of(events)
    assert log.history["u"] == [(1, 3 * DAY), (2, 5 * DAY)]
    assert log.baskets == {"b": {4}}
    assert log.n_items == 10


def test_training_log_refuses_an_event_at_or_after_the_cutoff() -> None:
    with pytest.raises(ValueError, match="cut-off"):
        log_of([ev("u", 1, 3), ev("u", 2, NOW / DAY)])


def test_fill_keeps_order_drops_repeats_and_padding_and_stops_at_n() -> None:
    fallback = np.array([5, 1, 6, 7])
    assert fill([1, 1, -1, 2], fallback, 4).tolist() == [1, 2, 5, 6]
    assert fill([3, 4, 5], fallback, 2).tolist() == [3, 4]
    assert fill([], fallback, 10).tolist() == [5, 1, 6, 7]
    assert fill([], fallback, 2).dtype == np.int64


def test_popularity_decays_older_events() -> None:
    events = [ev(f"u{k}", 0, 40) for k in range(3)] + [ev("w", 1, 99)]
    assert Popularity(log_of(events), half_life_days=7).recommend("anyone", 2).tolist() == [1, 0]
    timeless = Popularity(log_of(events), half_life_days=1e6)
    assert timeless.recommend("anyone", 2).tolist() == [0, 1]
    assert timeless.score(np.array([3, 4])).shape == (2, 10)


def test_repurchase_gives_own_items_most_recent_first_then_popularity() -> None:
    events = [ev("u", 3, 10), ev("u", 1, 20), ev("u", 3, 30), ev("v", 7, 90), ev("w", 7, 91)]
    log = log_of(events)
    baseline = RepurchasePopularity(log, Popularity(log))
    assert baseline.recommend("u", 4).tolist() == [3, 1, 7, 0]
    assert baseline.recommend("u", 1).tolist() == [3]
    assert baseline.recommend("nobody", 3).tolist() == Popularity(log).recommend("", 3).tolist()


def test_covisitation_scores_co_bought_items_above_others() -> None:
    events = [ev("a", 0, 10, "b1"), ev("a", 1, 10, "b1"), ev("b", 0, 20, "b2")]
    events += [ev("b", 1, 20, "b2"), ev("c", 0, 30, "b3"), ev("c", 2, 30, "b3")]
    events += [ev("d", 5, 50), ev("d", 6, 50.5), ev("d", 7, 60)]  # session pairs: 5-6 only
    events += [ev("e", 9, 99), ev("f", 9, 99)]  # popular, never bought with anything
    log = log_of(events)
    covisit = CoVisitation(log)
    scores = covisit.score(np.array([0, 5]))
    assert scores.dtype == np.float32 and scores.shape == (2, 10)
    assert scores[0, 1] > scores[0, 2] > 0 and scores[0, 0] == 0
    assert scores[0, [3, 9]].tolist() == [0, 0]
    assert scores[1, 6] > 0 and scores[1, 7] == 0
    # c bought 0 and 2: 1 (twice with 0) first, then 0 and 2 (once each; 0 is the more
    # popular), then popularity fills with 9
    assert covisit.recommend("c", 4).tolist() == [1, 0, 2, 9]
    assert covisit.recommend("nobody", 2).tolist() == Popularity(log).recommend("", 2).tolist()


def test_covisitation_recommend_weights_recent_items_more() -> None:
    events = [ev("a", 0, 10, "x"), ev("a", 1, 10, "x"), ev("b", 2, 10, "y"), ev("b", 3, 10, "y")]
    events += [ev("u", 0, 20), ev("u", 2, 80)]  # u's recent item is 2, co-bought with 3
    covisit = CoVisitation(log_of(events), half_life_days=7)
    assert covisit.recommend("u", 4).tolist()[:2] == [3, 1]


def structured_log() -> TrainingLog:
    """Two taste groups: a few customers buy items 0-4, many more buy items 5-9."""
    events = [ev(f"a{k}", row, 50 + k) for k in range(6) for row in range(5)]
    events += [ev(f"b{k}", row, 60 + k) for k in range(20) for row in range(5, 10)]
    events += [ev("target", row, 90) for row in (0, 1, 2)]
    return log_of(events)


def test_als_recommends_items_of_co_purchasers_above_unrelated_popular_ones() -> None:
    log = structured_log()
    popular = Popularity(log, half_life_days=1e6).recommend("target", 5)
    assert set(popular.tolist()) == set(range(5, 10))  # popularity gets it wrong
    als = ALS(log, popularity=Popularity(log))
    top = als.recommend("target", 5)
    assert set(top.tolist()) == set(range(5))
    assert als.recommend("nobody", 3).tolist() == Popularity(log).recommend("", 3).tolist()


def test_ease_recommends_items_of_co_purchasers_above_unrelated_popular_ones() -> None:
    log = structured_log()
    ease = EASE(log, regularization=1.0)
    assert set(ease.recommend("target", 5).tolist()) == set(range(5))
    assert ease.recommend("nobody", 3).tolist() == Popularity(log).recommend("", 3).tolist()
    assert EASE.fits(log)


def test_item_knn_recommends_items_like_the_users_above_unrelated_popular_ones() -> None:
    log = structured_log()
    knn = ItemKNN(log, neighbours=4)
    assert set(knn.recommend("target", 5).tolist()) == set(range(5))
    assert knn.similarity.getnnz(axis=1).max() == 4  # each item keeps its 4 nearest
    assert ItemKNN(log, neighbours=2).similarity.getnnz(axis=1).max() == 2
    assert knn.recommend("nobody", 3).tolist() == Popularity(log).recommend("", 3).tolist()


def test_ease_refuses_a_catalog_too_large_to_invert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EASE, "MAX_ITEMS", 4)
    log = structured_log()
    assert not EASE.fits(log)
    with pytest.raises(ValueError, match="at most 4 items"):
        EASE(log)


def test_content_knn_ranks_items_like_the_users_recent_ones() -> None:
    vectors = np.zeros((10, 2), dtype=np.float32)
    vectors[0:3] = [[1, 0], [0.9, 0.1], [0.8, 0.2]]
    vectors[3:6] = [[0, 1], [0.1, 0.9], [0.2, 0.8]]  # rows 6-9: no vector
    events = [ev("u", 0, 10), ev("u", 3, 90), ev("v", 9, 95), ev("w", 9, 95)]
    knn = ContentKNN(log_of(events), vectors, half_life_days=7)
    assert knn.recommend("u", 3).tolist() == [3, 4, 5]
    assert knn.recommend("nobody", 1).tolist() == [9]
    only_blank = ContentKNN(log_of([ev("z", 8, 90), *events]), vectors)
    assert only_blank.recommend("z", 1).tolist() == [9]  # no vector at all: popularity
    with pytest.raises(ValueError, match="one vector per item"):
        ContentKNN(log_of(events), vectors[:5])


def test_cosine_scorer_gives_zero_to_items_without_a_vector() -> None:
    vectors = np.array([[2, 0], [1, 1], [0, 0]], dtype=np.float32)
    scores = cosine_scorer(vectors)(np.array([0, 2]))
    assert scores.shape == (2, 3)
    assert np.allclose(scores, [[1, 1 / np.sqrt(2), 0], [0, 0, 0]])


def test_every_baseline_returns_at_most_n_distinct_rows() -> None:
    log = structured_log()
    vectors = np.random.default_rng(0).normal(size=(10, 4))
    baselines = [
        Popularity(log),
        RepurchasePopularity(log),
        CoVisitation(log),
        ALS(log, factors=4),
        ItemKNN(log),
        ContentKNN(log, vectors),
    ]
    for baseline in baselines:
        for user, n in [("target", 3), ("target", 25), ("nobody", 4)]:
            rows = baseline.recommend(user, n)
            assert rows.dtype == np.int64, baseline
            assert len(rows) == min(n, 10) == len(set(rows.tolist())), baseline
            assert ((rows >= 0) & (rows < 10)).all(), baseline


def test_baselines_fit_on_the_hm_sample_in_seconds(hm_workdir: Path) -> None:
    cutoff = datetime(2020, 7, 28, tzinfo=UTC).timestamp()
    with SQLiteStore(hm_workdir / "store.db") as store:
        index = {item.id: row for row, item in enumerate(store.iter_items())}
        events = list(store.iter_events())
    train = [e for e in events if e.ts < cutoff]
    test_users = sorted({e.user_id for e in events if e.ts >= cutoff})[:50]
    vectors = np.random.default_rng(0).normal(size=(len(index), 16)).astype(np.float32)
    start = time.perf_counter()
    log = TrainingLog.build(train, index, cutoff)
    popularity = Popularity(log)
    baselines = {
        "popularity": popularity,
        "repurchase": RepurchasePopularity(log, popularity),
        "co-visitation": CoVisitation(log, popularity=popularity),
        "als": ALS(log, popularity=popularity),
        "content": ContentKNN(log, vectors, popularity=popularity),
    }
    fitted = time.perf_counter() - start
    assert fitted < 30, f"fitting took {fitted:.1f}s"
    assert len(test_users) == 50
    for name, baseline in baselines.items():
        for user in test_users:
            rows = baseline.recommend(user, 12)
            assert len(rows) == 12 == len(set(rows.tolist())), name
            assert ((rows >= 0) & (rows < len(index))).all(), name
    basket = CoVisitation(log, popularity=popularity).score(np.arange(5))
    assert basket.shape == (5, len(index))
