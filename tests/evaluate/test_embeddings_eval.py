"""The evaluation protocol end to end on the small real catalog."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tastegraph.config import Settings
from tastegraph.embeddings.job import prepare_features
from tastegraph.embeddings.train import TrainConfig
from tastegraph.evaluate.embeddings import EvalConfig, evaluate_embeddings
from tastegraph.evaluate.split import WEEK
from tastegraph.store import SQLiteStore

QUICK = TrainConfig(content_epochs=2, taste_epochs=1, batch_size=16)


def test_report_has_every_method_with_intervals(small_catalog: Settings) -> None:
    with SQLiteStore(small_catalog.workdir / "store.db") as store:
        table = prepare_features(store, small_catalog).table
        events = list(store.iter_events())
    times = np.array([e.ts for e in events])
    test_weeks = (times.max() - np.median(times)) / WEEK + 1e-6  # about half the baskets
    config = EvalConfig(holdout_items=6, test_weeks=test_weeks)
    report = evaluate_embeddings(table, events, QUICK, config, show_progress=False)
    assert report.split["name"] == "test" and int(report.split["test_baskets"]) > 0
    assert set(report.basket_recall_at_20) == {
        "fused, taste-trained",
        "fused, content stage only",
        "raw image features",
        "raw text features",
        "same product, then raw image cosine",
        "most popular before cut-off",
    }
    assert "raw towers + least-squares map" in report.text_to_image_recall_at_10
    assert set(report.basket_recall_gain_over) == set(report.basket_recall_at_20) - {
        "fused, taste-trained"
    }
    for gain in report.basket_recall_gain_over.values():
        assert -1.0 <= gain.low <= gain.mean <= gain.high <= 1.0
    for estimate in [
        *report.basket_recall_at_20.values(),
        *report.text_to_image_recall_at_10.values(),
    ]:
        assert estimate.n > 0 and not math.isnan(estimate.mean)
        assert 0.0 <= estimate.low <= estimate.mean <= estimate.high <= 1.0


def test_live_events_after_the_log_need_an_explicit_cutoff(small_catalog: Settings) -> None:
    """A demo's few saves months after the historical log would leave no test basket: a
    clear error names the way out, and the cut-off set by hand measures the log again."""
    with SQLiteStore(small_catalog.workdir / "store.db") as store:
        table = prepare_features(store, small_catalog).table
        events = list(store.iter_events())
    times = np.array([e.ts for e in events])
    late = dataclasses.replace(
        events[0], event_id="live-save", action="save", ts=times.max() + 365 * 86_400
    )
    late = dataclasses.replace(late, collection_id=None)
    with pytest.raises(ValueError, match="--cutoff"):
        evaluate_embeddings(
            table, [*events, late], QUICK, EvalConfig(holdout_items=6), show_progress=False
        )
    config = EvalConfig(holdout_items=6, cutoff=float(np.median(times)))
    report = evaluate_embeddings(table, [*events, late], QUICK, config, show_progress=False)
    assert int(report.split["test_baskets"]) > 0
