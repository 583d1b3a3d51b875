"""The published artifacts of a workdir: where each one lives and what its manifest says.

Every offline job publishes a new version of its artifact under the artifact's root
(`artifacts.publish_version`: readers see the old version until the CURRENT pointer
moves). The online system watches the roots listed here and swaps in what changed, so an
artifact the server holds must be listed here to be picked up without a restart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tastegraph.artifacts import current_version, publish_version


@dataclass(frozen=True)
class Artifact:
    """Where an artifact lives, and the kind and format its manifest must hold (the index
    checks its own format string, since its manifest's "kind" names the index type)."""

    folder: str  # under the workdir
    kind: str | None = None
    format: int | None = None
    # Versions published before the manifest carried a kind and format read as format 1.
    unmarked_is_format_1: bool = False


ARTIFACTS: dict[str, Artifact] = {
    "embeddings": Artifact("embeddings", "item_embeddings", 1, unmarked_is_format_1=True),
    "fusion": Artifact("models/fusion", "fusion", 1, unmarked_is_format_1=True),
    "index": Artifact("index"),
    "graph": Artifact("graph", "taste_graph", 1),
    "profiles": Artifact("profiles", "user_profiles", 2),  # 2: profiles keep recent events
    "reranker": Artifact("reranker", "related-reranker", 2),  # 2: trees as arrays, no pickle
    "related": Artifact("related", "related_items", 1),
    "projector": Artifact("models/projector", "item_projector", 1, unmarked_is_format_1=True),
    "feed": Artifact("models/feed", "feed_weights", 1),
}


def root(workdir: Path, name: str) -> Path:
    """The folder that holds every version of artifact `name`."""
    return workdir / ARTIFACTS[name].folder


def current(workdir: Path, name: str) -> Path | None:
    """The folder of the current version of `name`, or None if none was published."""
    return current_version(root(workdir, name))


def current_manifest(root: Path, name: str, missing: str) -> tuple[Path, dict[str, Any]]:
    """The current version of artifact `name` under `root` and its checked manifest, with
    its "version" and "path"; FileNotFoundError saying `missing` when none is published."""
    folder = current_version(root)
    if folder is None:
        raise FileNotFoundError(missing)
    manifest = read_manifest(folder, name) | {"version": folder.name, "path": str(folder)}
    return folder, manifest


def versions(workdir: Path) -> dict[str, str | None]:
    """The current version of every artifact (None where none was published)."""
    return {
        name: (folder.name if (folder := current(workdir, name)) else None) for name in ARTIFACTS
    }


def publish(workdir: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Publish a new version of `name`: `write` fills its folder (manifest included)."""
    return publish_version(root(workdir, name), write)


def write_manifest(folder: Path, name: str, content: Mapping[str, Any]) -> None:
    """Write `folder`'s manifest.json: `content` with the artifact's kind and format (which
    `content` cannot change) and, unless `content` has one, the time of writing."""
    artifact = ARTIFACTS[name]
    manifest = {"created_at": time.time()} | dict(content)
    manifest |= {"kind": artifact.kind, "format": artifact.format}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def outdated(folder: Path, name: str) -> bool:
    """Whether `folder` holds artifact `name` in a format older than the one read now."""
    kind, written = _kind_and_format(_read(folder), ARTIFACTS[name])
    artifact = ARTIFACTS[name]
    return (
        kind == artifact.kind
        and isinstance(written, int)
        and artifact.format is not None
        and written < artifact.format
    )


def read_manifest(folder: Path, name: str) -> dict[str, Any]:
    """`folder`'s manifest.json, refused unless it holds artifact `name` in its format."""
    artifact = ARTIFACTS[name]
    manifest = _read(folder)
    kind, written = _kind_and_format(manifest, artifact)
    if kind != artifact.kind or written != artifact.format:
        raise ValueError(
            f"{folder} holds {kind} format {written}; "
            f"expected {artifact.kind} format {artifact.format}"
        )
    return manifest


def _read(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return manifest


def _kind_and_format(manifest: Mapping[str, Any], artifact: Artifact) -> tuple[Any, Any]:
    if artifact.unmarked_is_format_1 and "format" not in manifest:
        return manifest.get("kind", artifact.kind), 1
    return manifest.get("kind"), manifest.get("format")
