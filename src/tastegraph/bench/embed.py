"""Embed-job speed: end-to-end photos/s against the raw image-tower forward pass.

The raw pass encodes photos already decoded into tensors, so it is the ceiling the job
(read, decode, resize, encode, write the cache) can approach. The incremental run adds 1%
new photos to a cache holding the rest and is compared with the full run.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import torch

from tastegraph.embeddings.catalog import CatalogEntry
from tastegraph.embeddings.extract import extract_image_features
from tastegraph.embeddings.features import FeatureCache
from tastegraph.encoders.base import ImageTower
from tastegraph.encoders.image import EfficientNetLite0Tower

BATCH = 32
RATIO_TARGET = 0.9
INCREMENTAL_TARGET = 0.05


def photo_entries(paths: list[Path]) -> list[CatalogEntry]:
    return [
        CatalogEntry(p.stem, str(p), hashlib.sha256(p.read_bytes()).hexdigest(), "", None)
        for p in paths
    ]


def raw_tower_seconds(tower: ImageTower, paths: list[Path]) -> float:
    """Forward passes only, on photos decoded beforehand."""
    inputs = torch.stack([tower.preprocess(p.read_bytes()) for p in paths])
    tower.encode(inputs[:BATCH])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(inputs), BATCH):
        tower.encode(inputs[i : i + BATCH])
    return time.perf_counter() - start


def job_seconds(
    tower: ImageTower, entries: list[CatalogEntry], cache_dir: Path, workers: int
) -> float:
    start = time.perf_counter()
    cache = FeatureCache(cache_dir, tower.dim)
    extract_image_features(entries, tower, cache, batch_size=BATCH, workers=workers)
    return time.perf_counter() - start


def run(
    data_dir: Path, images: int = 512, workers: int = 1, full: bool = False
) -> dict[str, float]:
    photos = sorted((data_dir / "images").glob("*/*.jpg"))
    if len(photos) < 2:
        raise FileNotFoundError(f"no photos under {data_dir / 'images'}")
    n = len(photos) if full else min(images, len(photos) - 1)
    extra = max(1, n // 100)
    tower = EfficientNetLite0Tower()
    raw_n = min(n, images)
    entries = photo_entries(photos[: n - extra])
    added = photo_entries(photos[n - extra : n])
    # The baseline runs before and after the job, so a change in machine load during the
    # run shifts both sides of the ratio alike.
    raw_before = raw_tower_seconds(tower, photos[:raw_n])
    with tempfile.TemporaryDirectory(prefix="tastegraph-bench-") as tmp:
        job_s = job_seconds(tower, entries, Path(tmp), workers)
        raw_after = raw_tower_seconds(tower, photos[:raw_n])
        incremental_s = job_seconds(tower, entries + added, Path(tmp), workers)
    raw_s = (raw_before + raw_after) / 2
    figures = {
        "photos": float(len(entries)),
        "raw_photos_per_s": raw_n / raw_s,
        "raw_spread": abs(raw_before - raw_after) / raw_s,
        "job_photos_per_s": len(entries) / job_s,
        "job_s": job_s,
        "incremental_photos": float(extra),
        "incremental_s": incremental_s,
        "threads": float(torch.get_num_threads()),
    }
    _print(figures, workers)
    return figures


def _print(f: dict[str, float], workers: int) -> None:
    ratio = f["job_photos_per_s"] / f["raw_photos_per_s"]
    share = f["incremental_s"] / f["job_s"]
    ok = {True: "meets", False: "MISSES"}
    threads = f"{f['threads']:.0f} torch threads, {workers} decode worker(s)"
    print(f"Embed job, image tower EfficientNet-Lite0, {threads}")
    print(
        f"  baseline: raw tower forward   {f['raw_photos_per_s']:8.1f} photos/s "
        f"(before and after the job differ by {f['raw_spread']:.0%}; over 10%: a noisy machine)"
    )
    print(
        f"  embed job end to end          {f['job_photos_per_s']:8.1f} photos/s "
        f"({f['photos']:,.0f} photos in {f['job_s']:.1f} s)"
    )
    print(f"  job / raw = {ratio:.2f} (target >= {RATIO_TARGET}: {ok[ratio >= RATIO_TARGET]})")
    verdict = ok[share <= INCREMENTAL_TARGET]
    print(
        f"  incremental, {f['incremental_photos']:.0f} new photos (1%): "
        f"{f['incremental_s']:.2f} s = {share:.1%} of the full run "
        f"(target <= {INCREMENTAL_TARGET:.0%}: {verdict})"
    )
