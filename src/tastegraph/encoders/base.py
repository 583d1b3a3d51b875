"""The interface every frozen tower speaks: image towers and text towers alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch


class ImageTower(Protocol):
    name: str  # e.g. "efficientnet-lite0"
    version: str  # changes whenever the features would change (weights, preprocessing)
    dim: int  # feature width
    # True when encode runs on the calling thread alone, with the interpreter lock released,
    # so the embed job encodes one batch per core at once; False when one encode keeps every
    # core busy by itself (torch's threads) or holds the lock, so batches go one at a time.
    single_core_encode: bool

    def preprocess(self, image_bytes: bytes) -> torch.Tensor:
        """Decode one photo into the tower's input, (3, H, W): uint8 pixels for
        EfficientNet-Lite0 (encode scales them), float32 for CLIP.

        Runs on the embed job's threads, beside other threads' forward passes."""
        ...

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) photos from `preprocess`, stacked -> (B, dim) float32 features.
        Safe to call from several threads at once."""
        ...


class TextTower(Protocol):
    name: str
    version: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (len(texts), dim) float32 features."""
        ...


def tower_ids(image_tower: ImageTower, text_tower: TextTower) -> dict[str, str]:
    """The towers as a fusion model's manifest names them: modality -> "name@version"."""
    return {
        "image": f"{image_tower.name}@{image_tower.version}",
        "text": f"{text_tower.name}@{text_tower.version}",
    }
