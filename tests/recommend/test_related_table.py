"""Related items computed offline are the ones computed per request, and are served only
over the artifacts they were computed from."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from world import DAY, T0, basket_log, details_of, make_world

from tastegraph import registry
from tastegraph.graph.job import build_taste
from tastegraph.index import ItemIndex
from tastegraph.profiles import ProfileConfig, ProfileStore
from tastegraph.recommend import Filters, Recommender
from tastegraph.recommend.assemble import assemble
from tastegraph.recommend.related_job import compute_table, popular_first
from tastegraph.recommend.related_table import (
    RelatedTable,
    inputs_of,
    open_related_table,
    still_current,
)
from tastegraph.recommend.rerank import RelatedReranker
from tastegraph.recommend.rerank_job import earlier_recommender, fit_reranker, item_index

CUTOFF = T0 + 120 * DAY
INPUTS = {"index": "v1", "graph": "v2", "reranker": "v3"}
WIDTH = 8


@pytest.fixture(scope="module")
def shop() -> tuple:
    world = make_world()
    details = details_of(world)
    events = basket_log(120, 6)
    index = item_index(world.ids, world.vectors, details)
    reranker = fit_reranker(
        earlier_recommender(index, events, details, CUTOFF), events, details, CUTOFF
    )
    assert reranker is not None
    taste = build_taste(events, world.ids, world.vectors, details, now=CUTOFF)
    return index, taste, details, reranker


def recommender(
    shop: tuple,
    reranker: RelatedReranker | None,
    table: RelatedTable | None = None,
    index: ItemIndex | None = None,
) -> Recommender:
    shop_index, taste, details, _ = shop
    return assemble(
        index or shop_index,
        taste,
        ProfileStore(ProfileConfig()),
        details,
        reranker=reranker,
        related_table=table,
    )


@pytest.mark.parametrize("reranked", [True, False])
def test_looked_up_related_items_are_the_computed_ones(shop: tuple, reranked: bool) -> None:
    reranker = shop[3] if reranked else None
    table = compute_table(recommender(shop, reranker), INPUTS, WIDTH, show_progress=False)
    served, computed = recommender(shop, reranker, table), recommender(shop, reranker)
    assert served.related_items_precomputed == len(served.index) == len(table.queries)
    for item in served.index.ids:
        for n in (1, 5, WIDTH, WIDTH + 1):  # the last is wider than the table: computed
            assert served.related(item, n) == computed.related(item, n)
    only = Filters(categories={"cat3"})
    assert served.related("s2-00", 3, filters=only) == computed.related("s2-00", 3, filters=only)


def test_the_table_is_what_answers(shop: tuple) -> None:
    table = compute_table(recommender(shop, None), INPUTS, WIDTH, show_progress=False)
    row = shop[0].row("s2-00")
    slot = int(np.flatnonzero(table.queries == row)[0])
    table.rows[slot] = table.rows[slot][::-1].copy()  # a table that disagrees
    served = recommender(shop, None, table)
    reversed_ids = [shop[0].ids[r] for r in table.rows[slot][:3]]
    assert [r.item_id for r in served.related("s2-00", 3)] == reversed_ids
    wide = served.related("s2-00", WIDTH + 1)  # wider than the table: computed
    assert [r.item_id for r in wide] == [
        r.item_id for r in recommender(shop, None).related("s2-00", WIDTH + 1)
    ]


def test_a_spent_budget_leaves_items_to_be_computed_and_popular_items_come_first(
    shop: tuple,
) -> None:
    ours = recommender(shop, shop[3])
    order = popular_first(ours)
    popular = [ours.index.row(item) for item, _ in ours.popular]
    assert sorted(order.tolist()) == list(range(len(ours.index)))
    assert order[: len(popular)].tolist() == popular
    empty = compute_table(ours, INPUTS, WIDTH, budget_seconds=0, show_progress=False)
    assert len(empty.queries) == 0 and empty.rows.shape == (0, WIDTH)
    served = recommender(shop, shop[3], empty)
    assert served.related_items_precomputed == 0
    assert served.related("s2-00", 5) == recommender(shop, shop[3]).related("s2-00", 5)
    with pytest.raises(ValueError, match="at least 1"):
        compute_table(ours, INPUTS, 0, show_progress=False)


def test_a_table_serves_only_over_the_artifacts_it_was_computed_from(
    shop: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = shop[0]
    assert open_related_table(tmp_path, INPUTS) is None  # none published
    table = compute_table(recommender(shop, None), INPUTS, WIDTH, show_progress=False)
    registry.publish(tmp_path, "related", table.save)
    reopened = open_related_table(tmp_path, INPUTS | {"profiles": "v9"})  # not an input
    assert reopened is not None and reopened.item_ids == table.item_ids
    assert np.array_equal(reopened.rows, table.rows)
    assert np.array_equal(reopened.scores, table.scores)
    assert open_related_table(tmp_path, INPUTS | {"reranker": "v4"}) is None
    assert open_related_table(tmp_path, INPUTS | {"graph": None}) is None

    vectors = recommender(shop, None).item_vectors
    grown = index.copy()  # an item embedded after the index was published
    grown.add(["new"], vectors[:1], ["cat2"], [9.0])
    assert recommender(shop, None, reopened, grown).related_items_precomputed == len(index)
    reordered = ItemIndex.build(index.ids[::-1], np.ascontiguousarray(vectors[::-1]))
    assert recommender(shop, None, reopened, reordered).related_table is None

    published = registry.publish(tmp_path, "related", table.save)  # unreadable: left out
    manifest = json.loads((published / "manifest.json").read_text())
    (published / "manifest.json").write_text(json.dumps(manifest | {"format": 99}))
    with caplog.at_level(logging.WARNING):
        assert open_related_table(tmp_path, INPUTS) is None
    assert "leaving out the related-items table" in caplog.text
    assert still_current(reopened, tmp_path) is None  # the inputs here are not INPUTS
    reopened.inputs = inputs_of(registry.versions(tmp_path))
    assert still_current(reopened, tmp_path) is reopened
