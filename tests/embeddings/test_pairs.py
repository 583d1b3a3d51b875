from __future__ import annotations

import numpy as np

from tastegraph.embeddings.pairs import (
    TastePairs,
    co_engaged_pairs,
    engagement_groups,
    taste_pairs,
    variant_groups,
    variant_pairs,
)
from tastegraph.store import Event

DAY = 86_400.0


def ev(
    n: int, user: str, item: str, ts: float, collection: str | None = None, action: str = "save"
) -> Event:
    return Event(f"e{n}", user, item, action, 1.0, ts, collection)


INDEX = {name: row for row, name in enumerate("abcdef")}


def test_basket_items_pair_up() -> None:
    events = [ev(1, "u", "a", 0, "k"), ev(2, "u", "b", 0, "k"), ev(3, "u", "c", 0, "k")]
    pairs = co_engaged_pairs(events, INDEX)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_same_user_within_the_window_pairs_and_beyond_it_does_not() -> None:
    events = [ev(1, "u", "a", 0), ev(2, "u", "b", 600), ev(3, "u", "c", 600 + 2 * DAY)]
    pairs = co_engaged_pairs(events, INDEX, session_window_s=3600)
    assert pairs.tolist() == [[0, 1]]


def test_cutoff_hides_and_unknown_items_are_left_out() -> None:
    events = [
        ev(1, "u", "a", 0, "k"),
        ev(2, "u", "b", 0, "k", action="hide"),
        ev(3, "u", "zzz", 0, "k"),
        ev(4, "u", "c", 0, "k"),
        ev(5, "u", "d", 10 * DAY, "k"),
    ]
    pairs = co_engaged_pairs(events, INDEX, cutoff=5 * DAY)
    assert pairs.tolist() == [[0, 2]]


def test_no_events_gives_an_empty_pair_array() -> None:
    assert co_engaged_pairs([], INDEX).shape == (0, 2)


def test_variants_of_one_product_pair_up_unless_held_out() -> None:
    variant_of = ["p1", "p1", "p2", None, "p1", "p2"]
    trainable = np.array([True, True, True, True, False, True])
    pairs = variant_pairs(variant_of, trainable)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (2, 5)]


def _weight_of(pairs: TastePairs, rows: tuple[int, int]) -> float:
    weight_of = dict(zip(map(tuple, pairs.rows.tolist()), pairs.weights, strict=True))
    return float(weight_of[rows])


def test_a_dense_user_weighs_the_square_root_of_their_pairs() -> None:
    """One user with 6 pairs in a sitting (4 items) and one with a single pair: with
    owner_power 0.5 they weigh sqrt(6) to 1; with 1 every pair weighs alike."""
    dense = [ev(i, "dense", item, i) for i, item in enumerate("abcd")]
    events = [*dense, ev(9, "light", "e", 0), ev(10, "light", "f", 1)]
    groups = engagement_groups(events, INDEX)
    damped, flat = taste_pairs(groups, owner_power=0.5), taste_pairs(groups, owner_power=1.0)
    assert len(damped) == len(flat) == 7
    dense_share = sum(
        _weight_of(damped, p) for p in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    )
    assert np.isclose(dense_share / _weight_of(damped, (4, 5)), np.sqrt(6))
    assert np.allclose(flat.weights, 1 / 7)
    assert np.isclose(damped.weights.sum(), 1.0)


def test_a_pair_two_owners_hold_weighs_for_both() -> None:
    events = [ev(1, "u", "a", 0), ev(2, "u", "b", 1), ev(3, "v", "a", 0), ev(4, "v", "b", 1)]
    groups = engagement_groups(events, INDEX)
    groups |= variant_groups(["p", None, "p", None, None, None], np.ones(6, dtype=bool))
    pairs = taste_pairs(groups)
    assert _weight_of(pairs, (0, 1)) == 2 * _weight_of(pairs, (0, 2))


def test_batches_are_drawn_by_weight_without_repeats() -> None:
    dense = [ev(i, "dense", item, i) for i, item in enumerate("abcd")]
    pairs = taste_pairs(
        engagement_groups([*dense, ev(9, "light", "e", 0), ev(10, "light", "f", 1)], INDEX)
    )
    rng = np.random.default_rng(0)
    batches = [pairs.sample(4, rng) for _ in range(4000)]
    assert all(len(np.unique(b, axis=0)) == len(b) for b in batches)
    light = np.mean([any(tuple(p) == (4, 5) for p in b.tolist()) for b in batches])
    single_draw = _weight_of(pairs, (4, 5))
    assert abs(light - (1 - (1 - single_draw) ** 4)) < 0.03  # drawn 4 times per batch
