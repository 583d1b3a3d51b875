"""The ANN index over item embeddings: exact or HNSW FAISS search and filters. The index
job (build, update, publish) is `tastegraph.index.build`."""

from __future__ import annotations

from tastegraph.index.filters import FilterFields, PriceRange
from tastegraph.index.item_index import (
    CATEGORY_KEY,
    EXACT_THRESHOLD,
    HNSW_EF_SEARCH,
    ItemIndex,
    Kind,
    open_index,
)

__all__ = [
    "CATEGORY_KEY",
    "EXACT_THRESHOLD",
    "HNSW_EF_SEARCH",
    "FilterFields",
    "ItemIndex",
    "Kind",
    "PriceRange",
    "open_index",
]
