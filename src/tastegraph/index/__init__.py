"""The ANN index over item embeddings: exact or HNSW FAISS search, filters, atomic rebuild."""

from __future__ import annotations

from tastegraph.index.build import (
    CATEGORY_KEY,
    build_index,
    index_root,
    item_fields,
    open_index,
    publish_index,
    update_index,
)
from tastegraph.index.filters import FilterFields, PriceRange
from tastegraph.index.item_index import EXACT_THRESHOLD, HNSW_EF_SEARCH, ItemIndex, Kind

__all__ = [
    "CATEGORY_KEY",
    "EXACT_THRESHOLD",
    "HNSW_EF_SEARCH",
    "FilterFields",
    "ItemIndex",
    "Kind",
    "PriceRange",
    "build_index",
    "index_root",
    "item_fields",
    "open_index",
    "publish_index",
    "update_index",
]
