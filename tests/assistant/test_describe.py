"""Describing items from their embeddings: the stage-1 question asked at request time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastegraph.assistant.describe import (
    Describer,
    LookConstraint,
    alignment_manifest,
    clean_description,
    describe,
    load_describe_lm,
    look_phrase,
    open_describer,
    projector_embeddings,
)
from tastegraph.assistant.projector import (
    ItemProjector,
    ProjectorConfig,
    load_projector,
    save_projector,
)
from tastegraph.cli import app
from tastegraph.encoders import item_text
from tastegraph.store import SQLiteStore


@pytest.fixture(scope="module")
def workdir(built_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("describe") / "work"
    shutil.copytree(built_workdir, copy)
    return copy


@pytest.fixture(scope="module")
def photo_only(workdir: Path) -> list[str]:
    """The small catalog's embedded items without text (H&M articles without a text row)."""
    embedded = set(projector_embeddings(workdir).ids)
    with SQLiteStore(workdir / "store.db") as store:
        items = [i.id for i in store.iter_items() if not item_text(i) and i.id in embedded]
    assert items
    return items


@pytest.fixture(scope="module")
def describer(workdir: Path) -> Describer:
    return open_describer(workdir, ["Black Dress", "Light Blue Trousers"], size=2)


def test_a_photo_only_item_gets_a_description(
    describer: Describer, workdir: Path, photo_only: list[str]
) -> None:
    vector = projector_embeddings(workdir).vector(photo_only[0])
    text = describe(describer.lm, vector, looks=describer.looks)
    assert text.strip() and "\n" not in text and "  " not in text
    assert text.startswith(("Black Dress.", "Light Blue Trousers."))  # a look the catalog has


def test_stage_1_fits_a_look_head_that_opens_each_description(
    describer: Describer, workdir: Path, photo_only: list[str]
) -> None:
    head = describer.head
    assert head is not None  # stage 1 of the built workdir fitted one
    with SQLiteStore(workdir / "store.db") as store:
        colours = {str(i.attributes.get("colour_group")) for i in store.iter_items()}
    assert set(head.colour.labels) <= colours and len(head.colour.labels) > 1
    assert head.reads_signature
    embeddings = projector_embeddings(workdir)
    for item_id in photo_only[:3]:
        signature = embeddings.colour(item_id)
        assert signature is not None  # the embed job stored the photo's colour signature
        look = look_phrase(*head.looks(embeddings.vector(item_id), signature)[0])
        text = describer(item_id)
        assert text == look  # the head's look, and nothing the LM made up after it
        assert describer(item_id) == text  # greedy: the same words every time


def test_the_look_constraint_keeps_to_catalog_looks_then_lets_go(describer: Describer) -> None:
    tokenizer = describer.lm.tokenizer
    looks = LookConstraint(tokenizer, ["Black Dress", "Black Top", "Blue Dress", ""])
    black = tokenizer("Black", add_special_tokens=False)["input_ids"]
    assert set(looks([])) == {black[0], tokenizer("Blue", add_special_tokens=False)["input_ids"][0]}
    kinds = {tokenizer.decode(i) for i in looks(black)}
    assert kinds == {" Dress", " Top"}
    done = tokenizer("Black Top. Strap", add_special_tokens=False)["input_ids"]
    assert len(looks(done)) == len(tokenizer)  # after the look's full stop: anything
    assert not LookConstraint(tokenizer, [""])  # a catalog without looks: no constraint


def test_descriptions_are_kept_for_the_most_recent_items(
    describer: Describer, photo_only: list[str]
) -> None:
    first = describer(photo_only[0])
    describer(photo_only[1])
    describer(photo_only[2])
    assert len(describer) == 2
    assert describer(photo_only[0]) == first  # made again after it was dropped
    with pytest.raises(KeyError):
        describer("no-such-item")


def test_cleaning_keeps_the_first_line_and_drops_a_dangling_field() -> None:
    assert clean_description("  Tilly dress.  colour_group: Black.\nmore") == (
        "Tilly dress. colour_group: Black"
    )
    assert clean_description("Tilly dress. colour_group: Black. department:") == (
        "Tilly dress. colour_group: Black"
    )
    assert clean_description("Tilly dress. colour_group: Black. department: Jer") == (
        "Tilly dress. colour_group: Black. department: Jer"
    )
    assert clean_description("Luxe. colour_group: Black. graphical_app") == (
        "Luxe. colour_group: Black"
    )
    assert clean_description("Tilly dress. Made in Italy") == "Tilly dress. Made in Italy"
    assert clean_description("\n\n") == ""


def test_the_describe_command(workdir: Path, photo_only: list[str]) -> None:
    with SQLiteStore(workdir / "store.db") as store:
        with_text = next(i.id for i in store.iter_items() if item_text(i))
    runner = CliRunner()
    result = runner.invoke(app, ["--workdir", str(workdir), "describe", photo_only[0], with_text])
    assert result.exit_code == 0, result.output
    assert result.output.count("generated from the item's embedding and photo colours:") == 2
    assert "(photo only)" in result.output and "real text:" in result.output

    unknown = runner.invoke(app, ["--workdir", str(workdir), "describe", "no-such-item"])
    assert unknown.exit_code == 2 and "unknown item 'no-such-item'" in unknown.output


def test_the_describe_command_without_an_assistant(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--workdir", str(tmp_path), "describe", "x"])
    assert result.exit_code == 2 and "tastegraph train assistant" in result.output


def test_describing_uses_the_stage_1_projector_behind_a_stage_2_one(tmp_path: Path) -> None:
    projector = ItemProjector(ProjectorConfig(embed_dim=4, hidden_size=8, tokens=1, inner_dim=8))
    base = {"lm": "SmolLM2-135M-Instruct", "embeddings_version": "e1"}
    first = save_projector(projector, tmp_path, base | {"stage": "alignment", "items": 50})
    save_projector(projector, tmp_path, base | {"stage": "shopping", "stages": ["alignment"]})
    _, current = load_projector(tmp_path)
    assert alignment_manifest(tmp_path, current)["version"] == first.name
    assert alignment_manifest(tmp_path, current)["items"] == 50

    save_projector(projector, tmp_path, base | {"stage": "shopping", "embeddings_version": "e2"})
    _, other = load_projector(tmp_path)
    with pytest.raises(ValueError, match="no stage-1"):
        alignment_manifest(tmp_path, other)  # trained for other embeddings


def test_the_describing_lm_shares_the_chat_lm(workdir: Path) -> None:
    chat, manifest = load_describe_lm(workdir, "current")
    shared, _ = load_describe_lm(workdir, "alignment", share=chat)
    assert shared.model is chat.model and manifest["version"]
