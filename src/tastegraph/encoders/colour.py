"""The colour signature: what colours a photo's subject has, as a small fixed vector.

An ImageNet tower keeps the shape of a garment better than its colour, and the fusion model
keeps even less colour (it learns taste with an item's colour variants as positives). On
H&M's held-out photos a linear reader of the photo-side embedding named the colour 0.58 of
the time, of the raw tower features 0.64, and of this signature 0.78 (throwaway probes on
1,000 held-out items that are not the description evaluation's). The describer reads it
beside the embedding, so a photo-only item is described by its real colours
(`assistant/look.py`).

The subject is the pixels that differ from the background, taken as the median colour of
the photo's border (catalog photos are shot on a plain backdrop); a photo with almost no
such pixels (a full-bleed shot) is read whole. The signature is:
- a joint RGB histogram of the subject, 6 bins a channel (216 numbers, summing to 1);
- a hue histogram weighted by saturation (12), so a bright and a dull red differ;
- the subject's mean and standard deviation per channel (6), and its share of the photo (1).
It speaks the image tower protocol (`encoders/base.py`), so the embed job's extraction,
feature cache and progress serve it as they serve the towers.
"""

from __future__ import annotations

import numpy as np
import torch

from tastegraph.encoders.image import uint8_pixels

RGB_BINS = 6
HUE_BINS = 12
INPUT_SIZE = (96, 64)  # (height, width): colour needs few pixels
BACKGROUND_DISTANCE = 20.0  # RGB distance from the border's colour that counts as subject
MIN_SUBJECT_SHARE = 0.02  # below this the whole photo is read


class ColourSignature:
    name = "colour-signature"
    version = "v2-96x64"  # change it whenever the signature would change (v2: torch resize)
    # numpy on small arrays holds the interpreter lock: one batch at a time, beside decoding
    single_core_encode = False
    dim = RGB_BINS**3 + HUE_BINS + 3 + 3 + 1

    def preprocess(self, image_bytes: bytes) -> torch.Tensor:
        """Decode one photo -> (3, H, W) uint8 pixels at the signature's small size."""
        return uint8_pixels(image_bytes, INPUT_SIZE)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) uint8 pixels -> (B, dim) float32 signatures."""
        if batch.ndim != 4 or batch.shape[1] != 3 or batch.dtype != torch.uint8:
            raise ValueError(f"expected (B, 3, H, W) uint8 pixels, got {tuple(batch.shape)}")
        pixels = batch.permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
        return np.stack([signature(photo) for photo in pixels])


def subject_pixels(photo: np.ndarray) -> tuple[np.ndarray, float]:
    """(n, 3) float32 pixels of the subject of an (H, W, 3) photo, and its share of it."""
    pixels = photo.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    distance = np.linalg.norm(pixels - np.median(border, axis=0), axis=2)  # (H, W)
    subject = distance > BACKGROUND_DISTANCE
    share = float(subject.mean())
    if share < MIN_SUBJECT_SHARE:
        return pixels.reshape(-1, 3), share
    return pixels[subject], share


def signature(photo: np.ndarray) -> np.ndarray:
    """The colour signature (dim,) of one (H, W, 3) uint8 photo."""
    subject, share = subject_pixels(photo)
    bins = np.minimum((subject * (RGB_BINS / 256.0)).astype(np.int64), RGB_BINS - 1)
    cells = (bins[:, 0] * RGB_BINS + bins[:, 1]) * RGB_BINS + bins[:, 2]
    rgb = np.bincount(cells, minlength=RGB_BINS**3) / len(subject)
    hue, saturation = _hue_saturation(subject)
    hue_bins = np.minimum((hue * HUE_BINS).astype(np.int64), HUE_BINS - 1)
    hues = np.bincount(hue_bins, weights=saturation, minlength=HUE_BINS) / len(subject)
    moments = np.concatenate([subject.mean(axis=0), subject.std(axis=0)]) / 255.0
    return np.concatenate([rgb, hues, moments, [share]]).astype(np.float32)


def _hue_saturation(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue in [0, 1) and HSV saturation in [0, 1] of (n, 3) RGB pixels (0 to 255)."""
    r, g, b = (pixels / 255.0).T
    high, low = pixels.max(axis=1) / 255.0, pixels.min(axis=1) / 255.0
    spread = np.where(high > low, high - low, 1.0)
    hue = np.select(
        [high == r, high == g],
        [((g - b) / spread) % 6.0, (b - r) / spread + 2.0],
        (r - g) / spread + 4.0,
    )
    saturation = np.where(high > 0, (high - low) / np.where(high > 0, high, 1.0), 0.0)
    return (hue / 6.0) % 1.0, saturation
