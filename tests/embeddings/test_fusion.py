from __future__ import annotations

import torch

from tastegraph.embeddings.fusion import FusionConfig, FusionModel


def model() -> FusionModel:
    torch.manual_seed(0)
    return FusionModel(FusionConfig(image_dim=12, text_dim=6, embed_dim=4, hidden_dim=8)).eval()


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
