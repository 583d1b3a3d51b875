"""The embed job on Ray Data, for catalogs that outgrow one machine.

Same contract as extract.py: only content missing from the cache is encoded, and features
reach the cache in shards of `shard_size` rows, so a killed job resumes. Ray actors read the
photos and run the towers; the driver holds the cache and writes every shard. Each actor
loads its tower once, by name: towers are never pickled and shipped to the cluster.

Ray is imported inside the functions: it is an optional dependency (the `models` extra), and
start_local_ray must set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER before the import.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tastegraph.embeddings.catalog import CatalogEntry, photos_by_key, texts_by_key
from tastegraph.embeddings.extract import SHARD_SIZE, ShardWriter
from tastegraph.embeddings.features import FeatureCache
from tastegraph.encoders import load_image_tower, load_text_tower

log = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]
LOOPBACK = "127.0.0.1"


def start_local_ray(num_cpus: int | None = None) -> bool:
    """Connect to the cluster at RAY_ADDRESS, else start Ray on this machine, loopback only.

    Returns whether this call initialised Ray, so the caller calls ray.shutdown() only for
    what it started: that stops a local instance, and disconnects from a cluster."""
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        # Not for a cluster: a driver on a cluster node needs its real address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {
        "log_to_driver": False,  # actors report the photos they skip back to the driver
        "configure_logging": True,
        "logging_level": logging.WARNING,
    }
    if address:
        log.info("connecting to the Ray cluster at %s", address)
        ray.init(address=address, **quiet)
        return True
    _keep_ray_on_loopback()
    # "local" starts a fresh instance even if `ray start` left one running here.
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address=LOOPBACK,
        **quiet,
    )
    gcs_address = str(ray.get_runtime_context().gcs_address)
    if not gcs_address.startswith(f"{LOOPBACK}:"):  # a later Ray changed what keeps it local
        ray.shutdown()
        raise RuntimeError(f"local Ray came up on {gcs_address}, not on {LOOPBACK}; stopped it")
    return True


def _keep_ray_on_loopback() -> None:
    """Make the GCS, raylet and workers listen on 127.0.0.1 only.

    _node_ip_address alone does not: Ray takes the GCS address from the machine's outward IP,
    and its gRPC servers then listen on every interface, unless Windows/macOS mode was on
    when ray was first imported (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0). Whoever imported ray
    before us fixed that choice, so set the flag Ray read from it too (Ray 2.60)."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


class _ImageEncoder:
    """A Ray Data actor: reads, decodes and encodes photos with the tower it loaded once.

    A photo that fails gets zero features and its error, rather than being dropped here, so
    the driver can log the warning where the job's user sees it."""

    def __init__(self, tower_name: str, runtime: str) -> None:
        self.tower = load_image_tower(tower_name, runtime, batch_job=True)

    def __call__(self, batch: Batch) -> Batch:
        keys, paths = batch["key"], batch["path"]
        photos: list[torch.Tensor] = []
        decoded: list[int] = []
        errors = [""] * len(keys)
        for row, path in enumerate(paths):
            try:
                photos.append(self.tower.preprocess(Path(path).read_bytes()))
                decoded.append(row)
            except Exception as exc:  # a photo changed or vanished since ingest
                errors[row] = f"{path}: {exc}"
        features = np.zeros((len(keys), self.tower.dim), dtype=np.float32)
        if photos:
            features[decoded] = self.tower.encode(torch.stack(photos))
        return {"key": keys, "features": features, "error": np.array(errors, dtype=str)}


class _TextEncoder:
    """A Ray Data actor: encodes item texts with the tower it loaded once."""

    def __init__(self, tower_name: str) -> None:
        self.tower = load_text_tower(tower_name)

    def __call__(self, batch: Batch) -> Batch:
        texts = [str(text) for text in batch["text"]]
        return {"key": batch["key"], "features": self.tower.encode(texts)}


def _encode_into(
    rows: list[dict[str, str]],
    encoder: type[_ImageEncoder | _TextEncoder],
    tower_arguments: tuple[str, ...],
    cache: FeatureCache,
    batch_size: int,
    shard_size: int,
) -> int:
    """Encode `rows` on Ray into the cache; returns how many were encoded."""
    import ray.data

    features = ray.data.from_items(rows).map_batches(
        encoder,
        fn_constructor_args=tower_arguments,
        batch_size=batch_size,
        batch_format="numpy",
        # One CPU per actor (Ray then gives torch one thread); the pool grows from one actor
        # to as many as the cluster has CPUs for, so two on a 2-core machine.
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=None),
        num_cpus=1,
    )
    writer = ShardWriter(cache, shard_size)
    # Batches of exactly shard_size rows: each makes one shard, unless photos were skipped.
    for batch in features.iter_batches(batch_size=shard_size, batch_format="numpy"):
        keep = np.ones(len(batch["key"]), dtype=bool)
        if "error" in batch:
            keep = batch["error"] == ""
            for error in batch["error"][~keep]:
                log.warning("skipping photo %s", error)
        if keep.any():
            writer.add(batch["key"][keep].tolist(), batch["features"][keep])
    writer.flush()
    return writer.written


def extract_image_features_ray(
    entries: Sequence[CatalogEntry],
    image_model: str,
    cache: FeatureCache,
    *,
    image_runtime: str = "onnx",
    batch_size: int = 32,
    shard_size: int = SHARD_SIZE,
) -> int:
    """Encode every photo not cached yet on Ray; returns how many were encoded.

    As in the local engine, a photo that fails to decode is skipped and not counted."""
    todo = cache.missing_content(photos_by_key(entries))
    if not todo:
        return 0
    rows = [{"key": key, "path": path} for key, path in todo]
    tower = (image_model, image_runtime)
    return _encode_into(rows, _ImageEncoder, tower, cache, batch_size, shard_size)


def extract_text_features_ray(
    entries: Sequence[CatalogEntry],
    text_model: str,
    cache: FeatureCache,
    *,
    batch_size: int = 256,
    shard_size: int = SHARD_SIZE,
) -> int:
    """Encode every item text not cached yet on Ray; returns how many were encoded."""
    todo = cache.missing_content(texts_by_key(entries))
    if not todo:
        return 0
    rows = [{"key": key, "text": text} for key, text in todo]
    return _encode_into(rows, _TextEncoder, (text_model,), cache, batch_size, shard_size)
