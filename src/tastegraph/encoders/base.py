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

    def preprocess(self, image_bytes: bytes) -> torch.Tensor:
        """Decode one photo into the tower's input, (3, H, W): uint8 pixels for
        EfficientNet-Lite0 (encode scales them), float32 for CLIP.

        Runs in DataLoader workers, so decoding overlaps the forward pass."""
        ...

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) photos from `preprocess`, stacked -> (B, dim) float32 features."""
        ...


class TextTower(Protocol):
    name: str
    version: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (len(texts), dim) float32 features."""
        ...
