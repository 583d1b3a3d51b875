"""The assistant evaluation end to end on the small real catalog, with the real default LM
(CI-sized: a few training steps)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tastegraph.assistant.facts import Catalog
from tastegraph.assistant.shopping import ExampleConfig, ShoppingConfig, ShoppingExample
from tastegraph.assistant.train import AlignConfig
from tastegraph.config import Settings
from tastegraph.display import PriceDisplay
from tastegraph.embeddings.job import prepare_features
from tastegraph.embeddings.table import FeatureTable
from tastegraph.embeddings.train import TrainConfig
from tastegraph.encoders import load_text_tower
from tastegraph.encoders.text import item_text
from tastegraph.evaluate import report as reports
from tastegraph.evaluate.assistant import (
    METHODS,
    OURS,
    TRAINED,
    AssistantEvalConfig,
    evaluate_assistant,
    keyword_scores,
    readable_by_photo,
)
from tastegraph.graph.taste import ItemDetails
from tastegraph.store import SQLiteStore


def test_the_methods_to_run_are_a_choice_and_ours_always_runs() -> None:
    assert AssistantEvalConfig(cutoff=0.0, methods=("text", "cosine")).methods == (
        OURS,
        "text",
        "cosine",
    )
    with pytest.raises(ValueError, match=r"unknown methods.*'vision'"):
        AssistantEvalConfig(cutoff=0.0, methods=("vision",))


@pytest.mark.slow  # trains stage 2 for every LM method: minutes on 2 cores
def test_every_method_is_measured_on_held_out_shoppers(
    small_catalog: Settings, default_lm_dir: Path, tmp_path: Path
) -> None:
    with SQLiteStore(small_catalog.workdir / "store.db") as store:
        table = prepare_features(store, small_catalog).table
        events = list(store.iter_events())
        shop = Catalog.open(store, small_catalog)
        texts = {item.id: item_text(item) for item in store.iter_items()}
    cutoff = float(np.quantile([e.ts for e in events], 0.7))
    config = AssistantEvalConfig(
        cutoff=cutoff,
        split="small",
        train_examples=24,
        queries_per_family=6,
        resamples=200,
        tokens=2,
        align_items=12,
        align=AlignConfig(batch_size=4, max_text_tokens=8),
        examples=ExampleConfig(candidates=4),
        shopping=ShoppingConfig(batch_size=4, holdout=2),
        fusion=TrainConfig(content_epochs=2, taste_epochs=1, batch_size=16),
    )
    tower = load_text_tower(small_catalog.text_model)
    report = evaluate_assistant(
        table, events, shop, texts, default_lm_dir, tower, config, show_progress=False
    )

    everything = report.families["all"]["all"]
    assert list(everything.methods) == list(METHODS)
    assert set(everything.ratios) <= set(METHODS) - {OURS}
    test_users = {e.user_id for e in events if e.ts >= cutoff}
    assert int(report.split["held_out_shoppers"]) <= len(test_users)
    assert everything.queries == int(report.split["test_queries"]) > 0
    hidden = [name for name in report.families if name.endswith(", text hidden")]
    asked = [name for name in report.families if name not in hidden]
    assert sum(report.families[name]["all"].queries for name in asked if name != "all") == (
        everything.queries
    )
    # The small catalog's items all have photos: every query is asked again, text hidden,
    # by every method that can read items without text (keyword has no words to match).
    text_hidden = report.families["all, text hidden"]["all"]
    assert text_hidden.queries == everything.queries
    assert set(text_hidden.methods) == set(METHODS) - {"keyword", "off_the_shelf"}
    assert sorted(hidden) == sorted(f"{name}, text hidden" for name in asked)
    for slices in report.families.values():
        for part in slices.values():
            for estimates in part.methods.values():
                hit, mrr = estimates["hit1"], estimates["mrr"]
                assert 0.0 <= hit.mean <= mrr.mean <= 1.0  # MRR counts every hit@1 in full
                assert mrr.mean >= 1 / 4 - 1e-9  # the bought item is at worst 4th of 4
                assert hit.low <= hit.mean <= hit.high
    parts = report.families["all"]
    assert parts["text"].queries + parts["photo_only"].queries == everything.queries
    assert len(report.by_position[OURS]) == 4
    for name in TRAINED:
        figures = report.training[name]
        assert figures["steps"] >= 1 and figures["seconds"] > 0
        assert not math.isnan(figures["held-out loss after"])
    assert report.training[OURS]["stage-1 seconds"] > 0  # projectors are aligned first
    assert report.training["text"]["stage-1 seconds"] == 0

    path = reports.write_assistant(report, tmp_path)
    assert "hit@1" in path.read_text() and "tokens_only" in path.read_text()
    written = json.loads((tmp_path / "assistant-small.json").read_text())
    assert written["candidates"] == 4
    cell = written["families"]["all"]["slices"]["all"]
    assert cell["queries"] == everything.queries
    assert set(cell["methods"]) == set(METHODS)
    assert len(cell["methods"][OURS]["hit1"]) == 3 and len(cell["methods"][OURS]["mrr"]) == 3


def test_only_queries_whose_items_all_have_photos_are_asked_with_the_text_hidden() -> None:
    ids = ["a", "b", "c", "d"]
    table = FeatureTable(
        ids,
        np.ones((4, 2), np.float32),
        np.ones((4, 3), np.float32),
        np.array([True, True, True, False]),
        np.ones(4, bool),
        [None] * 4,
    )

    def query(recent: tuple[str, ...], candidates: tuple[str, ...]) -> ShoppingExample:
        return ShoppingExample("u", 0.0, "for_me", recent, "for me?", candidates, 0, "")

    readable = query(("a",), ("b", "c"))
    unreadable_candidate = query(("a",), ("b", "d"))
    unreadable_history = query(("d",), ("b", "c"))
    assert readable_by_photo([readable, unreadable_candidate, unreadable_history], table) == [
        readable
    ]


def test_keyword_match_counts_the_colour_and_type_a_request_names() -> None:
    def item(colour: str, kind: str) -> ItemDetails:
        return ItemDetails("a title", None, {"colour_group": colour, "product_type": kind})

    details = {
        "black dress": item("Black", "Dress"),
        "black top": item("Black", "Top"),
        "white top": item("White", "Top"),
        "no attributes": ItemDetails(None, None, {}),
    }
    shop = Catalog(details, PriceDisplay())
    asked = ShoppingExample(
        "u", 0.0, "attribute", (), "Do you have a black dress?", tuple(details), 0, ""
    )
    like = ShoppingExample(
        "u",
        0.0,
        "like_this_but",
        (),
        "Like {item}, but in white?",
        tuple(details),
        2,
        "",
        reference="black top",
    )
    scores = keyword_scores(shop, [asked, like])
    # the reference's text line counts as words of the request
    np.testing.assert_array_equal(scores, [[2, 1, 0, 0], [1, 2, 2, 0]])
