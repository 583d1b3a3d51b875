"""The recommendation evaluation end to end on the small real catalog (CI-sized)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tastegraph.config import Settings
from tastegraph.embeddings.job import prepare_features
from tastegraph.embeddings.train import TrainConfig
from tastegraph.evaluate import report as reports
from tastegraph.evaluate.feed_weights import POPULAR_WEIGHTS
from tastegraph.evaluate.recommend import OURS, RecommendEvalConfig, evaluate_recommendations
from tastegraph.graph.taste import item_details
from tastegraph.store import SQLiteStore

QUICK = TrainConfig(content_epochs=2, taste_epochs=1, batch_size=16)


def test_report_covers_every_method_with_intervals(small_catalog: Settings, tmp_path: Path) -> None:
    with SQLiteStore(small_catalog.workdir / "store.db") as store:
        table = prepare_features(store, small_catalog).table
        events = list(store.iter_events())
        details = item_details(store, small_catalog.variant_attribute)
    cutoff = float(np.median([e.ts for e in events])) + 1  # about half the baskets after
    config = RecommendEvalConfig(
        cutoff=cutoff, split="small", train=QUICK, resamples=200, exclude_engaged=False
    )
    report = evaluate_recommendations(table, events, details, config, show_progress=False)

    feed, baskets = report.next_purchase, report.basket_completion
    assert set(feed.metrics) == {
        OURS,
        "time-decayed popularity",
        "repurchase + popularity",
        "co-visitation",
        "item-kNN (cosine)",
        "implicit ALS",
        "content kNN, raw image features",
        "EASE",
    }
    assert report.split["engaged items left out"] == "false"  # as asked
    assert set(report.tuned) == {
        "time-decayed popularity",
        "item-kNN (cosine)",
        "implicit ALS",
        "EASE",
    }
    assert all(len(t["tuning_ndcg"]) > 1 for t in report.tuned.values())
    assert report.feed_fit is not None  # our feed, fitted as `tastegraph train feed` fits it
    assert report.feed_fit.popular_weight in POPULAR_WEIGHTS
    assert "Our feed, fitted on the training events' last tenth" in reports.markdown(report)
    assert {"raw image cosine", "same product, then raw image cosine", "co-visitation"} < set(
        baskets.metrics
    )
    assert feed.units > 0 and baskets.units > 0 and baskets.queries >= 2 * baskets.units
    for task in (feed, baskets):
        for by_metric in task.metrics.values():
            for estimate in by_metric.values():
                assert not math.isnan(estimate.mean)
                assert estimate.low <= estimate.mean <= estimate.high
        for ratio in task.ratio_to.values():
            assert ratio.low <= ratio.mean <= ratio.high
    assert report.split["name"] == "small" and int(report.split["test_events"]) > 0

    path = reports.write(report, tmp_path)
    text = path.read_text()
    assert "MAP@12" in text and "recall@20" in text and "bootstrap" in text
    assert "Baselines tuned on the tuning split" in text
    assert (tmp_path / "recommend-small.png").stat().st_size > 0
    assert (tmp_path / "recommend-small.json").is_file()
