"""ItemIndex: exact and HNSW search against brute force, filters, add, save/load, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index_data import Catalog, unit_vectors

from tastegraph.index import ItemIndex
from tastegraph.index import item_index as item_index_module


def assert_same(got: list[list[tuple[str, float]]], want: list[list[tuple[str, float]]]) -> None:
    assert [[i for i, _ in row] for row in got] == [[i for i, _ in row] for row in want]
    got_scores = np.array([s for row in got for _, s in row])
    want_scores = np.array([s for row in want for _, s in row])
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)


def recall(got: list[list[tuple[str, float]]], want: list[list[tuple[str, float]]]) -> float:
    hits = sum(len({i for i, _ in g} & {i for i, _ in w}) for g, w in zip(got, want, strict=True))
    return hits / sum(len(w) for w in want)


def test_exact_index_equals_brute_force(small: Catalog, small_exact: ItemIndex) -> None:
    assert small_exact.kind == "exact"
    assert_same(small_exact.search(small.queries, 10), small.truth(small.queries, 10))
    # One (d,) query gives one list; a batch of one gives the same.
    one = small_exact.search(small.queries[0], 10)
    assert len(one) == 1
    assert_same(one, small.truth(small.queries[:1], 10))


def test_auto_kind_picks_exact_below_the_threshold(small: Catalog) -> None:
    assert ItemIndex.build(small.ids, small.vectors, exact_threshold=3001).kind == "exact"
    assert ItemIndex.build(small.ids, small.vectors, exact_threshold=3000).kind == "hnsw"
    assert ItemIndex.build(small.ids[:10], small.vectors[:10], kind="hnsw").kind == "hnsw"


def test_hnsw_recall_at_10_against_exact(large: Catalog, large_hnsw: ItemIndex) -> None:
    assert large_hnsw.kind == "hnsw"
    got = large_hnsw.search(large.queries, 10)
    assert all(len(row) == 10 for row in got)
    assert recall(got, large.truth(large.queries, 10)) >= 0.95


def test_k_larger_than_the_catalog_returns_every_item(small: Catalog) -> None:
    index = ItemIndex.build(small.ids[:5], small.vectors[:5], kind="hnsw")
    for item_index in (index, ItemIndex.build(small.ids[:5], small.vectors[:5])):
        (row,) = item_index.search(small.queries[0], 50)
        assert sorted(i for i, _ in row) == small.ids[:5]


def passing_rows(
    catalog: Catalog,
    categories: set[str] | None = None,
    price_range: tuple[float | None, float | None] | None = None,
    exclude: set[str] | None = None,
) -> np.ndarray:
    mask = np.ones(len(catalog.ids), bool)
    if categories is not None:
        mask &= np.array([c in categories for c in catalog.categories])
    if price_range is not None:
        low, high = price_range
        mask &= (catalog.prices >= (-np.inf if low is None else low)) & (
            catalog.prices <= (np.inf if high is None else high)
        )
    if exclude is not None:
        mask &= np.array([i not in exclude for i in catalog.ids])
    return mask


FILTERS = [
    {"categories": {"cat001", "cat002", "cat003"}},
    {"categories": {"cat007"}},  # about 1% of items
    {"price_range": (20.0, 30.0)},
    {"price_range": (None, 5.0)},
    {"price_range": (99.0, None)},  # about 1% of items
    {"categories": {"cat001", "cat050"}, "price_range": (10.0, 60.0)},
    {"exclude": {f"item{i:06d}" for i in range(0, 3000, 2)}},
]


@pytest.mark.parametrize("filters", FILTERS)
def test_exact_filters_give_the_true_top_k_among_passing_items(
    small: Catalog, small_exact: ItemIndex, filters: dict[str, object]
) -> None:
    mask = passing_rows(small, **filters)  # type: ignore[arg-type]
    got = small_exact.search(small.queries, 20, **filters)  # type: ignore[arg-type]
    assert all(len(row) == min(20, mask.sum()) for row in got)
    assert_same(got, small.truth(small.queries, 20, mask))


@pytest.mark.parametrize(
    "filters",
    [
        {"categories": {f"cat{c:03d}" for c in range(50)}},  # about half: HNSW with a selector
        {"categories": {f"cat{c:03d}" for c in range(12)}},  # about 12%: HNSW, wide beam
        {"categories": {"cat007"}},  # about 1%: exact over the passing items
        {"price_range": (50.0, None), "exclude": {f"item{i:06d}" for i in range(5000)}},
        {"exclude": {f"item{i:06d}" for i in range(0, 20_000, 3)}},
    ],
)
def test_hnsw_filters_are_obeyed_and_return_k(
    large: Catalog, large_hnsw: ItemIndex, filters: dict[str, object]
) -> None:
    mask = passing_rows(large, **filters)  # type: ignore[arg-type]
    allowed = {large.ids[r] for r in np.flatnonzero(mask)}
    got = large_hnsw.search(large.queries, 50, **filters)  # type: ignore[arg-type]
    assert all(len(row) == 50 for row in got)
    assert all(item_id in allowed for row in got for item_id, _ in row)
    assert recall(got, large.truth(large.queries, 50, mask)) >= 0.9


def test_a_short_hnsw_answer_is_completed_by_exact_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If filtered HNSW finds fewer than k passing items, the query is searched exactly."""
    rng = np.random.default_rng(8)
    vectors = unit_vectors(rng, 2000, 16)
    ids = [str(i) for i in range(2000)]
    categories = ["even" if i % 2 == 0 else "odd" for i in range(2000)]
    index = ItemIndex.build(ids, vectors, categories, kind="hnsw", exact_threshold=10)
    real_search = item_index_module._search

    def lossy(
        faiss_index: object, queries: np.ndarray, k: int, params: object = None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = real_search(faiss_index, queries, k, params)
        if faiss_index is index.index:
            rows[:, k // 2 :] = -1  # HNSW "found" only half of k
        return scores, rows

    monkeypatch.setattr(item_index_module, "_search", lossy)
    queries = unit_vectors(rng, 3, 16)
    got = index.search(queries, 10, categories={"even"})
    scores = queries @ vectors[0::2].T  # (3, 1000): exact truth among even items
    want = [[ids[2 * r] for r in np.argsort(-s)[:10]] for s in scores]
    assert [[i for i, _ in row] for row in got] == want


def test_a_filter_passing_one_percent_still_returns_k(
    small: Catalog, small_exact: ItemIndex
) -> None:
    mask = passing_rows(small, categories={"cat007"})
    assert 20 <= mask.sum() <= 60  # about 1% of 3000
    got = small_exact.search(small.queries, 20, categories={"cat007"})
    assert all(len(row) == 20 for row in got)


def test_filters_passing_nothing_or_few_items(small: Catalog, small_exact: ItemIndex) -> None:
    assert small_exact.search(small.queries[:3], 5, categories=set()) == [[], [], []]
    assert small_exact.search(small.queries[:1], 5, categories={"no such"}) == [[]]
    assert small_exact.search(small.queries[:1], 5, price_range=(200.0, 300.0)) == [[]]
    (row,) = small_exact.search(small.queries[0], 5, exclude=set(small.ids[1:]))
    assert [i for i, _ in row] == [small.ids[0]]


def test_exclude_removes_exactly_the_excluded_items(small: Catalog, small_exact: ItemIndex) -> None:
    (before,) = small_exact.search(small.queries[0], 12)
    bought = {before[0][0], before[3][0], "not-an-indexed-id"}
    (after,) = small_exact.search(small.queries[0], 10, exclude=bought)
    assert [i for i, _ in after] == [i for i, _ in before if i not in bought]


def test_similar_excludes_the_item_itself(small: Catalog, small_exact: ItemIndex) -> None:
    got = small_exact.similar(small.ids[0], 5)
    want = small.truth(small.vectors[:1], 6)[0][1:]
    assert_same([got], [want])


def test_items_without_category_or_price_only_match_unfiltered_queries() -> None:
    rng = np.random.default_rng(2)
    vectors = unit_vectors(rng, 4, 8)
    index = ItemIndex.build(
        ["a", "b", "c", "d"], vectors, ["shoes", None, "", "shoes"], [10.0, 20.0, None, np.nan]
    )
    assert index.category("b") is None and index.category("c") is None
    assert index.price("c") is None and index.price("a") == 10.0
    query = vectors[1]
    assert {i for i, _ in index.search(query, 10)[0]} == {"a", "b", "c", "d"}
    assert {i for i, _ in index.search(query, 10, categories={"shoes"})[0]} == {"a", "d"}
    assert {i for i, _ in index.search(query, 10, price_range=(0.0, None))[0]} == {"a", "b"}
    assert {i for i, _ in index.search(query, 10, price_range=(None, None))[0]} == {
        "a",
        "b",
        "c",
        "d",
    }


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_added_items_are_findable_and_filterable(small: Catalog, kind: str) -> None:
    index = ItemIndex.build(
        small.ids[:2000],
        small.vectors[:2000],
        small.categories[:2000],
        small.prices[:2000],
        kind=kind,  # type: ignore[arg-type]
    )
    new = slice(2000, 3000)
    index.add(small.ids[new], small.vectors[new], ["new"] * 1000, small.prices[new])
    index.add(["bare"], unit_vectors(np.random.default_rng(3), 1, 32))  # no category or price
    assert len(index) == 3001 and index.ids[-1] == "bare"
    for row in range(2000, 3000, 97):
        (top,) = index.search(small.vectors[row], 1)
        assert top[0][0] == small.ids[row]
        assert top[0][1] == pytest.approx(1.0, abs=1e-5)
    got = index.search(small.queries, 10, categories={"new"})
    assert all(len(r) == 10 and all(int(i[4:]) >= 2000 for i, _ in r) for r in got)
    assert index.search(index.vector("bare"), 1)[0][0][0] == "bare"
    assert "bare" not in {
        i for i, _ in index.search(index.vector("bare"), 5, categories={"new"})[0]
    }


def test_adding_an_id_already_indexed_raises(small: Catalog) -> None:
    index = ItemIndex.build(small.ids[:10], small.vectors[:10])
    with pytest.raises(ValueError, match="already indexed"):
        index.add([small.ids[3]], small.vectors[3:4])
    with pytest.raises(ValueError, match="repeated"):
        index.add(["x", "x"], small.vectors[10:12])
    assert len(index) == 10 and index.index.ntotal == 10


def test_a_bad_vector_in_a_batch_adds_nothing(small: Catalog) -> None:
    index = ItemIndex.build(small.ids[:10], small.vectors[:10])
    vectors = small.vectors[10:20].copy()
    vectors[7] *= 2.0
    with pytest.raises(ValueError, match="L2-normalised: row 7"):
        index.add(small.ids[10:20], vectors)
    assert len(index) == 10 and index.index.ntotal == 10


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_save_and_load_give_identical_results(small: Catalog, tmp_path: Path, kind: str) -> None:
    index = ItemIndex.build(
        small.ids,
        small.vectors,
        small.categories,
        small.prices,
        kind=kind,  # type: ignore[arg-type]
        ef_search=40,
        metadata={"embeddings_version": "v1"},
    )
    index.save(tmp_path / "saved")
    filters = {"categories": {"cat001", "cat002"}, "price_range": (5.0, 95.0)}
    for mmap in (False, True):
        loaded = ItemIndex.load(tmp_path / "saved", mmap=mmap)
        assert (loaded.kind, loaded.ids, loaded.ef_search) == (kind, small.ids, 40)
        assert loaded.metadata["embeddings_version"] == "v1"
        assert loaded.version == "saved"
        assert loaded.search(small.queries, 10) == index.search(small.queries, 10)
        assert loaded.search(small.queries, 10, **filters) == index.search(  # type: ignore[arg-type]
            small.queries,
            10,
            **filters,  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="memory-mapped"):
        loaded.add(["new"], small.vectors[:1])


def test_bad_input_raises_clear_errors(small: Catalog, small_exact: ItemIndex) -> None:
    query = small.queries[0]
    with pytest.raises(ValueError, match="dim 32"):
        small_exact.search(np.zeros(16, np.float32), 5)
    with pytest.raises(TypeError, match="float32"):
        small_exact.search(query.astype(np.float64), 5)
    with pytest.raises(ValueError, match="C-contiguous"):
        small_exact.search(np.asfortranarray(small.queries[:4]), 5)
    with pytest.raises(ValueError, match="C-contiguous"):
        small_exact.search(np.zeros((4, 64), np.float32)[:, ::2], 5)
    with pytest.raises(ValueError, match="C-contiguous"):
        small_exact.search(np.zeros(64, np.float32)[::2], 5)
    with pytest.raises(ValueError, match="k must be"):
        small_exact.search(query, 0)
    with pytest.raises(ValueError, match=r"\(d,\) or \(B, d\)"):
        small_exact.search(small.queries[None], 5)
    with pytest.raises(TypeError, match="numpy array"):
        small_exact.search(query.tolist(), 5)
    with pytest.raises(ValueError, match="NaN"):
        small_exact.search(np.full(32, np.nan, np.float32), 5)
    with pytest.raises(TypeError, match="not the str"):
        small_exact.search(query, 5, categories="cat001")
    with pytest.raises(TypeError, match="not the str"):
        small_exact.search(query, 5, exclude="item000001")
    with pytest.raises(ValueError, match="above high"):
        small_exact.search(query, 5, price_range=(10.0, 5.0))
    with pytest.raises(TypeError, match="tuple"):
        small_exact.search(query, 5, price_range=[1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        small_exact.search(query, 5, price_range=(float("nan"), 2.0))


def test_bad_build_input_raises_clear_errors(small: Catalog) -> None:
    with pytest.raises(TypeError, match="float32"):
        ItemIndex.build(small.ids, small.vectors.astype(np.float64))
    with pytest.raises(ValueError, match="2-D"):
        ItemIndex.build(small.ids[:1], small.vectors[0])
    with pytest.raises(ValueError, match="3 ids for 2 vectors"):
        ItemIndex.build(small.ids[:3], small.vectors[:2])
    with pytest.raises(ValueError, match="L2-normalised"):
        ItemIndex.build(small.ids[:2], small.vectors[:2] * 3)
    with pytest.raises(ValueError, match="expected 2 categories"):
        ItemIndex.build(small.ids[:2], small.vectors[:2], ["a"])
    with pytest.raises(ValueError, match="kind must be"):
        ItemIndex.build(small.ids[:2], small.vectors[:2], kind="ivf")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="not in the index"):
        ItemIndex.build(small.ids[:2], small.vectors[:2]).vector("nope")
