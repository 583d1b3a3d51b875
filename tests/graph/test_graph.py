"""The taste graph: edge weights, decay, hides, walks, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastegraph.graph import GraphConfig, RandomWalker, TasteGraph, WalkCache, WalkConfig
from tastegraph.graph.job import build_taste
from tastegraph.graph.taste import ItemDetails, TasteArtifacts
from tastegraph.store import Event

DAY = 86_400.0
ITEMS = [f"i{k}" for k in range(8)]


def ev(
    user: str, item: str, action: str = "purchase", day: float = 0.0, basket: str | None = None
) -> Event:
    return Event(f"{user}-{item}-{action}-{day}", user, item, action, 1.0, day * DAY, basket)


def edge(graph: TasteGraph, item: str, node: str) -> float:
    return float(graph.item_to_node[graph.rows[item], graph.node_ids.index(node)])


def test_edges_weigh_actions_and_decay_with_age() -> None:
    events = [
        ev("u", "i0", "purchase", 10),
        ev("u", "i1", "save", 10),
        ev("u", "i2", "view", 10),
        ev("u", "i3", "purchase", 10 - 30),  # one half-life older
    ]
    graph = TasteGraph.build(events, ITEMS, GraphConfig(user_weight=1.0))  # now: the latest
    assert edge(graph, "i0", "u:u") == pytest.approx(1.0)
    assert edge(graph, "i0", "u:u") > edge(graph, "i1", "u:u") > edge(graph, "i2", "u:u") > 0
    assert edge(graph, "i3", "u:u") == pytest.approx(0.5)


def test_a_hide_removes_the_edge_and_later_or_unknown_events_are_left_out() -> None:
    events = [
        ev("u", "i0", "click", 1, "b1"),
        ev("u", "i0", "hide", 1.5, "b1"),
        ev("u", "i1", "purchase", 1, "b1"),
        ev("u", "i2", "purchase", 5, "b1"),  # after now
        ev("u", "unknown", "purchase", 1, "b1"),
    ]
    graph = TasteGraph.build(events, ITEMS, now=2 * DAY)
    assert graph.degree[graph.rows["i0"]] == 0  # hidden more than clicked
    assert graph.degree[graph.rows["i1"]] == 2  # basket and user
    assert graph.degree[graph.rows["i2"]] == 0
    assert "c:b1" in graph.node_ids and "u:u" in graph.node_ids


def test_walks_stay_in_the_community_and_favour_co_engaged_items() -> None:
    events = [ev(f"a{k}", "i0", day=0, basket=f"a{k}") for k in range(5)]
    events += [ev(f"a{k}", "i1", day=0, basket=f"a{k}") for k in range(5)]  # i1 with i0 x5
    events += [ev("a0", "i2", day=0, basket="a0")]  # i2 with i0 once
    events += [ev("b", "i5", day=0, basket="b"), ev("b", "i6", day=0, basket="b")]
    graph = TasteGraph.build(events, ITEMS, GraphConfig(user_weight=0.0))
    walker = RandomWalker(graph, WalkConfig(walkers=500, steps=5, seed=1))
    visits = walker.visits(np.array([graph.rows["i0"]])).toarray()[0]
    assert visits[graph.rows["i1"]] > visits[graph.rows["i2"]] > 0
    assert visits[graph.rows["i0"]] == 0  # never the query itself
    assert visits[graph.rows["i5"]] == visits[graph.rows["i6"]] == 0  # other community
    lonely = walker.visits(np.array([graph.rows["i7"]]))
    assert lonely.nnz == 0
    again = RandomWalker(graph, WalkConfig(walkers=500, steps=5, seed=1))
    assert np.array_equal(again.visits(np.array([graph.rows["i0"]])).toarray()[0], visits)


def test_an_items_walks_are_the_same_whatever_they_are_walked_with() -> None:
    events = [ev(f"u{k % 3}", f"i{k % 7}", day=k / 10, basket=f"b{k % 5}") for k in range(40)]
    graph = TasteGraph.build(events, ITEMS)
    walker = RandomWalker(graph, WalkConfig(walkers=50, steps=6))
    queries = np.array([graph.rows[i] for i in ("i0", "i3", "i7", "i5")])  # i7 has no edges
    together = walker.visits(queries).toarray()
    alone = np.vstack([walker.visits(queries[[q]]).toarray() for q in range(len(queries))])
    assert np.array_equal(together, alone) and together[:2].sum() > 0
    assert not np.array_equal(together[0], together[1])  # each item its own random stream
    cache = WalkCache(walker, size=2)
    cache.warm(queries[::-1])
    assert len(cache.kept) == 2  # the first two of the warmed items
    assert np.array_equal(cache.visits(queries).toarray(), together)
    assert len(cache.kept) == 2


def test_boosted_walks_favour_items_reached_from_several_queries() -> None:
    events = [ev("x", "i0", basket="x"), ev("x", "i2", basket="x")]
    events += [ev("y", "i1", basket="y"), ev("y", "i2", basket="y")]
    events += [ev(f"z{k}", "i0", basket=f"z{k}") for k in range(3)]
    events += [ev(f"z{k}", "i3", basket=f"z{k}") for k in range(3)]
    graph = TasteGraph.build(events, ITEMS, GraphConfig(user_weight=0.0))
    walker = RandomWalker(graph, WalkConfig(walkers=400, steps=4))
    scores = walker.recommend(np.array([graph.rows["i0"], graph.rows["i1"]]))
    assert scores[graph.rows["i0"]] == scores[graph.rows["i1"]] == 0
    assert scores[graph.rows["i2"]] > 0 and scores[graph.rows["i3"]] > 0
    assert walker.recommend(np.array([], dtype=np.int64)).sum() == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="half_life_days"):
        GraphConfig(half_life_days=0)
    with pytest.raises(ValueError, match="restart"):
        WalkConfig(restart=1.0)


def test_published_graph_reads_back_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(ITEMS), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    events = [ev("u", "i0", basket="b"), ev("u", "i1", basket="b"), ev("v", "i1", day=1)]
    details = {
        i: ItemDetails(None, None, {"type": "top" if k % 2 else "skirt"})
        for k, i in enumerate(ITEMS)
    }
    built = build_taste(events, ITEMS, vectors, details)
    folder = built.publish(tmp_path)
    assert folder.parent.name == "graph"
    loaded = TasteArtifacts.open(tmp_path)
    assert loaded.graph.item_ids == ITEMS and loaded.graph.node_ids == built.graph.node_ids
    assert (loaded.graph.item_to_node != built.graph.item_to_node).nnz == 0
    assert loaded.interests.labels == built.interests.labels
    assert np.array_equal(loaded.interests.assignment, built.interests.assignment)
    assert loaded.popular == built.popular and loaded.popular[0][0] == "i1"
    assert loaded.complements.values == built.complements.values == {"type": ["skirt", "top"]}
    assert loaded.freshness == built.freshness
    assert loaded.repeat_share is built.repeat_share is None  # two users: too few to tell
    # Without a cut-off every event counts, the latest one too.
    assert loaded.freshness.last_engaged == {"i0": 0.0, "i1": DAY}
    with pytest.raises(FileNotFoundError, match="tastegraph graph"):
        TasteArtifacts.open(tmp_path / "empty")
