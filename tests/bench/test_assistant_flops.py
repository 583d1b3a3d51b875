"""The assistant benchmark's analytic FLOPs agree with FLOPs counted on real forward passes."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLVisionConfig
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel

from tastegraph.bench.assistant import decoder_flops, patches, vision_flops, visual_tokens

SHAPE = {
    "hidden": 64,
    "inter": 128,
    "layers": 2,
    "heads": 4,
    "kv_heads": 2,
    "head_dim": 16,
    "vocab": 300,
}


def test_decoder_flops_match_a_counted_prefill() -> None:
    config = LlamaConfig(
        vocab_size=SHAPE["vocab"],
        hidden_size=SHAPE["hidden"],
        intermediate_size=SHAPE["inter"],
        num_hidden_layers=SHAPE["layers"],
        num_attention_heads=SHAPE["heads"],
        num_key_value_heads=SHAPE["kv_heads"],
    )
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(0, SHAPE["vocab"], (1, 40))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids, logits_to_keep=1)
    # The counter does not see the attention products of CPU scaled-dot-product attention;
    # the formula charges them (causal: half the square).
    attention = SHAPE["layers"] * 4 * SHAPE["heads"] * SHAPE["head_dim"] * 20 * 40
    counted = counter.get_total_flops()
    assert decoder_flops(SHAPE, 40, 1) - attention == pytest.approx(counted, rel=0.02)
    assert decoder_flops(SHAPE, 40, 5) > decoder_flops(SHAPE, 40, 1)


def test_vision_flops_match_a_counted_forward() -> None:
    shape = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "patch_size": 16,
        "temporal_patch_size": 2,
        "spatial_merge_size": 2,
        "out_hidden_size": 48,
        "deepstack_visual_indexes": [0],
        "in_channels": 3,
    }
    model = Qwen3VLVisionModel(Qwen3VLVisionConfig(**shape)).eval()
    grid = 128 // 16
    pixels = torch.randn(grid * grid, 3 * 2 * 16 * 16)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(pixels, grid_thw=torch.tensor([[1, grid, grid]]))
    attention = shape["depth"] * 4 * grid**4 * shape["hidden_size"]  # unseen by the counter
    counted = counter.get_total_flops()
    assert vision_flops(shape, 128) - attention == pytest.approx(counted, rel=0.02)


def test_photos_become_qwen_patches_and_tokens() -> None:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (300, 200), "red").save(buffer, format="JPEG")
    assert patches(buffer.getvalue(), 64).shape == (16, 3 * 2 * 16 * 16)
    assert visual_tokens(512) == 256 and visual_tokens(1024) == 1024
