"""Run the frozen towers over the catalog, once per content, resumably.

Photos are read and decoded by DataLoader workers while the main process runs the image
tower, and features are flushed to the cache shard by shard: a killed job loses at most
the shard in flight. A terminal shows a bar; a log gets a line every 30 s with the time left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tastegraph.embeddings.catalog import CatalogEntry, photos_by_key, texts_by_key
from tastegraph.embeddings.features import FeatureCache
from tastegraph.encoders.base import ImageTower, TextTower
from tastegraph.progress import Progress

log = logging.getLogger(__name__)

SHARD_SIZE = 1024


class _Photos(Dataset[tuple[str, torch.Tensor | None]]):
    def __init__(self, keys_and_paths: Sequence[tuple[str, str]], tower: ImageTower) -> None:
        self.keys_and_paths = keys_and_paths
        self.tower = tower

    def __len__(self) -> int:
        return len(self.keys_and_paths)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor | None]:
        key, path = self.keys_and_paths[index]
        try:
            return key, self.tower.preprocess(Path(path).read_bytes())
        except Exception as exc:  # a photo changed or vanished since ingest
            log.warning("skipping photo %s: %s", path, exc)
            return key, None


def _collate(
    batch: list[tuple[str, torch.Tensor | None]],
) -> tuple[list[str], torch.Tensor, int]:
    """The photos that decoded, stacked, and how many were asked for."""
    good = [(key, x) for key, x in batch if x is not None]
    stacked = torch.stack([x for _, x in good]) if good else torch.empty(0)
    return [key for key, _ in good], stacked, len(batch)


class ShardWriter:
    """Buffers features and writes a cache shard every `size` rows."""

    def __init__(self, cache: FeatureCache, size: int) -> None:
        self.cache, self.size = cache, size
        self.keys: list[str] = []
        self.features: list[np.ndarray] = []
        self.written = 0  # rows now durable in the cache

    def add(self, keys: list[str], features: np.ndarray) -> None:
        self.keys += keys
        self.features.append(features)
        if len(self.keys) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.keys:
            self.cache.add(self.keys, np.concatenate(self.features))
            self.written += len(self.keys)
            self.keys, self.features = [], []


def extract_image_features(
    entries: Sequence[CatalogEntry],
    tower: ImageTower,
    cache: FeatureCache,
    *,
    batch_size: int = 32,
    workers: int = 1,
    shard_size: int = SHARD_SIZE,
) -> int:
    """Encode every photo not cached yet; returns how many were encoded (bad photos are not)."""
    todo = cache.missing_content(photos_by_key(entries))
    if not todo:
        return 0
    loader_options: dict[str, Any] = {"num_workers": workers}
    if workers > 0:
        loader_options |= {"prefetch_factor": 4, "persistent_workers": False}
    loader = DataLoader(
        _Photos(todo, tower), batch_size=batch_size, collate_fn=_collate, **loader_options
    )
    writer = ShardWriter(cache, shard_size)
    with Progress(len(todo), f"encoding photos ({tower.name})", "photos") as bar:
        for keys, batch, asked in loader:
            if keys:
                writer.add(keys, tower.encode(batch))
            bar.update(asked)
    writer.flush()
    return writer.written


def extract_text_features(
    entries: Sequence[CatalogEntry],
    tower: TextTower,
    cache: FeatureCache,
    *,
    batch_size: int = 256,
    shard_size: int = SHARD_SIZE,
) -> int:
    """Encode every item text not cached yet; returns how many were encoded."""
    todo = cache.missing_content(texts_by_key(entries))
    writer = ShardWriter(cache, shard_size)
    with Progress(len(todo), f"encoding texts ({tower.name})", "texts") as bar:
        for start in range(0, len(todo), batch_size):
            keys, texts = zip(*todo[start : start + batch_size], strict=True)
            writer.add(list(keys), tower.encode(texts))
            bar.update(len(keys))
    writer.flush()
    return writer.written
