"""The temporal split every evaluation uses: events before the cut-off train, those after
it test. By default the test split is the log's last weeks, whatever the catalog; on the
H&M sample the last 8 weeks start 2020-07-28, and validation is the 8 weeks before
(2020-06-02 to 2020-07-28): tune there, never on test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from tastegraph.store import Event

WEEK = 7 * 24 * 3600.0
TEST_WEEKS = 8.0


def test_cutoff(events: Sequence[Event], test_weeks: float = TEST_WEEKS) -> float:
    """Where the log's last `test_weeks` weeks start (unix seconds)."""
    if not events:
        raise ValueError("no events to split")
    return max(e.ts for e in events) - test_weeks * WEEK


@dataclass
class SplitConfig:
    """A temporal split and its bootstrap: events before the cut-off train, after it (up to
    `end`) test."""

    cutoff: float  # unix seconds
    end: float | None = None  # test events end here (the validation split ends at the test cut-off)
    split: str = "test"
    resamples: int = 1000
    seed: int = 0

    @classmethod
    def from_log(
        cls,
        events: Sequence[Event],
        *,
        test_weeks: float = TEST_WEEKS,
        cutoff: float | None = None,
        validation: bool = False,
        **overrides: object,
    ) -> Self:
        """The test split from `cutoff`, else over the log's last `test_weeks` weeks; with
        `validation`, the `test_weeks` weeks before it, ending where the test split starts."""
        start = test_cutoff(events, test_weeks) if cutoff is None else cutoff
        if not validation:
            return cls(cutoff=start, **overrides)  # type: ignore[arg-type]
        earlier = {"cutoff": start - test_weeks * WEEK, "end": start, "split": "validation"}
        return cls(**(earlier | overrides))  # type: ignore[arg-type]

    def partition(self, events: Sequence[Event]) -> tuple[list[Event], list[Event]]:
        """(training events, test events)."""
        train = [e for e in events if e.ts < self.cutoff]
        test = [e for e in events if e.ts >= self.cutoff and (self.end is None or e.ts < self.end)]
        return train, test
