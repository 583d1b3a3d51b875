"""The projector and the item-reading LM wrapper: a tiny random LM (fast) and the real one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from tastegraph.assistant.lm import ITEM_TOKEN, ItemLM
from tastegraph.assistant.models import cached_lm, lm_cache_dir
from tastegraph.assistant.projector import (
    ItemProjector,
    ProjectorConfig,
    load_projector,
    save_projector,
)

EMBED = 16


def tiny_lm(default_lm_dir: Path, k: int = 2) -> ItemLM:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(default_lm_dir), local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    projector = ItemProjector(ProjectorConfig(embed_dim=EMBED, hidden_size=32, tokens=k))
    return ItemLM(model, tokenizer, projector)


def prompt(lm: ItemLM, items: int) -> torch.Tensor:
    text = "Which one? " + " and ".join(lm.item_placeholder for _ in range(items))
    return lm.chat_ids([{"role": "user", "content": text}])


def test_projector_shapes_errors_and_round_trip(tmp_path: Path) -> None:
    projector = ItemProjector(ProjectorConfig(embed_dim=EMBED, hidden_size=24, tokens=3))
    out = projector(torch.randn(5, EMBED))
    assert out.shape == (5, 3, 24)
    with pytest.raises(ValueError, match=f"\\(B, {EMBED}\\)"):
        projector(torch.randn(5, EMBED + 1))
    with pytest.raises(ValueError, match="tokens"):
        ProjectorConfig(tokens=0)
    folder = save_projector(projector, tmp_path, {"embeddings_version": "v1", "lm": "tiny"})
    loaded, manifest = load_projector(tmp_path)
    assert manifest["embeddings_version"] == "v1" and manifest["version"] == folder.name
    items = torch.randn(2, EMBED)
    with torch.inference_mode():
        assert torch.equal(loaded(items), projector.eval()(items))
    with pytest.raises(FileNotFoundError, match="train assistant"):
        load_projector(tmp_path / "nothing")


def test_item_tokens_land_on_the_placeholders(default_lm_dir: Path) -> None:
    lm = tiny_lm(default_lm_dir, k=2)
    ids = prompt(lm, 2)
    assert int((ids == lm.item_token_id).sum()) == 4
    items = torch.randn(2, EMBED)
    with torch.inference_mode():
        embeds = lm.embed(ids, items)[0]
        text = lm.model.get_input_embeddings()(ids)[0]
        tokens = lm.projector(items).reshape(-1, 32)
    at = (ids[0] == lm.item_token_id).nonzero().ravel()
    assert torch.equal(embeds[at], tokens)  # in order: item 0's two tokens, then item 1's
    others = ids[0] != lm.item_token_id
    assert torch.equal(embeds[others], text[others])
    with pytest.raises(ValueError, match="placeholder"):
        lm.embed(ids, items[:1])


def test_different_items_change_the_output(default_lm_dir: Path) -> None:
    lm = tiny_lm(default_lm_dir)
    ids = prompt(lm, 1)
    with torch.inference_mode():
        a = lm.forward(ids, torch.randn(1, EMBED)).logits[0, -1]
        b = lm.forward(ids, torch.randn(1, EMBED)).logits[0, -1]
    assert not torch.allclose(a, b)


def test_a_projector_step_lowers_the_loss(default_lm_dir: Path) -> None:
    lm = tiny_lm(default_lm_dir)
    for parameter in lm.model.parameters():
        parameter.requires_grad_(False)  # the LM is frozen; only the projector learns
    ids = prompt(lm, 1)
    labels = ids.clone()
    labels[ids == lm.item_token_id] = -100
    items = torch.randn(1, EMBED)
    optimizer = torch.optim.SGD(lm.projector.parameters(), lr=0.5)
    before = lm.forward(ids, items, labels=labels).loss
    before.backward()
    optimizer.step()
    with torch.inference_mode():
        after = lm.forward(ids, items, labels=labels).loss
    assert after < before


def test_the_default_lm_is_cached_and_reads_items(default_lm_dir: Path) -> None:
    workdir = default_lm_dir.parents[2]
    assert default_lm_dir == lm_cache_dir(workdir)
    weights = default_lm_dir / "model.safetensors"
    stamp = os.stat(weights).st_mtime_ns
    assert cached_lm(workdir) == default_lm_dir  # no second conversion
    assert os.stat(weights).st_mtime_ns == stamp
    projector = ItemProjector(ProjectorConfig(embed_dim=EMBED, hidden_size=576))
    lm = ItemLM.load(default_lm_dir, projector)
    ids = prompt(lm, 1)
    reply = lm.generate(ids, torch.randn(1, EMBED), max_new_tokens=8)
    assert reply.strip() and ITEM_TOKEN not in reply
    with pytest.raises(ValueError, match="hidden size is 576"):
        ItemLM.load(default_lm_dir, ItemProjector(ProjectorConfig(embed_dim=EMBED, hidden_size=64)))
