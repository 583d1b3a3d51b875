"""The embed job's photo extraction: several threads, each reading, decoding and encoding a
batch, give every photo its own features, in the cache, whatever finishes first."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from tastegraph.embeddings.catalog import CatalogEntry
from tastegraph.embeddings.extract import extract_image_features
from tastegraph.embeddings.features import FeatureCache
from tastegraph.encoders import EfficientNetLite0Tower
from tastegraph.encoders.onnx_image import OnnxLite0Tower

PHOTOS = 18


def entry(path: Path) -> CatalogEntry:
    return CatalogEntry(
        path.stem, str(path), hashlib.sha256(path.read_bytes()).hexdigest(), "", None
    )


@pytest.fixture(scope="module")
def photos(hm_data: Path) -> list[Path]:
    paths = sorted((hm_data / "images").glob("*/*.jpg"))[::1301][:PHOTOS]
    assert len(paths) == PHOTOS, f"expected {PHOTOS} photos under {hm_data / 'images'}"
    return paths


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def test_threads_give_each_photo_its_own_features(
    photos: list[Path], graph_cache: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a photo")
    entries = (
        [entry(path) for path in photos[:7]]
        + [entry(broken)]
        + [entry(path) for path in photos[7:]]
    )
    job_tower = OnnxLite0Tower(cache=graph_cache, single_core=True)
    cache = FeatureCache(tmp_path / "features", job_tower.dim)

    encoded = extract_image_features(entries, job_tower, cache, batch_size=4, threads=3)

    assert encoded == PHOTOS and len(cache) == PHOTOS
    assert entries[7].image_key not in cache
    reference = OnnxLite0Tower(cache=graph_cache)  # one call over every core, one photo at once
    for item in entries[:7] + entries[8:]:
        assert item.image_path is not None and item.image_key is not None
        alone = reference.encode(reference.preprocess(Path(item.image_path).read_bytes())[None])
        np.testing.assert_allclose(cache.get([item.image_key]), alone, rtol=1e-4, atol=1e-4)


class _CountingTower(EfficientNetLite0Tower):
    """The eager tower, recording how many of its forward passes ever ran at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            return super().encode(batch)
        finally:
            with self.lock:
                self.running -= 1


def test_a_tower_that_spreads_over_the_cores_encodes_one_batch_at_a_time(
    photos: list[Path], tmp_path: Path
) -> None:
    tower = _CountingTower()
    assert not tower.single_core_encode
    cache = FeatureCache(tmp_path, tower.dim)
    assert extract_image_features(
        [entry(p) for p in photos], tower, cache, batch_size=3, threads=3
    ) == (PHOTOS)
    assert tower.most_at_once == 1


def test_threads_below_one_are_refused(photos: list[Path], tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, EfficientNetLite0Tower.dim)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        extract_image_features([entry(photos[0])], EfficientNetLite0Tower(), cache, threads=0)


class _BreakingTower(EfficientNetLite0Tower):
    """The eager tower, failing on its second forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("the tower broke")
        return super().encode(batch)


def test_an_error_stops_the_job_before_the_batches_not_started(
    photos: list[Path], tmp_path: Path
) -> None:
    tower = _BreakingTower()
    cache = FeatureCache(tmp_path, tower.dim)
    entries = [entry(p) for p in photos]
    with pytest.raises(RuntimeError, match="the tower broke"):
        extract_image_features(entries, tower, cache, batch_size=1, threads=2, shard_size=1)
    # 18 batches of one; when the error surfaces, at most the awaited batch and four ahead
    # of it were submitted, and those not started are cancelled.
    assert tower.calls <= 7
    assert len(FeatureCache(tmp_path, tower.dim)) <= 1
