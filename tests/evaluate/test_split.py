"""The temporal split is the log's last weeks on any catalog, and reproduces the H&M one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tastegraph.evaluate.recommend import RecommendEvalConfig
from tastegraph.evaluate.split import WEEK, SplitConfig
from tastegraph.store import Event


def day(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def events_until(last: str) -> list[Event]:
    return [Event(f"e{k}", "u", "i", "purchase", 1.0, day(last) - k * WEEK / 2) for k in range(60)]


def test_the_last_weeks_of_the_h_and_m_log_give_its_split() -> None:
    log = events_until("2020-09-22")  # the H&M sample's last day
    test = RecommendEvalConfig.from_log(log, resamples=200)
    assert (test.cutoff, test.end, test.split) == (day("2020-07-28"), None, "test")
    assert test.resamples == 200
    validation = SplitConfig.from_log(log, validation=True)
    assert (validation.cutoff, validation.end) == (day("2020-06-02"), day("2020-07-28"))
    assert validation.split == "validation"
    train, held_out = validation.partition(log)
    assert max(e.ts for e in train) < validation.cutoff <= min(e.ts for e in held_out)
    assert max(e.ts for e in held_out) < day("2020-07-28")


def test_a_cutoff_or_other_weeks_override_the_default() -> None:
    log = events_until("2021-03-01")
    assert SplitConfig.from_log(log, test_weeks=2).cutoff == day("2021-03-01") - 2 * WEEK
    chosen = SplitConfig.from_log(log, cutoff=day("2021-01-01"), validation=True, test_weeks=1)
    assert (chosen.cutoff, chosen.end) == (day("2021-01-01") - WEEK, day("2021-01-01"))
    with pytest.raises(ValueError, match="no events"):
        SplitConfig.from_log([])


def test_a_test_fraction_splits_the_log_by_its_share_of_events() -> None:
    log = events_until("2021-03-01")  # 60 events, half a week apart
    times = sorted(e.ts for e in log)
    test = SplitConfig.from_log(log, test_fraction=0.1)
    train, held_out = test.partition(log)
    assert (len(train), len(held_out)) == (54, 6) and test.cutoff == times[54]
    validation = SplitConfig.from_log(log, test_fraction=0.1, validation=True)
    assert (validation.cutoff, validation.end) == (times[48], times[54])  # 10% of the 54 before
    with pytest.raises(ValueError, match="between 0 and 1"):
        SplitConfig.from_log(log, test_fraction=1.5)


def test_the_tuning_split_lies_inside_the_training_period_by_the_same_rule() -> None:
    log = events_until("2021-03-01")
    weeks = SplitConfig.from_log(log, test_weeks=2)
    train, _ = weeks.partition(log)
    tuning = weeks.tuning(train)
    assert (tuning.cutoff, tuning.end, tuning.split) == (
        weeks.cutoff - 2 * WEEK,
        weeks.cutoff,
        "tuning",
    )
    share = SplitConfig.from_log(log, test_fraction=0.2)
    train, _ = share.partition(log)
    inner, tuned_on = share.tuning(train).partition(train)
    assert max(e.ts for e in tuned_on) < share.cutoff
    assert (len(inner), len(tuned_on)) == (38, 10)  # the last 20% of the 48 training events
