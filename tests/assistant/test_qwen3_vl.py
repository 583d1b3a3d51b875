"""Qwen3-VL without its vision tower, on a tiny randomly initialised model built here."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen3_vl import modeling_qwen3_vl

from tastegraph.assistant.qwen3_vl import (
    Qwen3VLItemReader,
    load_qwen3_vl_without_vision,
    merged_grid,
)

HIDDEN = 64
K = 4  # soft tokens per item: a 2 x 2 merged grid, image_grid_thw [1, 4, 4]
IMAGE, VIDEO, START, END = 290, 291, 292, 293
ITEM = [START, *[IMAGE] * K, END]  # one item's placeholder in a prompt


def tiny_config() -> Qwen3VLConfig:
    return Qwen3VLConfig(
        text_config={
            "vocab_size": 300,
            "hidden_size": HIDDEN,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,  # 8 rotary frequencies = sum(mrope_section)
            "max_position_embeddings": 512,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [4, 2, 2],
                "mrope_interleaved": True,
            },
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": HIDDEN,
            "patch_size": 16,
            "temporal_patch_size": 2,
            "spatial_merge_size": 2,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        vision_start_token_id=START,
        vision_end_token_id=END,
    )


@pytest.fixture(autouse=True)
def vision_tower_trap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any call of a Qwen3-VL vision tower fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the vision tower was called")

    monkeypatch.setattr(modeling_qwen3_vl.Qwen3VLVisionModel, "forward", refuse)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matrices: extra threads only add overhead, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def full() -> Qwen3VLForConditionalGeneration:
    torch.manual_seed(0)
    return Qwen3VLForConditionalGeneration(tiny_config()).eval()


def text_ids() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(0, 280, (2, 12))


def item_prompt() -> torch.Tensor:
    """Two rows: one item mid-prompt, and two items (wrapped as Qwen3-VL wraps images)."""
    return torch.tensor(
        [
            [5, 6, 7, *ITEM, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            [5, 6, *ITEM, 7, *ITEM, 8, 9, 10],
        ]
    )


def encoded_images(items: torch.Tensor) -> dict[str, Any]:
    """The original model's keyword arguments for `items` handed in as already-encoded image
    features (no pixels, no DeepStack features), grid [1, 4, 4] per image."""
    features = modeling_qwen3_vl.BaseModelOutputWithDeepstackFeatures(
        pooler_output=tuple(items), deepstack_features=[]
    )
    return {
        "image_grid_thw": torch.tensor([[1, 4, 4]] * len(items)),
        "mm_encoder_outputs": {"image": features},
    }


def test_merged_grid_is_as_square_as_possible() -> None:
    assert [merged_grid(k) for k in (1, 4, 6, 7, 9, 12)] == [
        (1, 1),
        (2, 2),
        (2, 3),
        (1, 7),
        (3, 3),
        (3, 4),
    ]
    with pytest.raises(ValueError):
        merged_grid(0)


def test_vision_tower_is_dropped_and_never_called(full: Qwen3VLForConditionalGeneration) -> None:
    model = copy.deepcopy(full)
    tower = model.model.visual
    calls: list[str] = []
    tower.register_forward_hook(lambda *_: calls.append("visual"))
    tower_weights = {id(p) for p in tower.parameters()}

    reader = load_qwen3_vl_without_vision(model)

    assert not hasattr(model.model, "visual") and not hasattr(reader.model, "visual")
    assert not any("visual" in name for name, _ in reader.named_parameters())
    assert tower_weights.isdisjoint(id(p) for p in reader.parameters())
    n_full = sum(p.numel() for p in full.parameters())
    n_tower = sum(p.numel() for p in full.model.visual.parameters())
    assert sum(p.numel() for p in reader.parameters()) == n_full - n_tower

    input_ids = item_prompt()
    with torch.no_grad():
        reader(input_ids, torch.randn(3, K, HIDDEN))
        reader.generate(input_ids, torch.randn(3, K, HIDDEN), max_new_tokens=2)
    assert calls == []

    # The trap works: the original model with pixels does call its tower.
    pixels = torch.randn(16, 3 * 2 * 16 * 16)  # 4 x 4 patches -> 2 x 2 merged = K tokens
    with pytest.raises(AssertionError, match="vision tower"):
        full(
            input_ids=input_ids[:1],
            pixel_values=pixels,
            image_grid_thw=torch.tensor([[1, 4, 4]]),
            mm_token_type_ids=(input_ids[:1] == IMAGE).int(),
        )


def test_text_only_logits_match_the_full_model(full: Qwen3VLForConditionalGeneration) -> None:
    reader = Qwen3VLItemReader(copy.deepcopy(full)).eval()
    input_ids = text_ids()
    with torch.no_grad():
        expected = full(input_ids=input_ids).logits
        logits = reader(input_ids)
    assert logits.shape == (2, 12, 300)
    assert torch.allclose(logits, expected, atol=1e-6, rtol=1e-5)


def test_item_logits_and_positions_match_the_full_model(
    full: Qwen3VLForConditionalGeneration,
) -> None:
    reader = Qwen3VLItemReader(copy.deepcopy(full)).eval()
    assert reader.placeholder_ids(K) == ITEM
    input_ids = item_prompt()
    torch.manual_seed(2)
    items = torch.randn(3, K, HIDDEN)

    # mRoPE: each item sits where the original model puts a [1, 4, 4] image.
    assert reader.grid_thw(K) == [1, 4, 4]
    expected_positions, _ = full.model.get_rope_index(
        input_ids,
        (input_ids == IMAGE).int(),
        image_grid_thw=torch.tensor([[1, 4, 4]] * 3),
    )
    positions = reader.position_ids(input_ids, K)
    assert torch.equal(positions, expected_positions)
    first = 4  # the first item's pads in row 0: t, h, w over a 2 x 2 grid after 4 tokens
    assert positions[:, 0, first : first + K].tolist() == [
        [4, 4, 4, 4],
        [4, 4, 5, 5],
        [4, 5, 4, 5],
    ]

    with torch.no_grad():
        logits = reader(input_ids, items)
        other = reader(input_ids, torch.randn(3, K, HIDDEN))
    # The same numbers as the full model given these tokens as encoded image features.
    with torch.no_grad():
        expected = full(
            input_ids=input_ids,
            mm_token_type_ids=(input_ids == IMAGE).int(),
            **encoded_images(items),
        ).logits
    assert torch.allclose(logits, expected, atol=1e-6, rtol=1e-5)
    # Items change what follows them, and only that (causal attention).
    after = first + K
    assert torch.equal(logits[0, :first], other[0, :first])
    assert not torch.allclose(logits[0, after:], other[0, after:])


def test_item_tokens_must_fit_the_placeholders(full: Qwen3VLForConditionalGeneration) -> None:
    reader = Qwen3VLItemReader(copy.deepcopy(full))
    input_ids = item_prompt()
    with pytest.raises(ValueError, match="image-pad tokens"):
        reader(input_ids, torch.randn(2, K, HIDDEN))  # 3 items in the prompt
    with pytest.raises(ValueError, match="exactly 6 consecutive"):
        reader(input_ids, torch.randn(2, 6, HIDDEN))  # 12 pads, but in runs of 4
    with pytest.raises(ValueError, match="item tokens"):
        reader(input_ids, torch.randn(3, K, HIDDEN + 1))


def test_generate_matches_decoding_without_cache(full: Qwen3VLForConditionalGeneration) -> None:
    reader = Qwen3VLItemReader(copy.deepcopy(full)).eval()
    input_ids = item_prompt()
    torch.manual_seed(3)
    items = torch.randn(3, K, HIDDEN)

    generated = reader.generate(input_ids, items, max_new_tokens=5)

    assert generated.shape == (2, 5)
    ids = input_ids
    with torch.no_grad():
        for step in range(5):
            token = reader(ids, items)[:, -1].argmax(-1)
            assert torch.equal(token, generated[:, step])
            ids = torch.cat([ids, token[:, None]], dim=1)


def test_generate_stops_rows_at_eos(full: Qwen3VLForConditionalGeneration) -> None:
    reader = Qwen3VLItemReader(copy.deepcopy(full)).eval()
    input_ids = text_ids()
    free = reader.generate(input_ids, max_new_tokens=6)
    eos = int(free[0, 1])

    stopped = reader.generate(input_ids, max_new_tokens=6, eos_token_id=eos)

    assert stopped[0, :2].tolist() == free[0, :2].tolist()
    assert (stopped[0, 2:] == eos).all()
    if not (free[1] == eos).any():
        assert torch.equal(stopped[1], free[1])
    assert len(reader.generate(input_ids[:1], max_new_tokens=6, eos_token_id=eos)[0]) == 2


def test_generate_matches_transformers(full: Qwen3VLForConditionalGeneration) -> None:
    reader = Qwen3VLItemReader(copy.deepcopy(full)).eval()
    settings: dict[str, Any] = {"max_new_tokens": 5, "do_sample": False, "pad_token_id": 0}

    input_ids = text_ids()
    expected = full.generate(input_ids, **settings)[:, input_ids.shape[1] :]
    assert torch.equal(reader.generate(input_ids, max_new_tokens=5), expected)

    input_ids = item_prompt()
    torch.manual_seed(4)
    items = torch.randn(3, K, HIDDEN)
    expected = full.generate(
        input_ids,
        mm_token_type_ids=(input_ids == IMAGE).int(),
        **encoded_images(items),
        **settings,
    )[:, input_ids.shape[1] :]
    assert torch.equal(reader.generate(input_ids, items, max_new_tokens=5), expected)


def test_generate_with_left_padding(full: Qwen3VLForConditionalGeneration) -> None:
    reader = Qwen3VLItemReader(copy.deepcopy(full)).eval()
    torch.manual_seed(5)
    items = torch.randn(3, K, HIDDEN)
    short, long = item_prompt()[0, :-2], item_prompt()[1, :-1]  # 16 and 17 tokens
    padded = torch.stack([torch.cat([torch.zeros(1, dtype=torch.long), short]), long])
    mask = torch.ones_like(padded)
    mask[0, 0] = 0

    batch = reader.generate(padded, items, attention_mask=mask, max_new_tokens=4)

    assert torch.equal(batch[0], reader.generate(short[None], items[:1], max_new_tokens=4)[0])
    assert torch.equal(batch[1], reader.generate(long[None], items[1:], max_new_tokens=4)[0])


def test_loads_a_checkpoint_directory(
    full: Qwen3VLForConditionalGeneration, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    full.save_pretrained(tmp_path)

    reader = load_qwen3_vl_without_vision(tmp_path)

    assert not hasattr(reader.model, "visual")
    input_ids = text_ids()
    with torch.no_grad():
        assert torch.allclose(reader(input_ids), full(input_ids=input_ids).logits, atol=1e-6)
    with pytest.raises(FileNotFoundError):
        load_qwen3_vl_without_vision(tmp_path / "missing")
