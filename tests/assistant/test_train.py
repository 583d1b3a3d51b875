"""Stage-1 alignment: the projector learns, the LM stays frozen, and training resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from test_lm import EMBED, tiny_lm

from tastegraph.assistant.train import AlignConfig, resume, save_checkpoint, train_alignment

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
