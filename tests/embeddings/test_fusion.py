from __future__ import annotations

import numpy as np
import torch

from tastegraph.embeddings.fusion import FusionConfig, FusionModel
from tastegraph.embeddings.job import fuse_table
from tastegraph.embeddings.table import FeatureTable
from tastegraph.embeddings.train import TrainConfig, _taste_loss, train_fusion
from tastegraph.store import Event


def model() -> FusionModel:
    torch.manual_seed(0)
    return FusionModel(FusionConfig(image_dim=12, text_dim=6, embed_dim=4, hidden_dim=8)).eval()


def random_table(
    rng: np.random.Generator,
    n: int,
    *,
    image_dim: int,
    text_dim: int,
    has_image: np.ndarray | None = None,
    has_text: np.ndarray | None = None,
) -> FeatureTable:
    """n items with random photo and text features (both, unless masks say otherwise)."""
    return FeatureTable(
        [f"i{i}" for i in range(n)],
        rng.standard_normal((n, image_dim)).astype(np.float32),
        rng.standard_normal((n, text_dim)).astype(np.float32),
        np.ones(n, dtype=bool) if has_image is None else has_image,
        np.ones(n, dtype=bool) if has_text is None else has_text,
        [None] * n,
    )


def test_fused_embedding_is_unit_length_and_image_only_without_text() -> None:
    m = model()
    image, text = torch.randn(3, 12), torch.randn(3, 6)
    has_image = torch.tensor([True, True, False])
    has_text = torch.tensor([True, False, True])
    fused = m.fuse(image, text, has_image, has_text)
    assert torch.allclose(fused.norm(dim=1), torch.ones(3), atol=1e-6)
    assert torch.allclose(fused[1], m.embed_images(image)[1], atol=1e-6)
    assert torch.allclose(fused[2], m.embed_texts(text)[2], atol=1e-6)
    assert not torch.allclose(fused[0], m.embed_images(image)[0], atol=1e-3)


def test_missing_modality_values_do_not_leak_into_the_embedding() -> None:
    m = model()
    image = torch.randn(1, 12)
    no_text = torch.tensor([False])
    a = m.fuse(image, torch.zeros(1, 6), torch.tensor([True]), no_text)
    b = m.fuse(image, torch.randn(1, 6) * 100, torch.tensor([True]), no_text)
    assert torch.allclose(a, b)


def test_contrastive_loss_prefers_matching_pairs() -> None:
    m = model()
    a = torch.nn.functional.normalize(torch.randn(16, 4), dim=1)
    matched = m.contrastive_loss(a, a)
    shuffled = m.contrastive_loss(a, a[torch.randperm(16)])
    assert matched < shuffled


def test_text_structure_keeps_items_with_alike_texts_together() -> None:
    """Photos here say nothing (noise); texts come in 4 clear groups. With the structure
    loss the fused space keeps the text groups; without it, nothing asks it to."""
    rng = np.random.default_rng(0)
    n, groups = 96, 4
    group = np.arange(n) % groups
    centres = rng.standard_normal((groups, 24))
    table = FeatureTable(
        [f"i{i}" for i in range(n)],
        rng.standard_normal((n, 32)).astype(np.float32),
        (centres[group] + 0.3 * rng.standard_normal((n, 24))).astype(np.float32),
        np.ones(n, dtype=bool),
        np.ones(n, dtype=bool),
        [None] * n,
    )

    def same_group_share(weight: float) -> float:
        config = TrainConfig(content_epochs=40, taste_epochs=0, batch_size=32)
        config.text_structure_weight = weight
        vectors = fuse_table(train_fusion(table, [], config, show_progress=False).model, table)
        similarity = vectors @ vectors.T - 2 * np.eye(n)
        nearest = np.argsort(-similarity, axis=1)[:, :5]
        return float((group[nearest] == group[:, None]).mean())

    kept, free = same_group_share(1.0), same_group_share(0.0)
    assert kept > 0.9 and kept > free + 0.1


def test_training_stops_at_its_budget_whatever_the_log() -> None:
    """Co-engaged pairs grow with the log; the batches trained do not grow past the budget,
    and a budget that does not bind changes nothing."""
    rng = np.random.default_rng(1)
    n = 64
    table = random_table(rng, n, image_dim=32, text_dim=24)
    events = [  # a dense log: each shopper engages with many items in one session
        Event(f"e{u}-{k}", f"u{u}", f"i{(u * 7 + k) % n}", "purchase", 1.0, 1e9 + u * 1e4 + k)
        for u in range(40)
        for k in range(12)
    ]
    epochs = {"content_epochs": 3, "taste_epochs": 5, "batch_size": 16}
    tight = train_fusion(
        table,
        events,
        TrainConfig(**epochs, max_content_steps=5, max_taste_steps=7),
        show_progress=False,
    )
    assert tight.steps == {"content": 5, "taste": 7}
    unbounded, default = (
        train_fusion(table, events, config, show_progress=False)
        for config in (
            TrainConfig(**epochs, max_content_steps=10**6, max_taste_steps=10**6),
            TrainConfig(**epochs),
        )
    )
    assert unbounded.steps == {"content": 3 * 4, "taste": 5 * -(-unbounded.taste_pairs // 16)}
    assert unbounded.steps["taste"] > 7  # the epochs alone would take more than the budget
    first, second = unbounded.model.state_dict(), default.model.state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_a_taste_batch_runs_each_item_once_and_pairs_them_as_given() -> None:
    """Items recur across a batch's pairs; fusing each once and gathering must give the loss
    of fusing every pair's sides apart (no dropout in eval mode)."""
    rng = np.random.default_rng(0)
    n = 6
    table = random_table(
        rng,
        n,
        image_dim=12,
        text_dim=6,
        has_image=np.array([True, True, True, False, True, True]),
        has_text=np.array([True, False, True, True, True, True]),
    )
    pairs = np.array([[0, 1], [0, 3], [2, 5], [4, 1]])
    m = model()
    gathered = _taste_loss(m, table, pairs, np.array([], dtype=np.int64), TrainConfig(), rng)
    apart = m.contrastive_loss(
        m.fuse(*table.tensors(pairs[:, 0])), m.fuse(*table.tensors(pairs[:, 1]))
    )
    assert torch.allclose(gathered, apart, atol=1e-6)
