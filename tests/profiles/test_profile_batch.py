"""The batch recompute against the incremental updater, and skipped events."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from synthetic_space import WEIGHTS, Space, event, make_space

from tastegraph.profiles import ProfileConfig, ProfileStore
from tastegraph.profiles.batch import average_linkage, build_profiles
from tastegraph.store import Event

CONFIG = ProfileConfig(action_weights=WEIGHTS)


def mixed_history(space: Space, seed: int) -> list[Event]:
    """Three users, each engaging with three clusters over 60 days, in time order."""
    rng = np.random.default_rng(seed)
    events = []
    for u in range(3):
        for c in rng.choice(len(space.clusters), 3, replace=False):
            for _ in range(6):
                item = space.clusters[c][int(rng.integers(len(space.clusters[c])))]
                action = str(rng.choice(["view", "click", "save", "purchase"]))
                events.append(event(item, action, float(rng.uniform(0, 60)), user=f"u{u}"))
    return sorted(events, key=lambda e: e.ts)


def replay(events: list[Event], space: Space, config: ProfileConfig) -> ProfileStore:
    store = ProfileStore(config)
    for e in events:
        store.apply(e, space.embeddings)
    return store


@pytest.mark.parametrize("seed", [0, 1])
def test_batch_and_incremental_agree_on_separated_tastes(space: Space, seed: int) -> None:
    events = mixed_history(space, seed)
    batch = build_profiles(events, space.embeddings, CONFIG)
    online = replay(events, space, CONFIG)
    assert set(batch.profiles) == set(online.profiles) == {"u0", "u1", "u2"}
    for user_id, expected in batch.profiles.items():
        got = online.profiles[user_id]
        assert len(got.interests) == len(expected.interests) == 3
        medoids = {i.medoid_id: i.importance_at(got.updated_at or 0, CONFIG) for i in got.interests}
        assert {i.medoid_id for i in expected.interests} == set(medoids)
        for interest in expected.interests:
            assert medoids[interest.medoid_id] == pytest.approx(interest.importance)
        assert got.engaged == expected.engaged
        assert got.positive_events == expected.positive_events


def test_batch_applies_hides_like_the_updater(space: Space) -> None:
    a, b, c = space.clusters[0], space.clusters[1], space.clusters[2]
    events = [event(a[0]), event(a[1]), event(b[0], day=5), event(c[0], day=6)]
    events += [event(a[1], "hide", day=7), event(c[5], "hide", day=7)]
    batch = build_profiles(events, space.embeddings, CONFIG).profiles["u1"]
    online = replay(events, space, CONFIG).profiles["u1"]
    for profile in (batch, online):
        assert profile.hidden == {a[1], c[5]}
        assert sorted(i.medoid_id for i in profile.interests) == [a[0], b[0], c[0]]
        assert [i.item_ids for i in profile.interests if i.medoid_id == a[0]] == [[a[0]]]
    by_medoid = {
        i.medoid_id: i.importance_at(online.updated_at or 0, CONFIG) for i in online.interests
    }
    for interest in batch.interests:
        assert by_medoid[interest.medoid_id] == pytest.approx(interest.importance)
    penalty = float(space.vector(c[0]) @ space.vector(c[5]))
    assert by_medoid[c[0]] == pytest.approx(0.5 ** (1 / 30) - penalty)


def test_batch_keeps_the_most_important_interests_under_the_cap(space: Space) -> None:
    config = dataclasses.replace(CONFIG, max_interests=2)
    events = [event(space.clusters[c][0], day=c) for c in range(4)]
    for store in (build_profiles(events, space.embeddings, config), replay(events, space, config)):
        assert sorted(i.medoid_id for i in store.profiles["u1"].interests) == ["c2-i0", "c3-i0"]


def test_average_linkage_merges_while_clusters_are_alike_on_average() -> None:
    vectors = np.array([[1, 0], [0.9, np.sqrt(0.19)], [0, 1], [-1, 0]], dtype=np.float32)
    assert average_linkage(vectors, 0.8) == [[0, 1], [2], [3]]
    # [0, 1] to [2] averages (0 + 0.436) / 2 = 0.218: joined at 0.2, not at 0.25.
    assert average_linkage(vectors, 0.25) == [[0, 1], [2], [3]]
    assert average_linkage(vectors, 0.2) == [[0, 1, 2], [3]]
    assert average_linkage(vectors, -1.0) == [[0, 1, 2, 3]]


def test_events_on_items_without_an_embedding_are_skipped_and_counted(tmp_path: Path) -> None:
    space = make_space(tmp_path, n_clusters=2, per_cluster=3)
    events = [event(space.clusters[0][0]), event("unknown"), event("gone", "hide", day=1)]
    store = ProfileStore(CONFIG)
    assert [store.apply(e, space.embeddings) for e in events] == [True, False, False]
    assert store.skipped == 2
    batch = build_profiles(events, space.embeddings, CONFIG)
    assert batch.skipped == 2
    assert batch.embeddings_version == space.embeddings.version
    for profile in (store.profiles["u1"], batch.profiles["u1"]):
        assert [i.item_ids for i in profile.interests] == [[space.clusters[0][0]]]
        assert profile.hidden == set()
    assert build_profiles([event("unknown")], space.embeddings, CONFIG).profiles == {}
