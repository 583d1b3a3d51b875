"""Build, update and publish the item index as a versioned artifact under <workdir>/index/.

A rebuild writes a whole new version and then moves CURRENT (artifacts.publish_version),
so readers keep the old version until the new one is complete.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from tastegraph import registry
from tastegraph.artifacts import publish_version
from tastegraph.config import Settings
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.index.item_index import (
    CATEGORY_KEY,
    EXACT_THRESHOLD,
    HNSW_EF_SEARCH,
    ItemIndex,
    Kind,
    open_index,
)
from tastegraph.store import Store

log = logging.getLogger(__name__)

_COMPARE_CHUNK = 65_536


def index_root(workdir: Path) -> Path:
    return registry.root(workdir, "index")


def publish_index(index: ItemIndex, workdir: Path) -> Path:
    """Write `index` as a new version and make it current; returns the version folder."""
    folder = publish_version(index_root(workdir), index.save)
    log.info("published a %s index of %d items to %s", index.kind, len(index), folder)
    return folder


def index_options(settings: Settings) -> dict[str, Any]:
    """The settings' index options, as keywords of build_index and update_index."""
    return {
        "category_key": settings.index_category_key,
        "kind": settings.index_kind,
        "exact_threshold": settings.index_exact_threshold,
        "ef_search": settings.index_ef_search,
    }


def build_index(
    embeddings: EmbeddingStore,
    store: Store,
    workdir: Path,
    *,
    category_key: str = CATEGORY_KEY,
    kind: Kind = "auto",
    exact_threshold: int = EXACT_THRESHOLD,
    ef_search: int = HNSW_EF_SEARCH,
) -> Path:
    """Index every embedded item, with category and price from the store, and publish it."""
    categories, prices = item_fields(store, embeddings.ids, category_key)
    index = ItemIndex.build(
        embeddings.ids,
        np.asarray(embeddings.vectors),  # (N, d) float32, memory-mapped
        categories,
        prices,
        kind=kind,
        exact_threshold=exact_threshold,
        ef_search=ef_search,
        metadata=_metadata(embeddings, category_key, kind),
    )
    return publish_index(index, workdir)


def update_index(
    embeddings: EmbeddingStore,
    store: Store,
    workdir: Path,
    *,
    category_key: str = CATEGORY_KEY,
    kind: Kind = "auto",
    exact_threshold: int = EXACT_THRESHOLD,
    ef_search: int = HNSW_EF_SEARCH,
) -> Path:
    """Add items that are new in `embeddings` to the current index and publish the result.

    Every item's category and price is re-read from the store. When an incremental add
    would be wrong (no index yet, items removed, an indexed vector changed, another
    dimension or category key, or an exact "auto" index grown past its threshold) the
    index is rebuilt instead.
    """
    options: dict[str, Any] = {
        "category_key": category_key,
        "kind": kind,
        "exact_threshold": exact_threshold,
        "ef_search": ef_search,
    }
    try:
        index = open_index(workdir)
    except FileNotFoundError:
        return build_index(embeddings, store, workdir, **options)
    reason = _rebuild_reason(index, embeddings, category_key, kind, exact_threshold)
    if reason:
        log.info("rebuilding the item index: %s", reason)
        return build_index(embeddings, store, workdir, **options)
    rows = [row for row, item_id in enumerate(embeddings.ids) if item_id not in index]
    new_ids = [embeddings.ids[row] for row in rows]
    new_vectors = np.ascontiguousarray(embeddings.vectors[rows])  # (n_new, d) float32
    categories, prices = item_fields(store, index.ids + new_ids, category_key)
    index.add(new_ids, new_vectors)
    index.replace_fields(categories, prices)
    index.ef_search = ef_search
    index.exact_threshold = exact_threshold
    index.metadata |= _metadata(embeddings, category_key, kind)
    log.info("added %d new items to the index (%d in all)", len(new_ids), len(index))
    return publish_index(index, workdir)


def item_fields(
    store: Store, ids: list[str], category_key: str
) -> tuple[list[str | None], list[float | None]]:
    """Category (the `category_key` attribute, as text) and price of each item, in order."""
    wanted = set(ids)
    found: dict[str, tuple[str | None, float | None]] = {}
    for item in store.iter_items():
        if item.id in wanted:
            value = item.attributes.get(category_key)
            category = None if value is None or value == "" else str(value)
            found[item.id] = (category, item.price)
    missing = len(wanted) - len(found)
    if missing:
        log.warning("%d embedded items are not in the store: no category or price", missing)
    fields = [found.get(item_id, (None, None)) for item_id in ids]
    return [category for category, _ in fields], [price for _, price in fields]


def _metadata(embeddings: EmbeddingStore, category_key: str, kind: Kind) -> dict[str, Any]:
    return {
        "embeddings_version": embeddings.version,
        "fusion_model": embeddings.manifest.get("fusion_model"),
        "category_key": category_key,
        "kind_requested": kind,
    }


def _rebuild_reason(
    index: ItemIndex,
    embeddings: EmbeddingStore,
    category_key: str,
    kind: Kind,
    exact_threshold: int,
) -> str | None:
    """Why the current index cannot simply be extended, or None if it can."""
    vectors = embeddings.vectors  # (N, d) float32, memory-mapped
    if vectors.shape[1] != index.dim:
        return f"dimension changed from {index.dim} to {vectors.shape[1]}"
    if index.metadata.get("category_key") != category_key:
        return f"category key changed to {category_key!r}"
    wanted_kind = kind
    if kind == "auto":
        wanted_kind = "exact" if len(embeddings) < exact_threshold else "hnsw"
    if wanted_kind != index.kind:
        return f"{len(embeddings)} items call for a {wanted_kind} index, not {index.kind}"
    missing = [item_id for item_id in index.ids if item_id not in embeddings]
    if missing:
        return f"{len(missing)} indexed items have no embedding any more, e.g. {missing[0]!r}"
    ids = index.ids
    position = {item_id: row for row, item_id in enumerate(embeddings.ids)}
    for start in range(0, len(ids), _COMPARE_CHUNK):
        chunk = ids[start : start + _COMPARE_CHUNK]
        stored = index.index.reconstruct_n(start, len(chunk))  # (c, d) float32
        rows = [position[item_id] for item_id in chunk]
        if not np.array_equal(stored, vectors[rows]):
            return "indexed item vectors changed (new embeddings)"
    return None
