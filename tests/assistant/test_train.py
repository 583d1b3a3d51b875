"""Stage-1 alignment: the answer, the warm start, the projector learns while the LM stays
frozen, and training resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from test_lm import EMBED, tiny_lm

from tastegraph.assistant.train import (
    AlignConfig,
    describe_answer,
    resume,
    save_checkpoint,
    stage1_vectors,
    train_alignment,
    warm_start,
)
from tastegraph.config import Settings
from tastegraph.store.base import Item

TEXTS = [
    f"{c} {t}, cotton, for the office"
    for c in ("Black", "White", "Red")
    for t in ("dress", "shirt", "skirt", "coat")
]


def test_alignment_lowers_the_loss_and_resumes(default_lm_dir: Path, tmp_path: Path) -> None:
    lm = tiny_lm(default_lm_dir)
    frozen = {name: p.clone() for name, p in lm.model.named_parameters()}
    vectors = np.random.default_rng(0).standard_normal((len(TEXTS), EMBED)).astype(np.float32)
    config = AlignConfig(epochs=6, batch_size=4, lr=3e-3, holdout=2, checkpoint_every=5)
    result = train_alignment(lm, vectors, TEXTS, tmp_path, config, show_progress=False)
    assert result.steps == 6 * 3
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])
    for name, p in lm.model.named_parameters():
        assert torch.equal(p, frozen[name]), name  # the LM never changes

    again = tiny_lm(default_lm_dir)
    assert resume(again, tmp_path) == 18
    for name, p in again.projector.state_dict().items():
        assert torch.equal(p, lm.projector.state_dict()[name])
    longer = AlignConfig(epochs=7, batch_size=4, lr=3e-3, holdout=2, checkpoint_every=5)
    resumed = train_alignment(again, vectors, TEXTS, tmp_path, longer, show_progress=False)
    assert len(resumed.losses) == 3 and resumed.steps == 21  # only the seventh epoch ran
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1  # older checkpoints dropped


def test_a_checkpoint_missing_trainable_weights_is_not_resumed(
    default_lm_dir: Path, tmp_path: Path
) -> None:
    lm = tiny_lm(default_lm_dir)
    save_checkpoint(lm, tmp_path, 7)
    assert resume(tiny_lm(default_lm_dir), tmp_path) == 7

    checkpoint = next(p for p in tmp_path.iterdir() if p.is_dir())
    state = load_file(str(checkpoint / "trainable.safetensors"))
    older = {name: w for name, w in state.items() if not name.startswith("head.")}
    save_file(older, str(checkpoint / "trainable.safetensors"))  # as before the choice head
    assert resume(tiny_lm(default_lm_dir), tmp_path) == 0


def test_the_answer_says_the_look_first() -> None:
    settings = Settings()
    dress = Item(
        id="1",
        title="Tilly dress",
        attributes={"colour_group": "Black", "product_type": "Dress", "index_name": "Ladies"},
    )
    answer = describe_answer(dress, settings)
    assert answer.startswith("Black Dress. Tilly dress. ")
    assert "index_name: Ladies" in answer
    bare = Item(id="2", title="Tilly dress")  # no look: the text alone
    assert describe_answer(bare, settings) == "Tilly dress"
    assert describe_answer(Item(id="3"), settings) == ""  # photo-only: nothing to learn


def test_the_warm_start_moves_the_tokens_onto_the_answers_first_tokens(
    default_lm_dir: Path,
) -> None:
    lm = tiny_lm(default_lm_dir)
    frozen = {name: p.clone() for name, p in lm.model.named_parameters()}
    vectors = np.random.default_rng(0).standard_normal((len(TEXTS), EMBED)).astype(np.float32)
    config = AlignConfig(warm_start_epochs=60, warm_start_batch_size=4, warm_start_lr=3e-3)
    before, after = warm_start(lm, vectors, TEXTS, config, show_progress=False)
    assert after < 0.5 * before
    tokens = lm.projector(torch.from_numpy(vectors[:1]))[0]  # (k, H)
    first = lm.tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"][: len(tokens)]
    table = lm.model.get_input_embeddings().weight
    nearest = (torch.nn.functional.normalize(tokens, dim=-1) @ table.T).argmax(dim=-1)
    assert nearest.tolist() == first  # each soft token now reads as its answer token
    for name, p in lm.model.named_parameters():
        assert torch.equal(p, frozen[name]), name


def test_stage_1_reads_half_the_items_by_their_photo_alone() -> None:
    rng = np.random.default_rng(1)
    fused = rng.standard_normal((200, 8)).astype(np.float32)
    photo = -fused
    photo[150:] = np.nan  # the last 50 have no photo
    vectors = stage1_vectors(fused, photo, seed=0)
    alone = [bool(np.allclose(v, p)) for v, p in zip(vectors[:150], photo[:150], strict=True)]
    assert 50 < sum(alone) < 100
    np.testing.assert_allclose(vectors[150:], fused[150:])
    np.testing.assert_allclose(stage1_vectors(fused, photo, seed=0), vectors)
