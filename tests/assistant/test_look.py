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


SIGNATURE = "colour-signature@test"


def signed(x: np.ndarray, colours: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings with their colour axis drowned in noise, and colour signatures that
    hold it: the photo's colours, which the embedding lost."""
    rng = np.random.default_rng(seed + 10)
    blurred = x.copy()
    blurred[:, 0] = rng.normal(0, 2, len(x))
    signatures = rng.normal(0, 0.3, (len(x), 5)).astype(np.float32)
    signatures[:, 2] += [{"Black": -2, "White": 0, "Red": 2}[c] for c in colours]
    return blurred, signatures


def test_the_colour_head_reads_the_colour_signature_the_embedding_lost() -> None:
    x, colours, kinds = clusters()
    embeddings, signatures = signed(x, colours, seed=0)
    head = LookHead.fit(embeddings, colours, kinds, signatures=signatures, signature=SIGNATURE)
    blind = LookHead.fit(embeddings, colours, kinds)
    assert head is not None and blind is not None and head.reads_signature
    test, test_colours, test_kinds = clusters(seed=1)
    test_embeddings, test_signatures = signed(test, test_colours, seed=1)

    def colour_right(looks: list[tuple[str, str]]) -> float:
        return float(np.mean([c == t for (c, _), t in zip(looks, test_colours, strict=True)]))

    looks = head.looks(test_embeddings, test_signatures)
    assert colour_right(looks) > 0.95
    assert colour_right(blind.looks(test_embeddings)) < 0.7
    assert np.mean([k == t for (_, k), t in zip(looks, test_kinds, strict=True)]) > 0.95
    with pytest.raises(ValueError, match="colour signatures; none were given"):
        head.looks(test_embeddings)
    with pytest.raises(ValueError, match="signatures of 5 numbers, not 3"):
        head.looks(test_embeddings, test_signatures[:, :3])
    with pytest.raises(ValueError, match="come together"):
        LookHead.fit(embeddings, colours, kinds, signatures=signatures)  # of no known version
    with pytest.raises(ValueError, match="299 colour signatures for 300 vectors"):
        LookHead.fit(embeddings, colours, kinds, signatures=signatures[1:], signature=SIGNATURE)


def test_the_head_round_trips_through_safetensors(tmp_path: Path) -> None:
    x, colours, kinds = clusters()
    head = LookHead.fit(x, colours, kinds)
    assert head is not None
    head.save(tmp_path)
    assert (tmp_path / LOOK_HEAD_FILE).is_file()
    loaded = LookHead.load(tmp_path)
    assert loaded is not None and loaded.looks(x) == head.looks(x)
    embeddings, signatures = signed(x, colours, seed=0)
    with_signature = LookHead.fit(
        embeddings, colours, kinds, signatures=signatures, signature=SIGNATURE
    )
    assert with_signature is not None
    with_signature.save(tmp_path)
    loaded = LookHead.load(tmp_path)
    assert loaded is not None and loaded.signature == SIGNATURE
    assert loaded.looks(embeddings, signatures) == with_signature.looks(embeddings, signatures)
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
    head.kind.weights = head.kind.weights[:, :4]  # widths that disagree
    head.save(tmp_path)
    with pytest.raises(ValueError, match="not a look head"):
        LookHead.load(tmp_path)
