"""What every recommender promises, whatever orders its items (in the style of implicit's
test mixins): filters hold, hidden items never come back, `exclude_engaged` works, `n` is
checked, unknown users and items get a clear answer, and a batch answers as one by one.
Run against ours (the related score alone, and with a learned re-ranker) and against the
evaluation's baselines behind the same interface."""

from __future__ import annotations

import numpy as np
import pytest
from world import DAY, T0, World, basket_log, details_of, make_world

from tastegraph.evaluate.baselines import (
    ALS,
    BaselineRecommender,
    CoVisitation,
    TrainingLog,
    cosine_scorer,
)
from tastegraph.recommend import Filters, ItemRecommender, Recommender
from tastegraph.recommend.rerank import RelatedReranker
from tastegraph.recommend.rerank_job import earlier_recommender, fit_reranker, item_index
from tastegraph.store import Event

DAYS = 120
QUERY = "s2-03"
KINDS = ["related score", "re-ranked", "co-visitation", "ALS, raw cosine"]


@pytest.fixture(scope="module")
def reranker() -> RelatedReranker:
    shop = make_world()
    details, events = details_of(shop), basket_log(DAYS, 6)
    index = item_index(shop.ids, shop.vectors, details)
    cutoff = T0 + DAYS * DAY
    fitted = fit_reranker(
        earlier_recommender(index, events, details, cutoff), events, details, cutoff
    )
    assert fitted is not None
    return fitted


def ours(kind: str, world: World, reranker: RelatedReranker) -> Recommender:
    built = world.recommender()
    if kind == "re-ranked":
        built.reranker = reranker.over(built.index.ids)
    return built


def baseline(kind: str, world: World) -> BaselineRecommender:
    index = world.recommender().index
    log = TrainingLog.build(
        world.events, {i: r for r, i in enumerate(index.ids)}, max(e.ts for e in world.events) + 1
    )
    if kind == "co-visitation":
        covisitation = CoVisitation(log)
        return BaselineRecommender(kind, index, log, covisitation.recommend, covisitation.score)
    als = ALS(log, factors=8)
    return BaselineRecommender(kind, index, log, als.recommend, cosine_scorer(world.vectors))


@pytest.fixture(params=KINDS)
def recommender(
    request: pytest.FixtureRequest, world: World, reranker: RelatedReranker
) -> ItemRecommender:
    kind = request.param
    return ours(kind, world, reranker) if kind in KINDS[:2] else baseline(kind, world)


@pytest.fixture(params=KINDS[:2])
def our_recommender(
    request: pytest.FixtureRequest, world: World, reranker: RelatedReranker
) -> Recommender:
    return ours(request.param, world, reranker)


def every_list(recommender: ItemRecommender, user: str, filters: Filters, n: int = 8) -> dict:
    """Each kind of answer the recommender gives, under the same filters."""
    found = {
        "feed": recommender.feed(user, n, explore=0.0, filters=filters),
        "explore": recommender.feed(user, n, explore=1.0, filters=filters),
        "related": recommender.related(QUERY, n, filters=filters),
    }
    if isinstance(recommender, Recommender):
        vector = recommender.index.vector(QUERY)
        found["search"] = recommender.search(vector, n, filters=filters)
    return found


def test_filters_hold_for_every_answer(recommender: ItemRecommender) -> None:
    index = recommender.index
    within = np.zeros(len(index), dtype=bool)
    within[::3] = True
    for filters, holds in [
        (Filters(categories=["cat2", "cat3"]), lambda i: index.category(i) in ("cat2", "cat3")),
        (Filters(price_range=(35.0, 50.0)), lambda i: 35.0 <= index.price(i) <= 50.0),
        (Filters(within=within), lambda i: within[index.row(i)]),
    ]:
        for kind, found in every_list(recommender, "u1", filters).items():
            assert found, (kind, filters)
            assert all(holds(r.item_id) for r in found), (kind, filters)


def test_answers_have_no_repeats_and_related_never_the_item_itself(
    recommender: ItemRecommender,
) -> None:
    for kind, found in every_list(recommender, "u1", Filters(), n=20).items():
        ids = [r.item_id for r in found]
        assert len(ids) == len(set(ids)) == 20, kind
        assert all(r.reason for r in found), kind
    assert QUERY not in {r.item_id for r in recommender.related(QUERY, 71)}


def test_hidden_items_never_come_back(recommender: ItemRecommender) -> None:
    shown = [r.item_id for r in recommender.feed("u1", 12, explore=0.0)]
    for k, item in enumerate(shown[:4]):
        assert recommender.record(Event(f"hide-{k}", "u1", item, "hide", -1.0, T0 + 50 * DAY))
    for explore in (0.0, 0.5, 1.0):
        feed = {r.item_id for r in recommender.feed("u1", 40, explore=explore)}
        assert not feed & set(shown[:4]), explore


def test_exclude_engaged_leaves_out_what_the_user_engaged_with(
    recommender: ItemRecommender, world: World
) -> None:
    engaged = {e.item_id for e in world.events if e.user_id == "u1"}
    kept = {r.item_id for r in recommender.feed("u1", 30, explore=0.0)}
    assert kept & engaged, "repeat items come back unless excluded"
    excluded = recommender.feed("u1", 30, explore=0.5, filters=Filters(exclude_engaged=True))
    assert len(excluded) == 30 and not {r.item_id for r in excluded} & engaged


@pytest.mark.parametrize("n", [0, -1, True, 2.5, "3"])
def test_n_must_be_a_positive_integer(recommender: ItemRecommender, n: object) -> None:
    asks = [
        lambda: recommender.feed("u1", n),  # type: ignore[arg-type]
        lambda: recommender.related(QUERY, n),  # type: ignore[arg-type]
    ]
    if isinstance(recommender, Recommender):
        vector = recommender.index.vector(QUERY)
        asks.append(lambda: recommender.search(vector, n))  # type: ignore[arg-type]
    for ask in asks:
        with pytest.raises(ValueError, match="n must be an integer"):
            ask()


def test_n_beyond_the_catalog_gives_each_item_once(recommender: ItemRecommender) -> None:
    size = len(recommender.index)
    for kind, found in every_list(recommender, "u1", Filters(), n=size + 50).items():
        ids = [r.item_id for r in found]
        assert len(ids) == len(set(ids)) and len(ids) <= size, kind


def test_unknown_users_get_popular_items_and_unknown_items_a_clear_error(
    recommender: ItemRecommender,
) -> None:
    feed = recommender.feed("never-seen", 6, explore=0.0)
    assert len(feed) == 6 and all(r.reason for r in feed)
    if isinstance(recommender, Recommender):
        assert all(r.source == "popular" for r in feed)
    with pytest.raises(KeyError, match="not in the index"):
        recommender.related("no-such-item", 5)


def test_a_batch_answers_as_one_query_at_a_time(our_recommender: Recommender) -> None:
    recommender = our_recommender
    queries = np.arange(0, len(recommender.index), 5)
    batch = recommender.related_score.scores(queries)
    one_by_one = np.concatenate(
        [recommender.related_score.scores(queries[[q]]) for q in range(len(queries))]
    )
    # Matrix products in a batch round differently (a float32 ulp); the order holds.
    assert np.allclose(batch, one_by_one, rtol=1e-6, atol=1e-6)
    top = np.argsort(-batch, axis=1, kind="stable")[:, :10]
    assert np.array_equal(top, np.argsort(-one_by_one, axis=1, kind="stable")[:, :10])
    if recommender.reranker is not None:
        rows, scores = recommender.reranker.rank(recommender.related_score, queries, 10)
        for q, query in enumerate(queries):
            single_rows, single_scores = recommender.reranker.rank(
                recommender.related_score, query[None], 10
            )
            assert np.array_equal(rows[q], single_rows[0]) and np.allclose(
                scores[q], single_scores[0]
            )
            served = [r.item_id for r in recommender.related(recommender.index.ids[query], 10)]
            assert served == [recommender.index.ids[r] for r in rows[q] if r >= 0]
