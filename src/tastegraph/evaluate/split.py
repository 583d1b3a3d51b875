"""The temporal split every evaluation uses: events before the cut-off train, those after
it test. The test split is the log's last weeks (8 by default), or its last share of events
(`test_fraction`, a global temporal split), whatever the catalog; on the H&M sample the last
8 weeks start 2020-07-28, and validation is the 8 weeks before (2020-06-02 to 2020-07-28):
tune there, never on test. The same rule, applied to the training events alone, places a
tuning split inside the training period (`SplitConfig.tuning`), where baselines choose their
hyperparameters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Self

import numpy as np

from tastegraph.store import Event

WEEK = 7 * 24 * 3600.0
TEST_WEEKS = 8.0


def test_cutoff(events: Sequence[Event], test_weeks: float = TEST_WEEKS) -> float:
    """Where the log's last `test_weeks` weeks start (unix seconds)."""
    if not events:
        raise ValueError("no events to split")
    return max(e.ts for e in events) - test_weeks * WEEK


def share_cutoff(events: Sequence[Event], fraction: float) -> float:
    """The time from which the last `fraction` of the events (by time) fall (unix seconds);
    events at that very time all test, so the share can come out a little larger."""
    if not events:
        raise ValueError("no events to split")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the test fraction must lie between 0 and 1, not {fraction}")
    times = np.sort(np.fromiter((e.ts for e in events), dtype=np.float64, count=len(events)))
    return float(times[min(int(len(times) * (1.0 - fraction)), len(times) - 1)])


@dataclass
class SplitConfig:
    """A temporal split and its bootstrap: events before the cut-off train, after it (up to
    `end`) test."""

    cutoff: float  # unix seconds
    end: float | None = None  # test events end here (the validation split ends at the test cut-off)
    split: str = "test"
    resamples: int = 1000
    seed: int = 0
    # The rule that placed the cut-off: the last weeks, or the last share of events.
    test_weeks: float = TEST_WEEKS
    test_fraction: float | None = None

    @classmethod
    def from_log(
        cls,
        events: Sequence[Event],
        *,
        test_weeks: float = TEST_WEEKS,
        test_fraction: float | None = None,
        cutoff: float | None = None,
        validation: bool = False,
        **overrides: object,
    ) -> Self:
        """The test split from `cutoff`, else over the log's last `test_fraction` of events
        where given, else its last `test_weeks` weeks; with `validation`, the same stretch
        before it (the weeks, or the share of the events before the test cut-off), ending
        where the test split starts."""
        rule = {"test_weeks": test_weeks, "test_fraction": test_fraction}
        if cutoff is not None:
            start = cutoff
        elif test_fraction is not None:
            start = share_cutoff(events, test_fraction)
        else:
            start = test_cutoff(events, test_weeks)
        test = cls(cutoff=start, **(rule | overrides))  # type: ignore[arg-type]
        if not validation:
            return test
        earlier = {"cutoff": test.earlier_cutoff(events), "end": start, "split": "validation"}
        return cls(**(rule | earlier | overrides))  # type: ignore[arg-type]

    def earlier_cutoff(self, events: Sequence[Event]) -> float:
        """The cut-off of a split of the same size that ends at this one's cut-off."""
        if self.test_fraction is None:
            return self.cutoff - self.test_weeks * WEEK
        return share_cutoff([e for e in events if e.ts < self.cutoff], self.test_fraction)

    def tuning(self, train: Sequence[Event]) -> Self:
        """The split inside the training period where hyperparameters are chosen: the same
        rule applied to the training events, ending at this split's cut-off."""
        return replace(self, cutoff=self.earlier_cutoff(train), end=self.cutoff, split="tuning")

    def partition(self, events: Sequence[Event]) -> tuple[list[Event], list[Event]]:
        """(training events, test events)."""
        train = [e for e in events if e.ts < self.cutoff]
        test = [e for e in events if e.ts >= self.cutoff and (self.end is None or e.ts < self.end)]
        return train, test
