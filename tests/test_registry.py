"""Every artifact's manifest is written and checked the same way (registry.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tastegraph import registry
from tastegraph.embeddings.store import EmbeddingStore


def test_the_registry_writes_kind_and_format_and_content_cannot_change_them(
    tmp_path: Path,
) -> None:
    registry.write_manifest(tmp_path, "fusion", {"kind": "other", "format": 9, "steps": 3})
    manifest = registry.read_manifest(tmp_path, "fusion")
    assert (manifest["kind"], manifest["format"], manifest["steps"]) == ("fusion", 1, 3)


@pytest.mark.parametrize("name", ["embeddings", "fusion", "projector"])
def test_a_manifest_of_another_kind_is_refused_naming_both(tmp_path: Path, name: str) -> None:
    registry.write_manifest(tmp_path, "graph", {})
    with pytest.raises(
        ValueError, match=f"taste_graph format 1; expected {registry.ARTIFACTS[name].kind}"
    ):
        registry.read_manifest(tmp_path, name)


def test_versions_published_before_manifests_had_a_format_read_as_format_1(
    tmp_path: Path,
) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "fusion", "steps": 3}))
    assert registry.read_manifest(tmp_path, "fusion")["steps"] == 3
    assert not registry.outdated(tmp_path, "fusion")
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "fusion", "format": 2}))
    with pytest.raises(ValueError, match="fusion format 2; expected fusion format 1"):
        registry.read_manifest(tmp_path, "fusion")
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "taste_graph"}))
    with pytest.raises(ValueError, match="taste_graph format None"):
        registry.read_manifest(tmp_path, "graph")


def test_published_embeddings_carry_their_kind_and_are_checked_on_open(tmp_path: Path) -> None:
    folder = EmbeddingStore.publish(tmp_path, ["a"], np.ones((1, 4), np.float32), {})
    assert EmbeddingStore.open(tmp_path).manifest["kind"] == "item_embeddings"
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(manifest | {"kind": "user_profiles"}))
    with pytest.raises(ValueError, match="expected item_embeddings format 1"):
        EmbeddingStore.open(tmp_path)
