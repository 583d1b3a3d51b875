"""The assistant evaluation end to end on the small real catalog, with the real default LM
(CI-sized: a few training steps)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tastegraph.assistant.shopping import ExampleConfig, ShoppingConfig, ShoppingExample
from tastegraph.assistant.train import AlignConfig
from tastegraph.config import Settings
from tastegraph.embeddings.job import prepare_features
from tastegraph.embeddings.train import TrainConfig
from tastegraph.encoders import load_text_tower
from tastegraph.encoders.text import item_text
from tastegraph.evaluate import report as reports
from tastegraph.evaluate.assistant import (
    COSINE,
    GENERIC_VISION,
    KEYWORDS,
    KEYWORDS_THEN_COSINE,
    RANDOM,
    TEXT_ONLY,
    AssistantEvalConfig,
    evaluate_assistant,
    keyword_scores,
)
from tastegraph.evaluate.recommend import OURS
from tastegraph.graph.job import ItemDetails, item_details
from tastegraph.store import SQLiteStore


@pytest.mark.slow  # trains stage 2 for every LM method: minutes on 2 cores
def test_every_method_is_measured_on_held_out_shoppers(
    small_catalog: Settings, default_lm_dir: Path, tmp_path: Path
) -> None:
    with SQLiteStore(small_catalog.workdir / "store.db") as store:
        table = prepare_features(store, small_catalog).table
        events = list(store.iter_events())
        details = item_details(store, small_catalog.variant_attribute)
        texts = {item.id: item_text(item) for item in store.iter_items()}
    cutoff = float(np.quantile([e.ts for e in events], 0.7))
    config = AssistantEvalConfig(
        cutoff=cutoff,
        split="small",
        test_examples=8,
        resamples=200,
        tokens=2,
        align_items=12,
        align=AlignConfig(batch_size=4, max_text_tokens=8),
        examples=ExampleConfig(candidates=4, negatives_from=10, colour_key="colour_group"),
        shopping=ShoppingConfig(batch_size=4, holdout=2),
        fusion=TrainConfig(content_epochs=2, taste_epochs=1, batch_size=16),
    )
    tower = load_text_tower(small_catalog.text_model)
    report = evaluate_assistant(
        table, events, details, texts, default_lm_dir, tower, config, show_progress=False
    )

    assert list(report.choice.metrics) == [
        *(OURS, TEXT_ONLY, GENERIC_VISION, COSINE, RANDOM, KEYWORDS, KEYWORDS_THEN_COSINE)
    ]
    test_users = {e.user_id for e in events if e.ts >= cutoff}
    assert report.choice.units <= len(test_users)
    assert report.choice.queries == 8
    assert int(report.split["test_examples"]) == report.choice.queries > 0
    for by_metric in report.choice.metrics.values():
        hit, mrr = by_metric["hit@1"], by_metric["MRR"]
        assert 0.0 <= hit.mean <= mrr.mean <= 1.0  # MRR counts every hit@1 in full
        assert mrr.mean >= 1 / 4 - 1e-9  # the bought item is at worst 4th of 4
        assert hit.low <= hit.mean <= hit.high and not math.isnan(mrr.low)
    for name in (OURS, TEXT_ONLY, GENERIC_VISION):
        figures = report.training[name]
        assert figures["steps"] >= 1 and figures["seconds"] > 0
        assert not math.isnan(figures["held-out loss after"])
    assert report.training[OURS]["stage-1 seconds"] > 0  # projectors are aligned first
    assert report.training[TEXT_ONLY]["stage-1 seconds"] == 0

    path = reports.write_assistant(report, tmp_path)
    text = path.read_text()
    assert "hit@1" in text and TEXT_ONLY in text and "held-out loss" in text
    assert (tmp_path / "assistant-small.json").is_file()


def test_keyword_match_counts_the_colour_and_type_a_request_names() -> None:
    def item(colour: str, kind: str) -> ItemDetails:
        return ItemDetails("a title", None, {"colour_group": colour, "product_type": kind})

    details = {
        "black dress": item("Black", "Dress"),
        "black top": item("Black", "Top"),
        "white top": item("White", "Top"),
        "no attributes": ItemDetails(None, None, {}),
    }
    example = ShoppingExample(
        "u", 0.0, (), "Do you have a black dress?", tuple(details), answer=0, reason=""
    )
    scores = keyword_scores(details, ExampleConfig(), [example])
    np.testing.assert_array_equal(scores, [[2, 1, 0, 0]])
