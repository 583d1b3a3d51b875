"""The fusion model ("catalog CLIP"): trainable heads over frozen tower features.

Image and text features are mapped into one shared, L2-normalised space. An item's
embedding fuses both modalities and falls back to the image alone when it has no text
(or to the text alone when it has no photo).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from tastegraph import registry


@dataclass
class FusionConfig:
    image_dim: int = 1280  # image tower feature width
    text_dim: int = 384  # text tower feature width
    embed_dim: int = 256  # width of the shared space
    hidden_dim: int = 512  # width of each head's hidden layer
    dropout: float = 0.1
    init_temperature: float = 0.07  # CLIP's initial softmax temperature

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _head(in_dim: int, config: FusionConfig) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(in_dim),
        nn.Linear(in_dim, config.hidden_dim),
        nn.GELU(),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden_dim, config.embed_dim),
    )


class FusionModel(nn.Module):
    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        self.image_head = _head(config.image_dim, config)
        self.text_head = _head(config.text_dim, config)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / config.init_temperature)))

    def embed_images(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_head(features), dim=-1)  # (B, E)

    def embed_texts(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(features), dim=-1)  # (B, E)

    def fuse(
        self,
        image: torch.Tensor,  # (B, image_dim); rows without a photo are ignored
        text: torch.Tensor,  # (B, text_dim); rows without text are ignored
        has_image: torch.Tensor,  # (B,) bool
        has_text: torch.Tensor,  # (B,) bool
    ) -> torch.Tensor:
        """(B, E) item embeddings: the normalised sum of the modalities each item has."""
        return self.combine(self.embed_images(image), self.embed_texts(text), has_image, has_text)

    @staticmethod
    def combine(
        image_side: torch.Tensor,
        text_side: torch.Tensor,
        has_image: torch.Tensor,
        has_text: torch.Tensor,
    ) -> torch.Tensor:
        """The normalised sum of the embedded modalities each item has."""
        return F.normalize(image_side * has_image[:, None] + text_side * has_text[:, None], dim=-1)

    def contrastive_loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE: row i of `a` matches row i of `b`; other rows are negatives."""
        scale = self.logit_scale.clamp(max=math.log(100)).exp()
        logits = scale * a @ b.T  # (B, B)
        target = torch.arange(len(a), device=a.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def load_fusion(root: Path, version: str | None = None) -> tuple[FusionModel, dict[str, Any]]:
    """The current fusion model under `root` (see `registry`), or the named version, in eval
    mode, and its manifest with its version."""
    if version is None:
        missing = f"no fusion model in {root}; run `tastegraph train embeddings` first"
        folder, manifest = registry.current_manifest(root, "fusion", missing)
    else:
        folder = root / version
        if not (folder / "manifest.json").is_file():
            raise FileNotFoundError(f"fusion model {version} is gone from {root}")
        manifest = registry.read_manifest(folder, "fusion") | {
            "version": version,
            "path": str(folder),
        }
    model = FusionModel(FusionConfig(**manifest["model_config"]))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    return model, manifest
