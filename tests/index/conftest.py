"""Fixtures for the index tests: random catalogs and indexes built once per session."""

from __future__ import annotations

import pytest
from index_data import Catalog

from tastegraph.index import ItemIndex


@pytest.fixture(scope="session")
def small() -> Catalog:
    return Catalog(3000, 32)


@pytest.fixture(scope="session")
def small_exact(small: Catalog) -> ItemIndex:
    return ItemIndex.build(small.ids, small.vectors, small.categories, small.prices)


@pytest.fixture(scope="session")
def large() -> Catalog:
    return Catalog(20_000, 64, seed=1)


@pytest.fixture(scope="session")
def large_hnsw(large: Catalog) -> ItemIndex:
    # exact_threshold=1000: filters passing more than 1000 items go through HNSW.
    return ItemIndex.build(
        large.ids,
        large.vectors,
        large.categories,
        large.prices,
        kind="hnsw",
        ef_search=128,
        exact_threshold=1000,
    )
