"""Run the frozen towers over the catalog, once per content, resumably.

Photos go through the image tower batch by batch on a pool of threads. Each thread reads,
decodes and encodes its own batch; with a tower that encodes on the calling thread alone
(`single_core_encode`, the ONNX tower in the job) that is one batch per core at once, with
no thread of one forward pass waiting on another that the decoder pre-empted. A tower that
spreads each forward pass over every core encodes one batch at a time, while the other
threads decode. Features are flushed to the cache shard by shard: a killed job loses at
most the shard in flight. A terminal shows a bar; a log gets a line every 30 s.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from tastegraph.embeddings.catalog import CatalogEntry, photos_by_key, texts_by_key
from tastegraph.embeddings.features import FeatureCache
from tastegraph.encoders.base import ImageTower, TextTower
from tastegraph.progress import Progress

log = logging.getLogger(__name__)

SHARD_SIZE = 1024


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


class _PhotoBatches:
    """Reads, decodes and encodes one batch of photos; callable from several threads."""

    def __init__(self, tower: ImageTower, threads: int) -> None:
        self.tower = tower
        self.encode_slots = threading.Semaphore(threads if tower.single_core_encode else 1)

    def __call__(self, batch: Sequence[tuple[str, str]]) -> tuple[int, list[str], np.ndarray]:
        """(photos asked for, keys of those that decoded, their features)."""
        keys: list[str] = []
        pixels: list[torch.Tensor] = []
        for key, path in batch:
            try:
                pixels.append(self.tower.preprocess(Path(path).read_bytes()))
                keys.append(key)
            except Exception as exc:  # a photo changed or vanished since ingest
                log.warning("skipping photo %s: %s", path, exc)
        if not keys:
            return len(batch), keys, np.zeros((0, self.tower.dim), dtype=np.float32)
        with self.encode_slots:
            return len(batch), keys, self.tower.encode(torch.stack(pixels))


def _batches(todo: Sequence[tuple[str, str]], size: int) -> Iterator[Sequence[tuple[str, str]]]:
    return (todo[start : start + size] for start in range(0, len(todo), size))


def _in_order(
    pool: ThreadPoolExecutor,
    work: _PhotoBatches,
    batches: Iterator[Sequence[tuple[str, str]]],
    ahead: int,
) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """`work` over the batches on the pool, results in batch order, with at most `ahead`
    batches submitted beyond the one awaited (memory bounded whatever the catalog's size);
    an error cancels the batches not started."""
    pending: deque[Future[tuple[int, list[str], np.ndarray]]] = deque()
    try:
        for batch in batches:
            pending.append(pool.submit(work, batch))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def extract_image_features(
    entries: Sequence[CatalogEntry],
    tower: ImageTower,
    cache: FeatureCache,
    *,
    batch_size: int = 32,
    threads: int = 1,
    shard_size: int = SHARD_SIZE,
) -> int:
    """Encode every photo not cached yet; returns how many were encoded (bad photos are not)."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    todo = cache.missing_content(photos_by_key(entries))
    if not todo:
        return 0
    writer = ShardWriter(cache, shard_size)
    encode = _PhotoBatches(tower, threads)
    with (
        ThreadPoolExecutor(threads, thread_name_prefix="embed") as pool,
        Progress(len(todo), f"encoding photos ({tower.name})", "photos") as bar,
    ):
        batches = _batches(todo, batch_size)
        for asked, keys, features in _in_order(pool, encode, batches, ahead=2 * threads):
            if keys:
                writer.add(keys, features)
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
