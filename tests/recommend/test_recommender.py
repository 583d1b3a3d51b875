"""The recommender's behaviour on a synthetic shop whose tastes are known (see world.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from world import DAY, PER_STYLE, T0, World, details_of, item_id, style_of

from tastegraph.graph.behaviour import event_repeat_share, repeat_share
from tastegraph.graph.complements import Complements
from tastegraph.graph.job import build_taste
from tastegraph.index import ItemIndex
from tastegraph.profiles import ProfileConfig
from tastegraph.profiles.batch import build_profiles
from tastegraph.recommend import Filters, RecommendConfig
from tastegraph.recommend.assemble import assemble
from tastegraph.recommend.behaviour import for_behaviour
from tastegraph.store import Event

SOURCES = {"interest", "walk", "popular", "repeat", "explore", "similar", "search"}


def styles(recommendations: list) -> list[int]:
    return [style_of(r.item_id) for r in recommendations]


def test_feed_follows_the_users_taste_and_explains_every_item(world: World) -> None:
    feed = world.recommender().feed("u1", 12, explore=0.0)
    assert len(feed) == 12 and len({r.item_id for r in feed}) == 12
    counts = np.bincount(styles(feed), minlength=6)
    assert counts[0] + counts[1] >= 9, counts  # u1's style and the one bought with it
    for rec in feed:
        assert rec.source in SOURCES and rec.reason and rec.interest
    assert any(r.reason.startswith("Because you bought Black Dress") for r in feed)


def test_a_save_moves_the_next_feed_toward_the_saved_item(world: World) -> None:
    recommender = world.recommender(RecommendConfig(repeat_weight=0.0))
    before = styles(recommender.feed("u1", 12, explore=0.0))
    assert 4 not in before and 5 not in before

    def save(k: int) -> None:
        event = Event(f"save-{k}", "u1", item_id(4, k), "save", 0.7, T0 + (20 + k / 10) * DAY)
        assert recommender.record(event)

    save(0)  # one save: its neighbourhood shows up at once
    after_one = recommender.feed("u1", 12, explore=0.0)
    assert styles(after_one).count(4) + styles(after_one).count(5) >= 1, styles(after_one)
    assert any(r.reason == "Because you saved Green Jacket 00" for r in after_one)
    for k in range(1, 6):  # six saves outweigh four older purchases
        save(k)
    after_six = styles(recommender.feed("u1", 12, explore=0.0))
    assert after_six.count(4) >= 4 and after_six.count(4) > after_six.count(0), after_six


def test_feeds_are_the_same_whether_walks_and_searches_were_kept(world: World) -> None:
    kept = world.recommender()
    walked, searched = kept.warm()
    assert walked > 0 and searched > 0
    assert len(kept.caches.walks.kept) == walked and len(kept.caches.nearest.kept) > 0
    nothing_kept = world.recommender(RecommendConfig(walk_cache_items=0, interest_cache_items=0))
    for profile in kept.profiles:
        served = kept.feed(profile.user_id, 12)
        fresh = nothing_kept.feed(profile.user_id, 12)
        assert [(r.item_id, r.source, r.reason) for r in served] == [
            (r.item_id, r.source, r.reason) for r in fresh
        ]
        assert [r.score for r in served] == pytest.approx([r.score for r in fresh], rel=1e-5)
    assert len(nothing_kept.caches.walks.kept) == len(nothing_kept.caches.nearest.kept) == 0


def test_the_explore_dial_sets_the_share_of_new_interests(world: World) -> None:
    recommender = world.recommender()
    user_styles = {0, 1}  # bought, or bought with what u1 bought
    shares = {}
    for explore in (0.0, 0.5, 1.0):
        feed = recommender.feed("u1", 8, explore=explore)
        assert len(feed) == 8
        explored = [r for r in feed if r.source == "explore"]
        assert len(explored) == round(explore * 8)
        for rec in explored:
            assert "Something new" in rec.reason
            assert style_of(rec.item_id) != 0  # never u1's own interest
        shares[explore] = np.mean([s not in user_styles for s in styles(feed)])
    assert shares[0.0] < shares[0.5] < shares[1.0]


def test_explore_goes_next_door_first(world: World) -> None:
    feed = world.recommender().feed("u1", 4, explore=0.25)
    explored = [r for r in feed if r.source == "explore"]
    assert len(explored) == 1 and style_of(explored[0].item_id) == 1  # style 1 is next to 0


def test_filters_are_obeyed(world: World) -> None:
    recommender = world.recommender()
    in_category = recommender.feed("u1", 10, filters=Filters(categories={"cat1"}))
    assert in_category and all(style_of(r.item_id) == 1 for r in in_category)
    cheap = recommender.feed("u1", 10, explore=0.5, filters=Filters(price_range=(None, 25.0)))
    assert cheap and all(recommender.index.price(r.item_id) <= 25.0 for r in cheap)
    bought = {e.item_id for e in world.events if e.user_id == "u1"}
    fresh = recommender.feed("u1", 12, filters=Filters(exclude_engaged=True))
    assert not bought & {r.item_id for r in fresh}
    with_repeats = recommender.feed("u1", 12, explore=0.0)
    leading = with_repeats[: len(bought)]  # buy-again is on by default, and comes first
    assert {r.item_id for r in leading} == bought and {r.source for r in leading} == {"repeat"}


def test_where_nobody_engages_twice_the_feed_leaves_engaged_items_out(world: World) -> None:
    bought = {e.item_id for e in world.events if e.user_id == "u1"}
    films = for_behaviour(RecommendConfig(), share=0.01)  # a log where repeats are rare
    assert (films.repeat_weight, films.leave_out_engaged) == (0.0, True)
    feed = world.recommender(films).feed("u1", 12, explore=0.5)
    assert len(feed) == 12 and not bought & {r.item_id for r in feed}
    assert for_behaviour(RecommendConfig(), share=0.13) == RecommendConfig()  # H&M: as tuned
    assert for_behaviour(RecommendConfig(), share=None) == RecommendConfig()  # not measured
    explicit = for_behaviour(RecommendConfig(), share=0.01, repeat_weight=5.0)
    assert (explicit.repeat_weight, explicit.leave_out_engaged) == (5.0, False)


def test_the_repeat_share_counts_strong_engagements_with_an_item_had_before() -> None:
    users = [f"u{k}" for k in range(20)]
    pairs = [(u, "x") for u in users] + [(u, "y") for u in users] + [("u0", "x")] * 2
    assert repeat_share(pairs) == 2 / 42  # u0's second and third "x"
    assert repeat_share([*pairs[:-2], ("u0", "x")]) == 1 / 41
    assert repeat_share([("a", "x"), ("a", "x")]) is None  # too few users to tell
    events = [Event(f"s{u}", u, "x", "save", 0.7, 2.0) for u in users]
    events += [Event(f"p{u}", u, "x", "purchase", 1.0, 3.0) for u in users]  # bought again
    events += [Event(f"v{u}", u, "y", "view", 0.1, 1.0) for u in users]  # a view is no repeat
    events += [Event(f"h{u}", u, "y", "hide", -1.0, 4.0) for u in users]
    assert event_repeat_share(events) == 0.5


def test_the_recommender_is_assembled_with_the_buy_again_its_log_shows(world: World) -> None:
    index = ItemIndex.build(world.ids, world.vectors, world.categories, world.prices)
    taste = build_taste(world.events, world.ids, world.vectors, details_of(world))
    profiles = build_profiles(world.events, index, ProfileConfig())

    def built(share: float | None, repeat_weight: float | None = None) -> RecommendConfig:
        shown = replace(taste, repeat_share=share)
        return assemble(index, shown, profiles, details_of(world), None, None, repeat_weight).config

    assert built(0.01).leave_out_engaged and built(0.01).repeat_weight == 0.0  # films
    assert built(0.13) == built(None) == RecommendConfig()  # H&M, or not measured: as tuned
    assert (built(0.01, repeat_weight=5.0).repeat_weight, built(0.01, 5.0).leave_out_engaged) == (
        5.0,
        False,
    )


def test_a_hidden_item_never_comes_back(world: World) -> None:
    recommender = world.recommender()
    first = recommender.feed("u1", 5, explore=0.0)[0].item_id
    recommender.record(Event("hide-1", "u1", first, "hide", -1.0, T0 + 30 * DAY))
    for explore in (0.0, 1.0):
        assert first not in {r.item_id for r in recommender.feed("u1", 30, explore=explore)}


def test_a_new_user_starts_from_popular_items(world: World) -> None:
    feed = world.recommender().feed("someone-new", 6, explore=0.0)
    assert len(feed) == 6
    assert all(r.source == "popular" and r.reason == "Popular right now" for r in feed)
    assert styles(feed).count(2) >= 3  # style 2 sells the most
    explored = world.recommender().feed("someone-new", 6, explore=0.5)
    assert sum(r.source == "explore" for r in explored) == 3


def test_related_items_put_variants_and_co_bought_items_first(world: World) -> None:
    recommender = world.recommender()
    query = item_id(2, 0)
    related = recommender.related(query, 5)
    assert len(related) == 5 and query not in {r.item_id for r in related}
    assert related[0].item_id == item_id(2, 1)  # the other colour of the same product
    assert related[0].reason == "Another version of Red Sweater 00"
    assert all(style_of(r.item_id) in (2, 3) for r in related)
    only_style_3 = recommender.related(query, 3, filters=Filters(categories={"cat3"}))
    assert [style_of(r.item_id) for r in only_style_3] == [3, 3, 3]
    assert any(r.reason.startswith("Often bought with") for r in only_style_3)


def test_related_items_are_kept_per_recommender_and_filters_are_never_served_kept(
    world: World,
) -> None:
    kept = world.recommender()
    query = item_id(2, 0)
    first = kept.related(query, 5)
    assert len(kept.related_answers) == 1
    first.clear()  # a caller changing its list changes nothing kept
    again = kept.related(query, 5)
    assert again == world.recommender(RecommendConfig(related_cache_items=0)).related(query, 5)
    assert len(again) == 5
    only_style_3 = kept.related(query, 3, filters=Filters(categories={"cat3"}))
    assert [style_of(r.item_id) for r in only_style_3] == [3, 3, 3]
    assert len(kept.related_answers) == 1  # a filtered answer is not kept
    assert len(world.recommender().related_answers) == 0  # a new recommender starts empty


def test_items_that_stopped_selling_drop_out_of_related_items(world: World) -> None:
    config = RecommendConfig(related_freshness_weight=1.0)
    query = item_id(2, 0)
    related = [r.item_id for r in world.recommender(config).related(query, 5)]
    stale = set(related[1:])  # all but the other colour of the query's product
    freshness = np.array([-3.0 if i in stale else 0.5 for i in world.ids], np.float32)
    fresh_related = [r.item_id for r in world.recommender(config, freshness).related(query, 5)]
    assert fresh_related[0] == related[0] and not stale & set(fresh_related)
    with pytest.raises(ValueError, match="one freshness per indexed item"):
        world.recommender(config, freshness[1:])


def test_related_items_lean_to_the_types_bought_with_the_item(world: World) -> None:
    """Dresses (style 0) are bought with trousers (style 1): with complements on, more
    trousers come up for a dress, though other dresses look more like it."""
    attributes = dict(zip(world.ids, world.attributes, strict=True))
    complements = Complements.fit(world.events, attributes, now=None)
    scorer = complements.scorer(world.ids, attributes)
    config = RecommendConfig(related_walk_weight=0.0, related_variant_weight=0.0)
    query = item_id(0, 0)
    plain = styles(world.recommender(config).related(query, 10))
    paired_config = replace(config, related_complement_weight=0.5)
    paired = styles(world.recommender(paired_config, complements=scorer).related(query, 10))
    assert paired.count(1) > plain.count(1)


def test_search_finds_items_near_the_query_vector(world: World) -> None:
    results = world.recommender().search(world.centres[5], 5, query="green skirt")
    assert styles(results) == [5] * 5
    assert all(r.reason == "Matches “green skirt”" and r.source == "search" for r in results)


def test_an_item_added_after_the_graph_is_recommendable(world: World) -> None:
    recommender = world.recommender()
    vector = world.vectors[world.ids.index(item_id(3, 0))] + 0.01
    vector = (vector / np.linalg.norm(vector)).astype(np.float32)
    recommender.index.add(["brand-new"], vector[None, :], ["cat3"], [42.0])
    rebuilt = type(recommender)(
        recommender.index,
        recommender.graph,
        recommender.interests,
        [],
        recommender.profiles,
        world.titles,
        world.variants,
    )
    assert "brand-new" in {r.item_id for r in rebuilt.related(item_id(3, 0), 5)}
    assert rebuilt.related("brand-new", 3)


def test_bad_requests_raise_clear_errors(world: World) -> None:
    recommender = world.recommender()
    with pytest.raises(ValueError, match="n must be"):
        recommender.feed("u1", 0)
    with pytest.raises(ValueError, match="explore"):
        recommender.feed("u1", 5, explore=1.5)
    with pytest.raises(KeyError, match="nope"):
        recommender.related("nope")
    assert len(recommender.feed("u1", PER_STYLE * 6 + 10)) <= PER_STYLE * 6


def test_a_shop_without_history_still_fills_the_feed(world: World) -> None:
    from tastegraph.graph import TasteGraph
    from tastegraph.profiles import ProfileConfig, ProfileStore
    from tastegraph.recommend import Recommender

    full = world.recommender()
    bare = Recommender(
        full.index,
        TasteGraph.build([], world.ids),
        full.interests,
        [],
        ProfileStore(ProfileConfig()),
        world.titles,
        world.variants,
    )
    feed = bare.feed("first-visitor", 6, explore=0.0)
    assert len(feed) == 6 and len({r.item_id for r in feed}) == 6
    assert all(r.reason.startswith("Something to start with") for r in feed)
    assert len(set(styles(feed))) == 6  # one from each interest
