"""Embed one new item as the batch job would: its photo and text through the frozen towers,
then the current fusion model. For a server that takes new items between batch runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tastegraph import registry
from tastegraph.config import Settings
from tastegraph.embeddings.fusion import load_fusion
from tastegraph.encoders import item_text, load_image_tower, load_text_tower
from tastegraph.encoders.base import tower_ids
from tastegraph.store import Item


class ItemEmbedder:
    def __init__(self, workdir: Path, settings: Settings) -> None:
        self.model, manifest = load_fusion(registry.root(workdir, "fusion"))
        self.fusion_version: str = manifest["version"]
        self.image_tower = load_image_tower(settings.image_model, settings.image_runtime)
        self.text_tower = load_text_tower(settings.text_model)
        loaded = tower_ids(self.image_tower, self.text_tower)
        if manifest["towers"] != loaded:
            raise ValueError(
                f"the fusion model was trained on towers {manifest['towers']}, but {loaded} "
                "are loaded; set image_model and text_model to its towers or retrain"
            )

    def embed(self, item: Item, photo: bytes | None) -> np.ndarray:
        """(d,) float32, L2-normalised. Needs a photo or some text."""
        text = item_text(item)
        if photo is None and not text:
            raise ValueError(f"item {item.id!r} has neither a photo nor text to embed")
        image = torch.zeros(1, self.image_tower.dim)
        if photo is not None:
            pixels = self.image_tower.preprocess(photo)[None]  # (1, 3, H, W)
            image = torch.from_numpy(self.image_tower.encode(pixels))
        words = torch.from_numpy(self.text_tower.encode([text or " "]))  # (1, text_dim)
        with torch.inference_mode():
            fused = self.model.fuse(
                image, words, torch.tensor([photo is not None]), torch.tensor([bool(text)])
            )
        return np.asarray(fused[0].numpy(), dtype=np.float32)
