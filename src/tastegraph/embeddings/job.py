"""The offline batch job: tower features for new content, then fused item embeddings."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tastegraph import registry
from tastegraph.config import Settings
from tastegraph.embeddings.catalog import CatalogEntry, load_catalog
from tastegraph.embeddings.extract import extract_image_features, extract_text_features
from tastegraph.embeddings.features import FeatureCache, cache_dir
from tastegraph.embeddings.fusion import FusionModel, load_fusion
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.embeddings.table import FeatureTable
from tastegraph.embeddings.train import (
    TrainConfig,
    TrainResult,
    save_fusion,
    train_fusion,
)
from tastegraph.encoders import load_image_tower, load_text_tower
from tastegraph.encoders.base import ImageTower, TextTower, tower_ids
from tastegraph.encoders.colour import ColourSignature
from tastegraph.store import Store

log = logging.getLogger(__name__)


def fusion_root(workdir: Path) -> Path:
    return registry.root(workdir, "fusion")


@dataclass
class Features:
    entries: list[CatalogEntry]
    table: FeatureTable
    towers: dict[str, str]  # modality -> "name@version"
    encoded_images: int  # photos encoded by this run (the rest came from the cache)
    encoded_texts: int


def extract_photos(
    entries: list[CatalogEntry], tower: ImageTower, cache: FeatureCache, settings: Settings
) -> int:
    """`extract_image_features` with the settings' batch size, threads and shard size."""
    return extract_image_features(
        entries,
        tower,
        cache,
        batch_size=settings.embed_batch_size,
        threads=settings.embed_threads,
        shard_size=settings.embed_shard_size,
    )


def prepare_features(
    store: Store,
    settings: Settings,
    image_tower: ImageTower | None = None,
    text_tower: TextTower | None = None,
) -> Features:
    """Tower features for every item, encoding only content no earlier run encoded."""
    entries = load_catalog(store, settings.variant_attribute)
    image_tower = image_tower or load_image_tower(
        settings.image_model, settings.image_runtime, batch_job=True
    )
    text_tower = text_tower or load_text_tower(settings.text_model)
    images = FeatureCache(
        cache_dir(settings.workdir, image_tower.name, image_tower.version), image_tower.dim
    )
    texts = FeatureCache(
        cache_dir(settings.workdir, text_tower.name, text_tower.version), text_tower.dim
    )
    if settings.embed_engine == "ray":
        encoded_images, encoded_texts = _extract_on_ray(entries, settings, images, texts)
    else:
        encoded_images = extract_photos(entries, image_tower, images, settings)
        encoded_texts = extract_text_features(
            entries, text_tower, texts, shard_size=settings.embed_shard_size
        )
    table = FeatureTable.build(entries, images, texts)
    towers = tower_ids(image_tower, text_tower)
    return Features(entries, table, towers, encoded_images, encoded_texts)


def _extract_on_ray(
    entries: list[CatalogEntry], settings: Settings, images: FeatureCache, texts: FeatureCache
) -> tuple[int, int]:
    from tastegraph.embeddings import ray_engine

    started = ray_engine.start_local_ray()
    try:
        encoded_images = ray_engine.extract_image_features_ray(
            entries,
            settings.image_model,
            images,
            image_runtime=settings.image_runtime,
            batch_size=settings.embed_batch_size,
            shard_size=settings.embed_shard_size,
        )
        encoded_texts = ray_engine.extract_text_features_ray(
            entries, settings.text_model, texts, shard_size=settings.embed_shard_size
        )
    finally:
        if started:
            import ray

            ray.shutdown()
    return encoded_images, encoded_texts


@torch.inference_mode()
def fuse_table(model: FusionModel, table: FeatureTable, batch_size: int = 4096) -> np.ndarray:
    """(N, embed_dim) float32 item embeddings for every row of the table."""
    parts = [
        model.fuse(*table.tensors(slice(start, start + batch_size))).numpy()
        for start in range(0, len(table), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, model.config.embed_dim), np.float32)


def photo_embeddings(
    table: FeatureTable, workdir: Path, embeddings: EmbeddingStore
) -> tuple[list[str], np.ndarray]:
    """(item ids, (N, embed_dim) vectors) for every item of the table with a photo: its
    embedding as if it had no text, which is what a photo-only item gets. Made by the
    fusion model that made `embeddings`."""
    model, _ = load_fusion(fusion_root(workdir), str(embeddings.manifest["fusion_model"]))
    rows = np.flatnonzero(table.has_image)
    return [table.item_ids[r] for r in rows], embed_photos(model, table.image[rows])


@torch.inference_mode()
def embed_photos(model: FusionModel, image: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """(N, embed_dim) float32: the fusion model's embedding of each photo's features alone."""
    parts = [
        model.embed_images(torch.from_numpy(image[start : start + batch_size])).numpy()
        for start in range(0, len(image), batch_size)
    ]
    matrix = np.concatenate(parts) if parts else np.zeros((0, model.config.embed_dim))
    return matrix.astype(np.float32)


def _fingerprint(features: Features, fusion_version: str, colour_version: str) -> str:
    """Changes with any item's content, with which of its features are encoded (a photo that
    failed once and decodes now), with the fusion model and with the colour signature."""
    table = features.table
    encoded = dict(
        zip(
            table.item_ids,
            zip(table.has_image.tolist(), table.has_text.tolist(), strict=True),
            strict=True,
        )
    )
    digest = hashlib.sha256(f"{fusion_version}\x1f{colour_version}".encode())
    for e in features.entries:
        state = encoded.get(e.item_id)
        digest.update(f"{e.item_id}\x1f{e.image_key}\x1f{e.text_key}\x1f{state}\n".encode())
    return digest.hexdigest()


def colour_signatures(
    entries: list[CatalogEntry], item_ids: list[str], settings: Settings
) -> np.ndarray:
    """(len(item_ids), dim) float32: each item's photo colour signature (zeros where it has
    no photo that decodes), made for photos no earlier run made one for. Made here even
    when the towers run on Ray: a signature costs a decode and a resize to 96x64, nothing
    more."""
    colour_tower = ColourSignature()
    folder = cache_dir(settings.workdir, colour_tower.name, colour_tower.version)
    cache = FeatureCache(folder, colour_tower.dim)
    extract_photos(entries, colour_tower, cache, settings)
    photo_of = {e.item_id: e.image_key for e in entries}
    rows = [row for row, item_id in enumerate(item_ids) if photo_of.get(item_id) in cache]
    matrix = np.zeros((len(item_ids), colour_tower.dim), dtype=np.float32)
    matrix[rows] = cache.get([photo_of[item_ids[row]] or "" for row in rows])
    return matrix


@dataclass
class EmbedResult:
    embeddings: EmbeddingStore
    features: Features
    published: bool  # False when nothing changed and the current version was kept
    seconds: float


def run_embed(
    store: Store,
    settings: Settings,
    image_tower: ImageTower | None = None,
    text_tower: TextTower | None = None,
) -> EmbedResult:
    """Encode new content, fuse every item, and publish a new embedding store version."""
    start = time.perf_counter()
    model, fusion = load_fusion(fusion_root(settings.workdir))
    features = prepare_features(store, settings, image_tower, text_tower)
    if fusion["towers"] != features.towers:
        raise ValueError(
            f"the fusion model {fusion['version']} was trained on towers {fusion['towers']}, "
            f"but the embed job uses {features.towers}; run `tastegraph train embeddings` again"
        )
    fingerprint = _fingerprint(features, fusion["version"], ColourSignature.version)
    try:
        current = EmbeddingStore.open(settings.workdir)
        if current.manifest.get("fingerprint") == fingerprint:
            return EmbedResult(current, features, False, time.perf_counter() - start)
    except FileNotFoundError:
        pass
    vectors = fuse_table(model, features.table)
    colours = colour_signatures(features.entries, features.table.item_ids, settings)
    manifest = {
        "created_at": time.time(),
        "towers": features.towers,
        "fusion_model": fusion["version"],
        "fingerprint": fingerprint,
        "items_with_image": int(features.table.has_image.sum()),
        "items_with_text": int(features.table.has_text.sum()),
        "colour_signature": f"{ColourSignature.name}@{ColourSignature.version}",
    }
    folder = EmbeddingStore.publish(
        settings.workdir, features.table.item_ids, vectors, manifest, colours
    )
    log.debug("published %d item embeddings to %s", len(vectors), folder)
    return EmbedResult(EmbeddingStore(folder), features, True, time.perf_counter() - start)


def train_fusion_model(
    store: Store, settings: Settings, config: TrainConfig
) -> tuple[TrainResult, Path]:
    """Encode what is not cached yet, train the fusion model on the store's catalog and
    events, and publish it; returns the training result and the published folder."""
    features = prepare_features(store, settings)
    result = train_fusion(features.table, list(store.iter_events()), config)
    return result, save_fusion(result, fusion_root(settings.workdir), features.towers, config)
