"""Building, publishing, opening and updating the index from an EmbeddingStore and a store."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest
from index_data import unit_vectors

from tastegraph.artifacts import current_version
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.index import ItemIndex, open_index
from tastegraph.index.build import build_index, index_root, publish_index, update_index
from tastegraph.store import Item, SQLiteStore

GROUPS = ["Garment Upper body", "Garment Lower body", "Shoes", "Accessories"]


def make_items(n: int, start: int = 0) -> list[Item]:
    """H&M-like items: product_group as attribute, a price for most, no group for some."""
    items = []
    for i in range(start, start + n):
        attributes = {"product_group": GROUPS[i % 4], "colour_group": "Black"}
        if i % 10 == 9:
            attributes = {"colour_group": "White"}  # no product_group
        price = None if i % 7 == 6 else round(0.01 * (i % 50), 4)
        items.append(Item(f"{i:010d}", f"item {i}", None, attributes, price))
    return items


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    vectors = unit_vectors(np.random.default_rng(5), 200, 16)
    ids = [f"{i:010d}" for i in range(200)]
    EmbeddingStore.publish(tmp_path, ids, vectors, {"fusion_model": "f1"})
    with SQLiteStore(tmp_path / "store.db") as store:
        store.add_items(make_items(200))
    return tmp_path


def test_build_publish_and_open(workdir: Path) -> None:
    embeddings = EmbeddingStore.open(workdir)
    with SQLiteStore(workdir / "store.db") as store:
        folder = build_index(embeddings, store, workdir)
    assert current_version(index_root(workdir)) == folder
    index = open_index(workdir)
    assert index.version == folder.name and index.kind == "exact" and len(index) == 200
    assert index.metadata["embeddings_version"] == embeddings.version
    assert index.metadata["category_key"] == "product_group"
    assert index.category("0000000002") == "Shoes" and index.category("0000000009") is None
    assert index.price("0000000006") is None and index.price("0000000003") == 0.03
    # Nearest items agree with the embedding store's exact search.
    item = embeddings.ids[17]
    assert [i for i, _ in index.similar(item, 5)] == [i for i, _ in embeddings.similar(item, 5)]
    got = index.search(embeddings.vector(item), 50, categories={"Shoes"}, price_range=(0.1, 0.3))
    assert got[0] and all(
        index.category(i) == "Shoes" and 0.1 <= (index.price(i) or -1) <= 0.3 for i, _ in got[0]
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"kind", "count", "dim", "embeddings_version", "created_at"} <= set(manifest)


def test_open_without_an_index_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="build one first"):
        open_index(tmp_path)


def test_a_failed_rebuild_leaves_the_old_version_current(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embeddings = EmbeddingStore.open(workdir)
    with SQLiteStore(workdir / "store.db") as store:
        first = build_index(embeddings, store, workdir)

        def crash(index: object, path: str) -> None:
            Path(path).write_bytes(b"half an index")
            raise RuntimeError("disk full")

        monkeypatch.setattr(faiss, "write_index", crash)
        with pytest.raises(RuntimeError, match="disk full"):
            build_index(embeddings, store, workdir, kind="hnsw")
    assert current_version(index_root(workdir)) == first
    assert open_index(workdir).kind == "exact"
    assert sorted(p.name for p in index_root(workdir).iterdir()) == ["CURRENT", first.name]


def test_publishing_a_new_version_moves_current(workdir: Path) -> None:
    embeddings = EmbeddingStore.open(workdir)
    with SQLiteStore(workdir / "store.db") as store:
        first = build_index(embeddings, store, workdir)
    reader = open_index(workdir)  # a server holding the old version keeps it
    index = ItemIndex.build(embeddings.ids, np.asarray(embeddings.vectors), kind="hnsw")
    second = publish_index(index, workdir)
    assert second != first and open_index(workdir).kind == "hnsw"
    assert reader.kind == "exact" and (first / "index.faiss").is_file()


def test_update_adds_new_items_and_refreshes_prices(workdir: Path) -> None:
    with SQLiteStore(workdir / "store.db") as store:
        first = build_index(EmbeddingStore.open(workdir), store, workdir)
        old = EmbeddingStore.open(workdir)
        new_vectors = unit_vectors(np.random.default_rng(6), 20, 16)
        ids = [*old.ids, *(f"{i:010d}" for i in range(200, 220))]
        vectors = np.concatenate([np.asarray(old.vectors), new_vectors])
        EmbeddingStore.publish(workdir, ids, vectors, {"fusion_model": "f1"})
        store.add_items(make_items(20, start=200))
        store.add_items([Item("0000000003", "item 3", None, {}, 9.5)], replace=True)
        embeddings = EmbeddingStore.open(workdir)
        second = update_index(embeddings, store, workdir)
    assert second != first
    index = open_index(workdir)
    assert len(index) == 220 and index.ids == ids  # old rows kept, new ones appended
    assert index.metadata["embeddings_version"] == embeddings.version
    assert index.price("0000000003") == 9.5 and index.category("0000000003") is None
    assert index.category("0000000202") == "Shoes"
    (top,) = index.search(new_vectors[5], 1)
    assert top[0][0] == "0000000205"


@pytest.mark.parametrize("count", [200, 150])  # all items re-embedded; 50 items dropped
def test_update_rebuilds_when_indexed_vectors_changed(workdir: Path, count: int) -> None:
    with SQLiteStore(workdir / "store.db") as store:
        build_index(EmbeddingStore.open(workdir), store, workdir)
        retrained = unit_vectors(np.random.default_rng(7), count, 16)
        ids = [f"{i:010d}" for i in range(count)]
        EmbeddingStore.publish(workdir, ids, retrained, {"fusion_model": "f2"})
        update_index(EmbeddingStore.open(workdir), store, workdir)
    index = open_index(workdir)
    assert index.ids == ids
    assert index.search(retrained[3], 1)[0][0][0] == ids[3]


def test_update_without_an_index_builds_one(workdir: Path) -> None:
    with SQLiteStore(workdir / "store.db") as store:
        folder = update_index(EmbeddingStore.open(workdir), store, workdir)
    assert current_version(index_root(workdir)) == folder and len(open_index(workdir)) == 200
