"""The related-items re-ranker learns from baskets what the related score cannot see."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from world import DAY, PER_STYLE, T0, World, basket_log, details_of, item_id, make_world, purchase

from tastegraph.graph.job import build_taste
from tastegraph.graph.taste import ItemDetails
from tastegraph.index import ItemIndex
from tastegraph.profiles import ProfileConfig, ProfileStore
from tastegraph.recommend import Filters, Recommender
from tastegraph.recommend.assemble import assemble
from tastegraph.recommend.rerank import RelatedReranker, open_reranker
from tastegraph.recommend.rerank_job import (
    earlier_recommender,
    fit_reranker,
    item_index,
    publish_reranker,
    trees_of,
)
from tastegraph.store import Event

DAYS = 120
CUTOFF = T0 + DAYS * DAY


@pytest.fixture(scope="module")
def shop() -> tuple[World, list[Event], dict[str, ItemDetails], ItemIndex]:
    world = make_world()
    details = details_of(world)
    return world, basket_log(DAYS, 6), details, item_index(world.ids, world.vectors, details)


@pytest.fixture(scope="module")
def trained(shop: tuple) -> RelatedReranker:
    _, events, details, index = shop
    reranker = fit_reranker(
        earlier_recommender(index, events, details, CUTOFF), events, details, CUTOFF
    )
    assert reranker is not None
    return reranker


def recommender(shop_parts: tuple, reranker: RelatedReranker | None) -> Recommender:
    world, events, details, index = shop_parts
    taste = build_taste(events, world.ids, world.vectors, details, now=CUTOFF)
    return assemble(index, taste, ProfileStore(ProfileConfig()), details, reranker=reranker)


def partner_share(rows: np.ndarray, queries: np.ndarray) -> float:
    """Share of results in the query's basket-partner style."""
    styles = np.array([[r // PER_STYLE for r in row] for row in rows])
    wanted = (queries // PER_STYLE) ^ 1  # 0 <-> 1, 2 <-> 3, 4 <-> 5
    return float((styles == wanted[:, None]).mean())


def test_reranker_puts_basket_partners_first(shop: tuple, trained: RelatedReranker) -> None:
    ours = recommender(shop, trained)
    queries = np.arange(len(ours.index))
    reranked, scores = trained.rank(ours.related_score, queries, 5)
    by_score = np.argsort(-ours.related_score.scores(queries), axis=1)[:, :5]
    assert partner_share(reranked, queries) >= 0.9
    assert partner_share(reranked, queries) > partner_share(by_score, queries)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    assert not np.any(reranked == queries[:, None])  # never the query itself


def test_too_few_baskets_give_no_reranker(shop: tuple) -> None:
    world, _, details, index = shop
    few = basket_log(DAYS, 1)[-20:]  # ten baskets, all in the holdout weeks
    few.insert(0, purchase("early", world.ids[0], 0))
    earlier = earlier_recommender(index, few, details, CUTOFF)
    assert fit_reranker(earlier, few, details, CUTOFF) is None


def test_published_reranker_ranks_the_same(
    shop: tuple, trained: RelatedReranker, tmp_path: Path
) -> None:
    ids = shop[0].ids
    assert open_reranker(tmp_path) is None  # nothing published yet
    publish_reranker(trained, tmp_path)
    reopened = open_reranker(tmp_path)
    assert reopened is not None and reopened.context.attributes == trained.context.attributes
    new = reopened.over([*ids, "new-item"]).context
    assert np.all(new.codes[-1] == -1) and np.isnan(new.log_price[-1]) and not new.sales[-1].any()
    assert np.array_equal(new.codes[:-1], trained.context.codes)
    ours = recommender(shop, trained)
    queries = np.arange(0, len(ids), 7)
    assert np.array_equal(
        trained.rank(ours.related_score, queries, 10)[0],
        reopened.rank(ours.related_score, queries, 10)[0],
    )


def test_trees_as_arrays_predict_what_scikit_learn_predicts() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take each node's learned side
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2])) > 0.3
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=7, random_state=0)
    model.fit(x, y)
    held_out = rng.normal(size=(500, 6))
    held_out[rng.random(held_out.shape) < 0.1] = np.nan
    trees = trees_of(model)
    assert np.array_equal(trees.raw_score(held_out), model.decision_function(held_out))
    assert np.array_equal(trees.probability(held_out), model.predict_proba(held_out)[:, 1])


def test_a_reranker_in_an_older_format_is_left_out_and_another_kind_refused(
    trained: RelatedReranker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = publish_reranker(trained, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"format": 1}))  # the pickle
    assert open_reranker(tmp_path) is None
    assert "older format" in caplog.text and "tastegraph train reranker" in caplog.text
    (folder / "manifest.json").write_text(json.dumps(manifest | {"kind": "taste_graph"}))
    with pytest.raises(ValueError, match="taste_graph format 2; expected related-reranker"):
        open_reranker(tmp_path)


def test_related_with_reranker_obeys_filters_and_gives_reasons(
    shop: tuple, trained: RelatedReranker
) -> None:
    ours = recommender(shop, trained)
    query = item_id(2, 0)
    unfiltered = ours.related(query, n=6)
    assert len(unfiltered) == 6 and all(r.reason for r in unfiltered)
    assert all(r.item_id.startswith("s3-") for r in unfiltered)  # style 2 is bought with 3
    cheap = ours.related(query, n=4, filters=Filters(price_range=(30.0, 41.0)))
    assert len(cheap) == 4 and all(30.0 <= ours.index.price(r.item_id) <= 41.0 for r in cheap)
    assert query not in {r.item_id for r in cheap}
