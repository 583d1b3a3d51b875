from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastegraph.embeddings.features import FeatureCache, cache_dir


def test_shards_round_trip_and_survive_reopening(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, dim=3)
    cache.add(["a", "b"], np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    cache.add(["c"], np.array([[7, 8, 9]], dtype=np.float32))
    reopened = FeatureCache(tmp_path, dim=3)
    assert len(reopened) == 3
    np.testing.assert_array_equal(reopened.get(["c", "a"]), [[7, 8, 9], [1, 2, 3]])
    assert reopened.missing(["a", "d", "d", "e"]) == ["d", "e"]


def test_wrong_width_is_refused(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, dim=3)
    with pytest.raises(ValueError, match=r"\(1, 3\)"):
        cache.add(["a"], np.zeros((1, 4), dtype=np.float32))


def test_a_shard_killed_mid_write_is_ignored_and_cleaned(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, dim=2)
    cache.add(["a"], np.ones((1, 2), dtype=np.float32))
    (tmp_path / ".shard-000001.npz.x.tmp").write_bytes(b"PK\x03\x04 half a zip")
    reopened = FeatureCache(tmp_path, dim=2)
    assert reopened.missing(["a", "b"]) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-000000.npz"]


def test_cache_folder_names_tower_and_version(tmp_path: Path) -> None:
    folder = cache_dir(tmp_path, "clip:/home/me/my model", "abc123")
    assert folder.parent == tmp_path / "features"
    assert folder.name.endswith("@abc123") and "/" not in folder.name
