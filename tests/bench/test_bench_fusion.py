"""The dense-log fusion bench: its synthetic log is dense as a ratings log is, and the
budget it reports against is the unbudgeted schedule's batch count."""

from __future__ import annotations

from collections import Counter

from tastegraph.bench.fusion import dense_log, run, unbudgeted_batches
from tastegraph.embeddings.pairs import co_engaged_pairs
from tastegraph.embeddings.train import TrainConfig


def test_the_synthetic_log_rates_in_sittings_and_yields_many_pairs() -> None:
    log = dense_log(items=300, ratings=5000)
    assert len(log.events) == 5000
    assert len({e.event_id for e in log.events}) == 5000
    per_user = Counter(e.user_id for e in log.events)
    assert max(per_user.values()) <= 95
    index = {item: row for row, item in enumerate(log.table.item_ids)}
    pairs = co_engaged_pairs(log.events, index)
    assert len(pairs) > 3 * len(log.events)  # sittings, not scattered ratings


def test_the_baseline_is_every_epoch_over_everything() -> None:
    config = TrainConfig(batch_size=100, content_epochs=3, taste_epochs=2)
    assert unbudgeted_batches(config, content_items=250, pairs=1001) == 3 * 3 + 2 * 11


def test_a_small_run_stays_within_the_budget() -> None:
    figures = run(items=40, ratings=600)
    config = TrainConfig()
    assert figures["batches"] <= config.max_content_steps + config.max_taste_steps
    assert figures["batches"] <= figures["unbudgeted_batches"]
    assert figures["ratings"] == 600
