import math

import numpy as np
import pytest

from tastegraph.graph.freshness import AGE_EDGES_DAYS, DAY_S, Freshness
from tastegraph.store import Event

NOW = 1_700_000_000.0


def bought(item: str, days_ago: float, action: str = "purchase") -> Event:
    return Event(f"{item}-{days_ago}-{action}", "u", item, action, 1.0, NOW - days_ago * DAY_S)


def shop() -> tuple[list[str], list[Event]]:
    """Items that sold a year ago never sell again; items that sold lately keep selling;
    half the never-sold items are new arrivals that start selling in the last weeks."""
    stale = [f"stale{i}" for i in range(40)]
    steady = [f"steady{i}" for i in range(40)]
    new = [f"new{i}" for i in range(40)]
    events = [bought(i, 400) for i in stale]
    events += [bought(i, 70) for i in steady] + [bought(i, 10) for i in steady]
    events += [bought(i, 5) for i in new[:20]]
    return stale + steady + new, events


def test_items_that_stopped_selling_score_below_items_that_sell() -> None:
    items, events = shop()
    freshness = Freshness.fit(events, items, NOW)
    scores = dict(zip(items, freshness.scores(items).tolist(), strict=True))
    assert scores["steady0"] > 0 > scores["stale0"]
    # New arrivals: never engaged before the window, and half of them sold in it.
    assert scores["stale0"] < scores["new39"] < scores["steady0"]


def test_events_after_now_do_not_count() -> None:
    items, events = shop()
    future = [bought(i, -3) for i in items[:40]]  # the stale items sell again, after now
    assert Freshness.fit(events + future, items, NOW) == Freshness.fit(events, items, NOW)


def test_hides_are_not_engagement() -> None:
    items, events = shop()
    hidden = [bought(i, 1, action="hide") for i in items[:40]]
    fitted = Freshness.fit(events + hidden, items, NOW)
    assert fitted.scores(["stale0"])[0] < 0
    assert fitted.last_engaged["stale0"] == NOW - 400 * DAY_S


def test_a_log_without_recent_engagement_gives_no_preference() -> None:
    items, events = shop()
    old = [e for e in events if e.ts < NOW - 100 * DAY_S]
    scores = Freshness.fit(old, items, NOW).scores(items)
    np.testing.assert_array_equal(scores, np.zeros(len(items), np.float32))


def test_small_groups_stay_near_neutral() -> None:
    """One item that sold in the window is no proof that its whole age group sells."""
    items = [f"i{i}" for i in range(200)]
    events = [bought(i, 30) for i in items[:100]] + [bought(i, 3) for i in items[:100]]
    events.append(bought("i150", 300))
    events.append(bought("i150", 2))
    fitted = Freshness.fit(events, items, NOW)
    group_of_one = fitted.log_lift[int(np.searchsorted(AGE_EDGES_DAYS, 300 - 56))]
    assert 0 < group_of_one < math.log(2)


def test_saved_and_loaded_alike(tmp_path) -> None:  # type: ignore[no-untyped-def]
    items, events = shop()
    fitted = Freshness.fit(events, items, NOW)
    fitted.save(tmp_path)
    assert Freshness.load(tmp_path) == fitted
    (tmp_path / "freshness.json").unlink()
    with pytest.raises(FileNotFoundError, match="tastegraph graph"):
        Freshness.load(tmp_path)


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_days"):
        Freshness.fit([], ["a"], NOW, window_days=0)
