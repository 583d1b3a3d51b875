from __future__ import annotations

import numpy as np
import pytest

from tastegraph.evaluate.embeddings import basket_completion, held_out_baskets
from tastegraph.evaluate.metrics import (
    average_precision_at_k,
    bootstrap,
    catalog_coverage,
    hits,
    intra_list_diversity,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
    top_k,
)
from tastegraph.store import Event


def test_top_k_orders_best_first() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [3.0, 2.0, 1.0, 0.0]])
    assert top_k(scores, 2).tolist() == [[1, 3], [0, 1]]
    assert top_k(scores, 10).shape == (2, 4)


def test_recall_counts_the_share_of_relevant_items_found() -> None:
    ranked = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(ranked, [{1, 9}, {4, 5}]).tolist() == [0.5, 1.0]


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_n() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap(rng.random(50))
    large = bootstrap(rng.random(5000))
    assert small.low <= small.mean <= small.high
    assert (large.high - large.low) < (small.high - small.low)
    assert bootstrap(np.array([])).n == 0


def test_basket_completion_oracle_scores_one_and_anti_oracle_zero() -> None:
    baskets = [[0, 1], [2, 3, 4]]
    members = np.zeros((5, 5), dtype=np.float32)
    for rows in baskets:
        for a in rows:
            members[a, rows] = 1.0
    oracle = basket_completion(baskets, lambda rows: members[rows].copy(), k=2)
    anti = basket_completion(baskets, lambda rows: -members[rows], k=1)
    assert oracle.tolist() == [1.0, 1.0]
    assert anti.tolist() == [0.0, 0.0]


def test_held_out_baskets_keep_only_multi_item_baskets_after_the_cutoff() -> None:
    def ev(n: int, item: str, ts: float, basket: str) -> Event:
        return Event(f"e{n}", "u", item, "purchase", 1.0, ts, basket)

    events = [ev(1, "a", 0, "k0"), ev(2, "b", 0, "k0"), ev(3, "a", 10, "k1"), ev(4, "c", 10, "k1")]
    events.append(ev(5, "b", 10, "k2"))  # a single item: nothing to complete
    index = {"a": 0, "b": 1, "c": 2}
    assert held_out_baskets(events, index, cutoff=5) == [[0, 2]]


def test_same_product_baseline_ranks_variants_first() -> None:
    from tastegraph.evaluate.baselines import same_product_then_cosine

    vectors = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.1, 0.9]], dtype=np.float32)
    score = same_product_then_cosine(["p", "p", None, None], vectors)
    assert top_k(score(np.array([0])), 2).tolist() == [[0, 1]]  # itself, then its variant
    assert top_k(score(np.array([2])), 2).tolist() == [[2, 0]]  # no product: cosine only


def test_held_out_products_take_every_variant_and_skip_taken_ones() -> None:
    from tastegraph.evaluate.embeddings import _hold_out_products

    products = ["p1", "p1", "p2", "p2", "p3", "item:x"]
    rng = np.random.default_rng(0)
    rows, chosen = _hold_out_products(products, np.arange(6), 3, rng, frozenset({"p3"}))
    assert len(rows) == 3 and "p3" not in chosen
    held_rows = {row for row, product in enumerate(products) if product in chosen}
    assert set(rows.tolist()) <= held_rows
    assert all(products[row] in chosen for row in rows.tolist())


def test_average_precision_matches_hand_computed_values() -> None:
    # hits at ranks 1 and 3: (1/1 + 2/3) / min(3, 12)
    ap = average_precision_at_k(np.array([[1, 5, 2, -1]]), [{1, 2, 9}])
    assert np.allclose(ap, [(1 + 2 / 3) / 3])
    # the denominator is min(len(relevant), k): two right answers out of four, with k = 2
    assert average_precision_at_k(np.array([[1, 2, 3]]), [{1, 2, 3, 4}], k=2).tolist() == [1.0]
    # 13 relevant, the first 12 all right: a perfect score, not 12/13
    ranked = np.arange(20)[None, :]
    assert average_precision_at_k(ranked, [set(range(13))]).tolist() == [1.0]


def test_average_precision_ignores_padding_repeats_and_items_past_k() -> None:
    ranked = np.array([[-1, -1, 7], [4, 4, 9], [0, 1, 2], [5, -1, -1]])
    relevant = [{7}, {4, 9}, {2}, set()]
    ap = average_precision_at_k(ranked, relevant, k=2)
    # 7 sits past k; 4 counts once, 9 past k; 2 past k; nothing relevant gives 0
    assert np.allclose(ap, [0.0, 0.5, 0.0, 0.0])
    assert np.allclose(
        average_precision_at_k(ranked, relevant, k=3), [1 / 3, (1 + 2 / 3) / 2, 1 / 3, 0]
    )


def test_ndcg_reciprocal_rank_and_hits_on_small_cases() -> None:
    ranked = np.array([[3, 1, 2], [1, 2, -1], [7, 8, 9]])
    relevant = [{1}, {1, 2}, {4}]
    assert np.allclose(ndcg_at_k(ranked, relevant, k=3), [1 / np.log2(3), 1.0, 0.0])
    # one of two relevant found at rank 2: (1/log2 3) / (1 + 1/log2 3)
    ideal = 1 + 1 / np.log2(3)
    assert np.allclose(ndcg_at_k(np.array([[5, 2]]), [{1, 2}], k=2), [1 / np.log2(3) / ideal])
    assert np.allclose(reciprocal_rank(ranked, relevant), [0.5, 1.0, 0.0])
    assert hits(ranked, relevant, k=1).tolist() == [0, 1, 0]
    assert hits(ranked, relevant, k=3).dtype == np.int64


def test_metrics_refuse_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="relevant sets"):
        average_precision_at_k(np.array([[1, 2]]), [{1}, {2}])
    with pytest.raises(ValueError, match="queries, positions"):
        average_precision_at_k(np.array([1, 2]), [{1}])


def test_intra_list_diversity_of_identical_and_orthogonal_items() -> None:
    vectors = np.array([[1, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 3]], dtype=np.float32)
    ranked = np.array([[0, 1, -1], [0, 2, 3], [2, -1, -1], [0, 1, 2]])
    diversity = intra_list_diversity(ranked, vectors)
    assert np.allclose(diversity[:2], [0.0, 1.0])
    assert np.isnan(diversity[2])  # one item: no pairs
    assert np.isclose(diversity[3], 2 / 3)  # pairs: (0,1) 0, (0,2) 1, (1,2) 1


def test_catalog_coverage_counts_distinct_recommended_items() -> None:
    assert catalog_coverage(np.array([[0, 1], [1, -1]]), 4) == 0.5
    with pytest.raises(ValueError):
        catalog_coverage(np.array([[0]]), 0)
