"""Saving and loading profiles, and time-decayed popularity for new users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from synthetic_space import T0, WEIGHTS, Space, event

from tastegraph.profiles import ProfileConfig, ProfileStore, UserProfile, popular_items
from tastegraph.profiles.config import DAY_S


def assert_same(a: UserProfile, b: UserProfile) -> None:
    assert (a.user_id, a.updated_at, a.positive_events) == (
        b.user_id,
        b.updated_at,
        b.positive_events,
    )
    assert (a.hidden, a.engaged) == (b.hidden, b.engaged)
    assert len(a.interests) == len(b.interests)
    for x, y in zip(a.interests, b.interests, strict=True):
        assert (x.item_ids, x.medoid_id, x.importance, x.last_update) == (
            y.item_ids,
            y.medoid_id,
            y.importance,
            y.last_update,
        )
        np.testing.assert_array_equal(x.weights, y.weights)
        np.testing.assert_array_equal(x.vectors, y.vectors)
        assert y.vectors.dtype == np.float32


def test_save_and_load_round_trip(space: Space, tmp_path: Path) -> None:
    config = ProfileConfig(action_weights=WEIGHTS, max_interests=4, half_life_days=7.0)
    store = ProfileStore(config, embeddings_version=space.embeddings.version)
    a, b = space.clusters[0], space.clusters[1]
    for e in [event(a[0]), event(a[1], "save", 1), event(b[0], day=2), event(a[2], "hide", 3)]:
        store.apply(e, space.embeddings)
    store.apply(event("unknown"), space.embeddings)
    store.apply(event(b[1], "click", user="u2"), space.embeddings)
    store.save(tmp_path / "saved")
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = ProfileStore.load(tmp_path / "saved")
    assert loaded.config == config
    assert (loaded.skipped, loaded.embeddings_version) == (1, space.embeddings.version)
    assert set(loaded.profiles) == {"u1", "u2"}
    for user_id, profile in store.profiles.items():
        assert_same(profile, loaded.profiles[user_id])
    # Both go on identically.
    later = event(a[3], "purchase", day=4)
    store.apply(later, space.embeddings)
    loaded.apply(later, space.embeddings)
    assert_same(store.profiles["u1"], loaded.profiles["u1"])


def test_publish_and_open_the_current_version(space: Space, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    with pytest.raises(FileNotFoundError):
        ProfileStore.open(workdir)
    store = ProfileStore(ProfileConfig(action_weights=WEIGHTS))
    empty = store.publish(workdir)
    assert len(ProfileStore.open(workdir)) == 0
    store.apply(event(space.clusters[0][0]), space.embeddings)
    second = store.publish(workdir)
    assert second != empty
    assert ProfileStore.open(workdir).profiles["u1"].interests[0].medoid_id == "c0-i0"
    manifest = json.loads((second / "manifest.json").read_text())
    assert (manifest["users"], manifest["interests"], manifest["dim"]) == (1, 1, 32)
    (second / "manifest.json").write_text(json.dumps(manifest | {"kind": "index"}))
    with pytest.raises(ValueError, match="user_profiles"):
        ProfileStore.load(second)


def test_popularity_decays_with_the_half_life() -> None:
    now = T0 + 20 * DAY_S
    events = [event("old", day=0, user=f"u{k}") for k in range(4)]  # 4 purchases 20 days ago
    events += [event("new", "save", day=20, user=f"u{k}") for k in range(2)]  # 2 saves now
    events += [event("new", "hide", day=20, user="u9"), event("future", day=21)]

    def ranked(half_life_days: float, n: int = 5, **kwargs: Any) -> list[tuple[str, float]]:
        return popular_items(events, now, half_life_days, n, **kwargs)

    # 4 x 1.0 at two half-lives: 1.0; 2 x 0.7 now: 1.4. Hides and future events count nothing.
    assert [item for item, _ in ranked(10)] == ["new", "old"]
    assert [score for _, score in ranked(10)] == pytest.approx([1.4, 1.0])
    # With a longer half-life the old purchases still lead: 4 x 0.5^0.5.
    assert [(item, round(score, 9)) for item, score in ranked(40, n=1)] == [
        ("old", round(4 * 0.5**0.5, 9))
    ]
    by_action = ranked(10, action_weights={**WEIGHTS, "save": 0.1})
    assert [item for item, _ in by_action] == ["old", "new"]
    assert [score for _, score in by_action] == pytest.approx([1.0, 0.2])
    with pytest.raises(ValueError):
        ranked(10, n=0)
