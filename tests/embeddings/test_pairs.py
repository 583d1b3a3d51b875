from __future__ import annotations

import numpy as np

from tastegraph.embeddings.pairs import co_engaged_pairs, variant_pairs
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
