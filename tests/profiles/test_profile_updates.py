"""The incremental updater: joins, new interests, the cap, time decay, hides."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic_space import T0, WEIGHTS, Space, event

from tastegraph.config import Settings
from tastegraph.profiles import ProfileConfig, UserProfile, weighted_medoid
from tastegraph.profiles.config import DAY_S
from tastegraph.store import Event

CONFIG = ProfileConfig(action_weights=WEIGHTS)


def replay(space: Space, events: list[Event], config: ProfileConfig = CONFIG) -> UserProfile:
    profile = UserProfile("u1", config)
    for e in events:
        profile.update(e, space.vector(e.item_id))
    return profile


def cluster_of(item_id: str) -> str:
    return item_id.split("-")[0]


def test_two_tastes_give_two_interests_with_a_medoid_from_each(space: Space) -> None:
    a, b = space.clusters[0], space.clusters[3]
    events = [event(item, day=k) for k, item in enumerate(a[:5] + b[:4])]
    profile = replay(space, events)
    assert len(profile.interests) == 2
    by_cluster = {cluster_of(i.medoid_id): i for i in profile.interests}
    assert set(by_cluster) == {"c0", "c3"}
    assert set(by_cluster["c0"].item_ids) == set(a[:5])
    assert set(by_cluster["c3"].item_ids) == set(b[:4])
    assert profile.engaged == dict.fromkeys(a[:5] + b[:4], "purchase")


def test_the_medoid_is_the_weighted_medoid_by_brute_force() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((15, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    weights = rng.random(15)
    distances = 1.0 - vectors @ vectors.T  # (m, m) cosine distances
    assert weighted_medoid(weights, vectors) == int(np.argmin(distances @ weights))


def test_a_save_far_from_every_interest_opens_a_new_one(space: Space) -> None:
    profile = replay(space, [event(item) for item in space.clusters[0][:3]])
    assert len(profile.interests) == 1
    profile.update(event(space.clusters[1][0], "save", day=1), space.vector(space.clusters[1][0]))
    assert len(profile.interests) == 2
    newest = profile.interests[-1]
    assert newest.item_ids == [space.clusters[1][0]]
    assert newest.importance == pytest.approx(WEIGHTS["save"])
    # A save near the first interest joins it instead.
    profile.update(event(space.clusters[0][5], "save", day=2), space.vector(space.clusters[0][5]))
    assert len(profile.interests) == 2
    assert space.clusters[0][5] in profile.interests[0].item_ids


def test_beyond_the_cap_the_least_important_interest_is_dropped(space: Space) -> None:
    config = dataclasses.replace(CONFIG, max_interests=3)
    # Clusters 0..4, one purchase each a day apart, cluster 1 bought twice: cluster 0 is the
    # oldest and lightest when the cap bites, then cluster 2.
    events = [
        event(space.clusters[c][k], day=c) for c in range(5) for k in range(2 if c == 1 else 1)
    ]
    profile = replay(space, events, config)
    assert len(profile.interests) == 3
    assert {cluster_of(i.medoid_id) for i in profile.interests} == {"c1", "c3", "c4"}


def test_beyond_the_cap_the_two_most_similar_interests_merge(space: Space) -> None:
    # A join threshold above the in-cluster similarity makes every item its own interest;
    # at the cap the two from the same cluster merge rather than anything being dropped.
    config = dataclasses.replace(CONFIG, max_interests=2, join_threshold=0.99)
    a, b = space.clusters[0], space.clusters[2]
    profile = replay(space, [event(a[0]), event(b[0], day=1), event(a[1], day=2)], config)
    assert len(profile.interests) == 2
    merged = next(i for i in profile.interests if len(i.item_ids) == 2)
    assert set(merged.item_ids) == {a[0], a[1]}
    day2 = T0 + 2 * DAY_S
    assert sum(profile.importances(day2)) == pytest.approx(1.0 + 0.5 ** (1 / 30) + 0.5 ** (2 / 30))


def test_importance_halves_every_half_life(space: Space) -> None:
    config = dataclasses.replace(CONFIG, half_life_days=10.0)
    old, recent = space.clusters[0][0], space.clusters[1][0]
    profile = replay(space, [event(old, day=0), event(recent, day=10)], config)
    assert profile.importances() == pytest.approx([0.5, 1.0])
    assert profile.importances(T0 + 30 * DAY_S) == pytest.approx([0.125, 0.25])
    # A later event in the old interest adds at full weight on top of the decayed ones.
    profile.update(event(space.clusters[0][1], "save", day=20), space.vector(space.clusters[0][1]))
    assert profile.importances() == pytest.approx([0.25 + 0.7, 0.5])


def test_actions_weigh_purchase_over_save_over_click_over_view(space: Space) -> None:
    actions = ["view", "click", "save", "purchase"]
    events = [event(space.clusters[c][0], action) for c, action in enumerate(actions)]
    profile = replay(space, events)
    assert profile.importances() == pytest.approx([0.1, 0.3, 0.7, 1.0])
    assert profile.engaged[space.clusters[0][0]] == "view"
    profile.update(
        event(space.clusters[0][0], "purchase", day=1), space.vector(space.clusters[0][0])
    )
    assert profile.engaged[space.clusters[0][0]] == "purchase"


def test_event_order_does_not_change_importance(space: Space) -> None:
    items = space.clusters[2][:4]
    events = [event(item, day=3.0 * k) for k, item in enumerate(items)]
    forward = replay(space, events)
    backward = replay(space, events[::-1])
    assert forward.importances() == pytest.approx(backward.importances())
    assert forward.interests[0].medoid_id == backward.interests[0].medoid_id


def test_a_hide_takes_back_a_member_and_is_recorded(space: Space) -> None:
    a = space.clusters[0]
    profile = replay(space, [event(a[0]), event(a[1]), event(a[2], "save")])
    profile.update(event(a[1], "hide", day=0.5), space.vector(a[1]))
    assert profile.hidden == {a[1]}
    assert a[1] not in profile.interests[0].item_ids
    assert profile.importances() == pytest.approx(
        [1.0 * 0.5 ** (0.5 / 30) + 0.7 * 0.5 ** (0.5 / 30)]
    )
    # Buying it again un-hides it and brings it back.
    profile.update(event(a[1], day=1), space.vector(a[1]))
    assert profile.hidden == set()
    assert a[1] in profile.interests[0].item_ids


def test_a_hide_near_an_interest_lowers_it_and_far_from_all_changes_nothing(space: Space) -> None:
    a, b = space.clusters[0], space.clusters[1]
    profile = replay(space, [event(a[0]), event(a[1]), event(b[0], "save")])
    before = profile.importances()
    profile.update(event(a[5], "hide"), space.vector(a[5]))
    similarity = float(profile.interests[0].medoid @ space.vector(a[5]))
    assert profile.importances() == pytest.approx([before[0] - similarity, before[1]])
    profile.update(event(space.clusters[4][0], "hide"), space.vector(space.clusters[4][0]))
    assert profile.importances() == pytest.approx([before[0] - similarity, before[1]])
    assert profile.hidden == {a[5], space.clusters[4][0]}
    # Hiding the only member of an interest removes the interest.
    profile.update(event(b[0], "hide"), space.vector(b[0]))
    assert [cluster_of(i.medoid_id) for i in profile.interests] == ["c0"]


def test_members_are_capped_but_importance_counts_every_event(space: Space) -> None:
    config = dataclasses.replace(CONFIG, max_items_per_interest=4)
    items = space.clusters[0]
    profile = replay(
        space,
        [event(item, "save" if k < 6 else "purchase") for k, item in enumerate(items)],
        config,
    )
    (interest,) = profile.interests
    assert set(interest.item_ids) == set(items[6:])  # the four purchases outweigh the saves
    assert interest.importance == pytest.approx(6 * 0.7 + 4 * 1.0)
    assert interest.medoid_id in interest.item_ids


def test_interests_for_retrieval_are_the_most_important_first(space: Space) -> None:
    events = [event(space.clusters[0][0], day=0), event(space.clusters[1][0], "save", day=40)]
    events += [event(space.clusters[2][k], "click", day=40) for k in range(3)]
    profile = replay(space, events)
    top = profile.interests_for_retrieval(n=2)
    assert [cluster_of(q.medoid_id) for q in top] == ["c2", "c1"]
    assert top[0].importance == pytest.approx(0.9)
    assert sorted(top[0].item_ids) == space.clusters[2][:3]
    np.testing.assert_array_equal(top[1].vector, space.vector(space.clusters[1][0]))
    later = profile.interests_for_retrieval(T0 + 70 * DAY_S, n=8)
    assert [q.importance for q in later] == pytest.approx([0.45, 0.35, 0.25 * 0.5 ** (1 / 3)])


def test_a_new_user_is_cold_until_enough_positive_events(space: Space) -> None:
    profile = UserProfile("u1", CONFIG)
    assert profile.is_new and profile.interests_for_retrieval() == []
    for k in range(3):
        assert profile.is_new
        profile.update(event(space.clusters[0][k]), space.vector(space.clusters[0][k]))
    assert not profile.is_new


def test_bad_input_raises(space: Space) -> None:
    profile = replay(space, [event(space.clusters[0][0])])
    with pytest.raises(ValueError, match="vector"):
        profile.update(event(space.clusters[0][1]), np.zeros(8, dtype=np.float32))
    with pytest.raises(ValueError, match="user"):
        profile.update(event(space.clusters[0][1], user="u2"), space.vector(space.clusters[0][1]))
    with pytest.raises(ValueError, match="n must be"):
        profile.interests_for_retrieval(n=0)


def test_config_takes_action_weights_from_settings_and_checks_them() -> None:
    settings = Settings(action_weights={**WEIGHTS, "save": 0.8})
    assert ProfileConfig.from_settings(settings).action_weights["save"] == 0.8
    assert ProfileConfig().action_weights == Settings().action_weights
    with pytest.raises(ValueError, match="hide"):
        ProfileConfig(action_weights={**WEIGHTS, "hide": 0.5})
    with pytest.raises(ValueError, match="no weight"):
        ProfileConfig(action_weights={"purchase": 1.0})
    with pytest.raises(ValueError, match="max_interests"):
        ProfileConfig(max_interests=0)
    with pytest.raises(ValueError, match="join_threshold"):
        ProfileConfig(join_threshold=1.5)


def test_event_weights_can_come_from_the_events(space: Space) -> None:
    config = dataclasses.replace(CONFIG, weight_source="event")
    item = space.clusters[0][0]
    profile = replay(space, [event(item, "save", weight=0.9)], config)
    assert profile.importances() == pytest.approx([0.9])
    profile.update(event(item, "hide", day=0, weight=0.4), space.vector(item))  # always negative
    assert profile.importances() == pytest.approx([0.5])
