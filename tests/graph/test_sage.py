"""Graph-aware (PinSage-style) embeddings learn where co-engagement leads."""

from __future__ import annotations

import numpy as np

from tastegraph.graph import GraphConfig, TasteGraph
from tastegraph.graph.sage import SageConfig, graph_aware_embeddings, train_aggregator
from tastegraph.store import Event

DAY = 86_400.0


def test_graph_aware_embeddings_move_toward_later_co_engaged_items() -> None:
    rng = np.random.default_rng(0)
    dim, per = 16, 20
    centres = np.linalg.qr(rng.standard_normal((dim, 3)))[0].T  # styles A, B, C: unrelated
    vectors = np.repeat(centres, per, axis=0) + 0.2 * rng.standard_normal((3 * per, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"{'ABC'[r // per]}{r % per}" for r in range(3 * per)]
    events = []
    for day in range(60):  # people buy an A item with a B item, every day
        for k in range(3):
            basket = f"d{day}-{k}"
            a, b = rng.integers(0, per, 2)
            for item in (f"A{a}", f"B{b}"):
                events.append(
                    Event(f"{basket}-{item}", f"u{k}", item, "purchase", 1.0, day * DAY, basket)
                )
    now = 60 * DAY
    config = SageConfig(epochs=200, future_days=20)
    model = train_aggregator(events, ids, vectors, now, GraphConfig(user_weight=0.0), config)
    graph = TasteGraph.build(events, ids, GraphConfig(user_weight=0.0), now=now)
    aware = graph_aware_embeddings(model, graph, vectors, config)
    a_rows, b_rows, c_rows = np.arange(per), np.arange(per, 2 * per), np.arange(2 * per, 3 * per)
    content_to_b = (vectors[a_rows] @ vectors[b_rows].T).mean()
    aware_to_b = (aware[a_rows] @ vectors[b_rows].T).mean()
    assert aware_to_b > content_to_b + 0.2
    assert (aware[a_rows] @ vectors[c_rows].T).mean() < 0.2  # not toward unrelated items
    assert np.allclose(aware[c_rows], vectors[c_rows])  # nobody bought C: content only
    assert np.allclose(np.linalg.norm(aware, axis=1), 1.0, atol=1e-5)
