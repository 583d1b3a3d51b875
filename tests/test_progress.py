"""A long step says how far it is: a log line with the time left when no one watches a bar."""

from __future__ import annotations

import logging

import pytest

from tastegraph import progress
from tastegraph.progress import Progress


def test_without_a_terminal_a_line_gives_the_count_and_the_time_left(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # a line on every update
    caplog.set_level(logging.INFO, logger="tastegraph.progress")
    with Progress(10, "training fusion", "batches", done=2) as bar:
        assert not bar.terminal  # pytest captures stderr
        bar.update(loss="0.500")
        bar.update(3)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("training fusion: 3/10 batches, ")
    assert lines[0].endswith(" s left (loss 0.500)")
    assert lines[1].startswith("training fusion: 6/10 batches, ") and "s each, about" in lines[1]


def test_a_silent_progress_logs_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    caplog.set_level(logging.INFO, logger="tastegraph.progress")
    with Progress(5, "describing items", "items", show=False) as bar:
        bar.update()
    assert caplog.records == []


def test_the_time_left_counts_only_the_units_still_to_do() -> None:
    bar = Progress(100, "x", done=50, show=False)
    bar.done = 60
    line = bar.line(bar.started + 20.0, {})  # 10 units in 20 s: 2 s each, 40 units left
    assert line == "x: 60/100 steps, 2.00 s each, about 80 s left"


def test_quick_units_are_timed_in_milliseconds() -> None:
    bar = Progress(1000, "related items", "items", show=False)
    bar.done = 500
    line = bar.line(bar.started + 1.5, {})  # 500 items in 1.5 s: 3 ms each
    assert line == "related items: 500/1000 items, 3.00 ms each, about 2 s left"
