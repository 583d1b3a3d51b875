"""The description evaluation: its scoring rule on hand-written texts, its held-out split,
and one small real run."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastegraph.assistant.describe import look_phrase, stage1_look_head
from tastegraph.assistant.projector import load_projector
from tastegraph.cli import app
from tastegraph.config import Settings
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.encoders import item_text
from tastegraph.evaluate.describe import (
    CHANCE,
    LM_ALONE,
    MAJORITY,
    NEAREST_COLOUR,
    NEAREST_IMAGE,
    OURS,
    OWN_TEXT,
    PROBE_IMAGE,
    PROBE_PHOTO,
    DescribeEvalConfig,
    DescriptionScorer,
    HeldOutItem,
    chance_scores,
    colour_words,
    evaluate_store,
    kind_phrases,
    probe_looks,
    stage1_training_ids,
    table,
)
from tastegraph.store import SQLiteStore

COLOURS = [
    "Black", "White", "Off White", "Dark Blue", "Blue", "Light Blue", "Greenish Khaki",
    "Bronze/Copper", "Other Pink", "Other", "Light Beige", "Yellowish Brown",
]  # fmt: skip
KINDS = [
    "Dress", "T-shirt", "Top", "Vest top", "Bikini top", "Shirt", "Trousers",
    "Leggings/Tights", "Hair/alice band", "Unknown", "Other shoe", "Shorts",
]  # fmt: skip
SCORER = DescriptionScorer(COLOURS, KINDS)


def test_colour_words_are_the_base_of_each_value() -> None:
    assert colour_words("Dark Blue") == {"blue"}
    assert colour_words("Off White") == {"white"}
    assert colour_words("Bronze/Copper") == {"bronze", "copper"}
    assert colour_words("Other Pink") == {"pink"}
    assert colour_words("Other") == set() and not SCORER.colour_nameable("Other")


@pytest.mark.parametrize(
    ("text", "colour", "right"),
    [
        ("Tilly dress. colour_group: Dark Blue. department: Jersey", "Dark Blue", True),
        ("Tilly dress. colour_group: Light Blue", "Dark Blue", True),  # shade not scored
        ("Tilly dress. colour_group: BLUE", "Blue", True),  # case-insensitive
        ("Tilly dress. colour_group: Black", "Dark Blue", False),
        ("Black and white striped top", "White", False),  # another colour named too
        ("Black and white striped top", "Black", False),
        ("Off-white blouse", "Off White", True),
        ("Shirt in a copper tone", "Bronze/Copper", True),
        ("Khaki trousers", "Greenish Khaki", True),
        ("Wide trousers. department: Trousers", "Black", False),  # no colour at all
        ("Bluebell print top", "Blue", False),  # whole words only
    ],
)
def test_the_colour_rule(text: str, colour: str, right: bool) -> None:
    assert SCORER.colour_right(text, colour) is right


def test_kind_phrases_split_alternatives_and_drop_nameless_words() -> None:
    assert kind_phrases("Leggings/Tights") == [("leggings",), ("tights",)]
    assert kind_phrases("Hair/alice band") == [("hair", "band"), ("alice", "band")]
    assert kind_phrases("T-shirt") == [("t", "shirt")]
    assert kind_phrases("Other shoe") == [("shoe",)]
    assert kind_phrases("Unknown") == [] and not SCORER.kind_nameable("Unknown")


@pytest.mark.parametrize(
    ("text", "kind", "right"),
    [
        ("Tilly dress. colour_group: Black", "Dress", True),
        ("Two dresses in a pack", "Dress", True),  # plural
        ("Basic t-shirts, 2-pack", "T-shirt", True),
        ("Wide trouser. colour_group: Black", "Trousers", True),  # singular of a plural type
        ("Slim tights", "Leggings/Tights", True),
        ("Alice band with bow", "Hair/alice band", True),
        ("Bikini top. colour_group: Black", "Bikini top", True),
        ("Bikini top. colour_group: Black", "Top", False),  # inside a longer type
        ("Strap vest top", "Top", False),
        ("Strap vest top", "Vest top", True),
        ("Shirt dress. colour_group: Blue", "Dress", True),  # no type spans both words
        ("Shirt dress. colour_group: Blue", "Shirt", True),
        ("Jersey top", "Vest top", False),
        ("Shorts. colour_group: Black", "Shirt", False),
        ("Redress", "Dress", False),  # whole words only
    ],
)
def test_the_type_rule(text: str, kind: str, right: bool) -> None:
    assert SCORER.kind_right(text, kind) is right


def test_chance_is_the_expected_score_of_a_draw_from_the_training_values() -> None:
    tests = [
        HeldOutItem("1", "", "Dark Blue", "Dress", False),
        HeldOutItem("2", "", "Black", "Top", False),
    ]
    colours = Counter({"Blue": 1, "Dark Blue": 1, "Black": 2})
    kinds = Counter({"Dress": 3, "Vest top": 1})
    chance = chance_scores(SCORER, tests, colours, kinds)
    assert chance["colour"].tolist() == [0.5, 0.5]  # "Blue" counts for "Dark Blue" too
    assert chance["type"].tolist() == [0.75, 0.0]  # "Vest top" does not count for "Top"


def test_a_probe_reads_the_colour_and_type_its_features_hold() -> None:
    """Features that cluster by look: the probe names the colour and the type of unseen
    rows."""
    rng = np.random.default_rng(0)
    looks = [("Red", "Dress"), ("Blue", "Dress"), ("Red", "Skirt"), ("Blue", "Skirt")]
    centres = {look: rng.normal(size=16) * 3 for look in looks}
    ids = [f"i{n}" for n in range(80)]
    items = {i: ("", *looks[n % 4], None) for n, i in enumerate(ids)}
    train_x = np.stack([centres[looks[n % 4]] + rng.normal(size=16) for n in range(80)])
    test_x = np.stack([centres[look] for look in looks])
    assert probe_looks(train_x, ids, items, test_x) == [f"{c}. {k}" for c, k in looks]


def test_stage1_training_items_are_the_first_items_with_text() -> None:
    ids = ["a", "b", "c", "d", "e", "f"]
    texts = {"a": "A dress", "b": "", "c": "C top", "e": "E skirt", "f": "F coat"}
    training, rest = stage1_training_ids(ids, texts, 2)
    assert training == ["a", "c"] and rest == ["e", "f"]


@pytest.fixture(scope="module")
def workdir(built_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the built workdir whose stage-1 projector says it trained on 10 items, so
    that items with text are held out (the small catalog's stage 1 trained on all of them)."""
    copy = tmp_path_factory.mktemp("describe-eval") / "work"
    shutil.copytree(built_workdir, copy)
    _, manifest = load_projector(copy)
    path = Path(manifest["path"]) / "manifest.json"
    content = json.loads(path.read_text())
    assert content["stage"] == "alignment"
    path.write_text(json.dumps(content | {"items": 10}))
    return copy


def test_the_evaluation_holds_out_what_stage_1_trained_on(
    workdir: Path, small_catalog: Settings
) -> None:
    settings = small_catalog.model_copy(update={"workdir": workdir})
    with SQLiteStore(workdir / "store.db") as store:
        texts = {item.id: item_text(item) for item in store.iter_items()}
        report = evaluate_store(
            store, settings, DescribeEvalConfig(items=6, resamples=100), show_progress=False
        )
    embeddings = EmbeddingStore.open(workdir)
    trained = [i for i in embeddings.ids if texts.get(i)][:10]
    tested = [row["item"] for row in report.rows]
    assert report.n == len(tested) == min(6, report.held_out) > 0
    assert not set(tested) & set(trained)
    assert all(texts[i] for i in tested)
    assert report.projector["stage1_items"] == 10
    assert set(report.colour) == {
        OURS,
        LM_ALONE,
        NEAREST_IMAGE,
        NEAREST_COLOUR,
        CHANCE,
        MAJORITY,
        PROBE_IMAGE,
        PROBE_PHOTO,
        OWN_TEXT,
    }
    for estimates in (report.colour, report.kind):
        assert all(0.0 <= e.mean <= 1.0 and e.n == report.n for e in estimates.values())
    assert all(row["description"] for row in report.rows)
    head = stage1_look_head(workdir, load_projector(workdir)[1])
    assert head is not None  # stage 1 fitted one on the built workdir's 100 items
    looks = {look_phrase(c, k) for c in head.colour.labels for k in head.kind.labels}
    assert all(row["description"] in looks for row in report.rows)  # ours: the head's look
    assert all(row["lm_alone"] for row in report.rows)
    assert report.kind[OWN_TEXT].mean > 0.5  # the real text names the type (the rule works)
    assert np.isfinite(report.colour[MAJORITY].mean)
    assert OURS in table(report)


def test_the_evaluate_descriptions_command(workdir: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--workdir", str(workdir), "evaluate", "descriptions", "--items", "2"],
    )
    assert result.exit_code == 0, result.output
    assert OURS in result.output and "ours / (a), paired" in result.output
    assert "ours / (a2), paired" in result.output
    report = json.loads((workdir / "reports" / "descriptions.json").read_text())
    assert report["n"] == 2 and report["projector"]["described_with"] == "alignment"
