"""Tower features of a whole catalog as aligned arrays, ready for the fusion model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tastegraph.embeddings.catalog import CatalogEntry
from tastegraph.embeddings.features import FeatureCache


@dataclass
class FeatureTable:
    item_ids: list[str]
    image: np.ndarray  # (N, image_dim) float32; zeros where has_image is False
    text: np.ndarray  # (N, text_dim) float32; zeros where has_text is False
    has_image: np.ndarray  # (N,) bool
    has_text: np.ndarray  # (N,) bool
    variant_of: list[str | None]  # the product each item is a variant of, where known

    @classmethod
    def build(
        cls, entries: Sequence[CatalogEntry], images: FeatureCache, texts: FeatureCache
    ) -> FeatureTable:
        """Rows for the entries whose photo or text has cached features."""
        has_image = np.array([e.image_key in images for e in entries], dtype=bool)
        has_text = np.array([e.text_key in texts for e in entries], dtype=bool)
        keep = has_image | has_text
        kept = [e for e, k in zip(entries, keep, strict=True) if k]
        has_image, has_text = has_image[keep], has_text[keep]
        image = np.zeros((len(kept), images.dim), dtype=np.float32)
        text = np.zeros((len(kept), texts.dim), dtype=np.float32)
        image_rows, text_rows = np.flatnonzero(has_image), np.flatnonzero(has_text)
        image[image_rows] = images.get([kept[i].image_key or "" for i in image_rows])
        text[text_rows] = texts.get([kept[i].text_key or "" for i in text_rows])
        variant_of = [e.variant_of for e in kept]
        return cls([e.item_id for e in kept], image, text, has_image, has_text, variant_of)

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self) -> dict[str, int]:
        return {item_id: row for row, item_id in enumerate(self.item_ids)}

    def tensors(self, rows: np.ndarray | slice) -> tuple[torch.Tensor, ...]:
        """(image, text, has_image, has_text) of the given rows, as tensors."""
        return (
            torch.from_numpy(self.image[rows]),
            torch.from_numpy(self.text[rows]),
            torch.from_numpy(self.has_image[rows]),
            torch.from_numpy(self.has_text[rows]),
        )
