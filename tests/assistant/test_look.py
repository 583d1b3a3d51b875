"""The look head: colour and kind read off an embedding, saved without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastegraph.assistant.look import LOOK_HEAD_FILE, MIN_EXAMPLES, LookHead


def clusters(seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """Embeddings in which colour lies along one axis and kind along another, with noise."""
    rng = np.random.default_rng(seed)
    colours = rng.choice(["Black", "White", "Red"], 300).tolist()
    kinds = rng.choice(["Dress", "Trousers"], 300).tolist()
    x = rng.normal(0, 0.3, (300, 8)).astype(np.float32)
    x[:, 0] += [{"Black": -2, "White": 0, "Red": 2}[c] for c in colours]
    x[:, 1] += [{"Dress": -2, "Trousers": 2}[k] for k in kinds]
    return x, colours, kinds


def test_the_head_reads_colour_and_kind_it_was_shown() -> None:
    x, colours, kinds = clusters()
    head = LookHead.fit(x, colours, kinds)
    assert head is not None
    test, test_colours, test_kinds = clusters(seed=1)
    looks = head.looks(test)
    assert np.mean([c == t for (c, _), t in zip(looks, test_colours, strict=True)]) > 0.95
    assert np.mean([k == t for (_, k), t in zip(looks, test_kinds, strict=True)]) > 0.95
    assert head.looks(test[0]) == looks[:1]  # one vector (d,) reads as one row


def test_the_head_round_trips_through_safetensors(tmp_path: Path) -> None:
    x, colours, kinds = clusters()
    head = LookHead.fit(x, colours, kinds)
    assert head is not None
    head.save(tmp_path)
    assert (tmp_path / LOOK_HEAD_FILE).is_file()
    loaded = LookHead.load(tmp_path)
    assert loaded is not None and loaded.looks(x) == head.looks(x)
    assert LookHead.load(tmp_path / "elsewhere") is None  # a projector without a head


def test_items_without_a_look_are_left_out_and_too_few_give_no_head() -> None:
    x, colours, kinds = clusters()
    kinds = ["" if c == "Red" else k for c, k in zip(colours, kinds, strict=True)]
    head = LookHead.fit(x, colours, kinds)
    assert head is not None and sorted(head.colour.labels) == ["Black", "White"]
    assert {c for c, _ in head.looks(x)} == {"Black", "White"}  # two classes: both are read
    few = MIN_EXAMPLES - 1
    assert LookHead.fit(x[:few], colours[:few], kinds[:few]) is None


def test_a_single_value_is_always_read() -> None:
    x, colours, _ = clusters()
    head = LookHead.fit(x, colours, ["Dress"] * len(x))
    assert head is not None and {k for _, k in head.looks(x)} == {"Dress"}


def test_a_vector_of_the_wrong_size_is_refused() -> None:
    x, colours, kinds = clusters()
    head = LookHead.fit(x, colours, kinds)
    assert head is not None
    with pytest.raises(ValueError, match="8 numbers"):
        head.looks(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="8 numbers"):
        head.looks(np.zeros(16, np.float32))  # two vectors' worth is not two vectors


def test_a_file_that_is_not_a_look_head_is_refused(tmp_path: Path) -> None:
    x, colours, kinds = clusters()
    head = LookHead.fit(x, colours, kinds)
    assert head is not None
    head.colour.weights = head.colour.weights[:, :4]  # widths that disagree
    head.save(tmp_path)
    with pytest.raises(ValueError, match="not a look head"):
        LookHead.load(tmp_path)
