"""Any CLIP checkpoint on disk (transformers layout) as an image tower and a text tower.

The two towers share one model and one embedding space, so an image and a text can be
compared directly; both return L2-normalised features (cosine similarity = dot product).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tastegraph.encoders.image import decode_rgb, file_digest, to_normalised_tensor
from tastegraph.encoders.text import quiet_transformers_progress

logger = logging.getLogger(__name__)

# OpenAI CLIP's pixel statistics; a preprocessor_config.json beside the weights overrides them.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHT_PATTERNS = ("model.safetensors", "model-*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json")
TEXT_BATCH_SIZE = 64


@dataclass(frozen=True)
class ClipPreprocessing:
    size: int  # the side of the square the vision model takes (its config's image_size)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class ClipImageTower:
    """CLIP's vision side. Photos are resized (bicubic) so the short side is `size`, then
    centre-cropped to a square: CLIP's own preprocessing, so features match the checkpoint's."""

    def __init__(self, model: Any, preprocessing: ClipPreprocessing, name: str, version: str):
        self.model = model
        self.preprocessing = preprocessing
        self.name = name
        self.version = version
        self.single_core_encode = False  # torch spreads each forward pass over its threads
        self.dim: int = model.config.projection_dim

    def preprocess(self, image_bytes: bytes) -> torch.Tensor:
        """Decode one photo -> (3, size, size) float32."""
        prep = self.preprocessing
        image = resize_and_centre_crop(decode_rgb(image_bytes), prep.size)
        return to_normalised_tensor(image, prep.mean, prep.std)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, size, size) preprocessed photos -> (B, dim) float32, unit length."""
        size = self.preprocessing.size
        if batch.ndim != 4 or tuple(batch.shape[1:]) != (3, size, size):
            raise ValueError(f"expected a (B, 3, {size}, {size}) batch, got {tuple(batch.shape)}")
        with torch.inference_mode():
            output = self.model.get_image_features(pixel_values=batch.to(torch.float32))
        return _unit_rows(_features_of(output))


class ClipTextTower:
    """CLIP's text side; texts longer than the model's context are truncated."""

    def __init__(self, model: Any, tokenizer: Any, name: str, version: str):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.version = version
        self.dim: int = model.config.projection_dim
        self.max_length: int = model.config.text_config.max_position_embeddings

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (len(texts), dim) float32, unit length; "" is allowed."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one str; wrap it in a list")
        parts = [self._encode_batch(batch) for batch in _batches(list(texts), TEXT_BATCH_SIZE)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            output = self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
        return _unit_rows(_features_of(output))


def load_clip(directory: str | Path) -> tuple[ClipImageTower, ClipTextTower]:
    """Load a CLIP checkpoint saved by transformers (config.json, weights, tokenizer files).

    Reads local files only. Raises FileNotFoundError when the directory or its checkpoint
    files are missing and ValueError when the checkpoint is not a CLIP model."""
    from transformers import AutoTokenizer, CLIPModel

    path = Path(directory).expanduser().resolve()
    weights = _checkpoint_files(path)
    with quiet_transformers_progress():
        model = CLIPModel.from_pretrained(path, local_files_only=True)
    model.eval()  # type: ignore[no-untyped-call]
    model.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    logger.info("loaded CLIP checkpoint from %s", path)
    name = f"clip:{path.name}"
    image_version = file_digest([*weights, *_existing(path, ("preprocessor_config.json",))])
    text_version = file_digest([*weights, *_existing(path, TOKENIZER_FILES)])
    return (
        ClipImageTower(model, _preprocessing(path, model.config), name, image_version),
        ClipTextTower(model, tokenizer, name, text_version),
    )


def resize_and_centre_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale so the short side is `size` (bicubic), then cut the centred size x size square."""
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    resized = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def _checkpoint_files(path: Path) -> list[Path]:
    """The weight files of the CLIP checkpoint in path, or a clear error saying what is wrong."""
    if not path.is_dir():
        raise FileNotFoundError(f"CLIP checkpoint directory {path} does not exist")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no CLIP checkpoint in {path}: config.json is missing")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type != "clip":
        raise ValueError(
            f"{config_path} describes a {model_type!r} model; load_clip reads CLIP checkpoints "
            "(model_type 'clip') saved by transformers"
        )
    weights = sorted({file for pattern in WEIGHT_PATTERNS for file in path.glob(pattern)})
    if not weights:
        raise FileNotFoundError(
            f"no CLIP weights in {path}: expected model.safetensors, model-*.safetensors "
            "or pytorch_model*.bin"
        )
    return weights


def _existing(path: Path, names: Sequence[str]) -> list[Path]:
    return [path / name for name in names if (path / name).is_file()]


def _preprocessing(path: Path, config: Any) -> ClipPreprocessing:
    """Input size from the model config; mean/std from preprocessor_config.json if present."""
    processor: dict[str, Any] = {}
    processor_path = path / "preprocessor_config.json"
    if processor_path.is_file():
        processor = json.loads(processor_path.read_text())
    mean = tuple(processor.get("image_mean", CLIP_MEAN))
    std = tuple(processor.get("image_std", CLIP_STD))
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"{processor_path}: image_mean and image_std need 3 values each")
    return ClipPreprocessing(int(config.vision_config.image_size), mean, std)


def _features_of(output: Any) -> torch.Tensor:
    """The projected features from get_*_features, which returns a plain tensor in older
    transformers and a BaseModelOutputWithPooling (features in pooler_output) in 5.x."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"unexpected CLIP feature output of type {type(output).__name__}")


def _unit_rows(features: torch.Tensor) -> np.ndarray:
    unit = torch.nn.functional.normalize(features.to(torch.float32), dim=-1)
    return unit.numpy().astype(np.float32, copy=False)


def _batches(texts: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]
