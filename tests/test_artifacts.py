from __future__ import annotations

from pathlib import Path

import pytest

from tastegraph.artifacts import (
    atomic_path,
    current_version,
    publish_version,
    remove_stale_temporaries,
)


def test_atomic_path_leaves_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_publish_version_moves_current_only_when_complete(tmp_path: Path) -> None:
    first = publish_version(tmp_path, lambda folder: (folder / "x").write_text("1"))
    assert current_version(tmp_path) == first
    with pytest.raises(RuntimeError):

        def crash(folder: Path) -> None:
            (folder / "x").write_text("2")
            raise RuntimeError("killed")

        publish_version(tmp_path, crash)
    assert current_version(tmp_path) == first
    assert (first / "x").read_text() == "1"
    second = publish_version(tmp_path, lambda folder: (folder / "x").write_text("3"))
    assert current_version(tmp_path) == second != first


def test_no_version_published_yet(tmp_path: Path) -> None:
    assert current_version(tmp_path / "nothing") is None


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".shard-000001.npz.abc.tmp").write_text("partial")
    (tmp_path / ".v1.xyz.tmp").mkdir()
    (tmp_path / "shard-000000.npz").write_text("whole")
    remove_stale_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["shard-000000.npz"]
