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
    """Where an artifact lives and, for those whose manifest is checked here, the kind and
    format it must hold (the index checks its own format string; the embeddings, fusion
    model and projector manifests carry no format yet)."""

    folder: str  # under the workdir
    kind: str | None = None
    format: int | None = None


ARTIFACTS: dict[str, Artifact] = {
    "embeddings": Artifact("embeddings"),
    "fusion": Artifact("models/fusion"),
    "index": Artifact("index"),
    "graph": Artifact("graph", "taste_graph", 1),
    "profiles": Artifact("profiles", "user_profiles", 2),  # 2: profiles keep recent events
    "reranker": Artifact("reranker", "related-reranker", 2),  # 2: trees as arrays, no pickle
    "projector": Artifact("models/projector"),
}


def root(workdir: Path, name: str) -> Path:
    """The folder that holds every version of artifact `name`."""
    return workdir / ARTIFACTS[name].folder


def current(workdir: Path, name: str) -> Path | None:
    """The folder of the current version of `name`, or None if none was published."""
    return current_version(root(workdir, name))


def versions(workdir: Path) -> dict[str, str | None]:
    """The current version of every artifact (None where none was published)."""
    return {
        name: (folder.name if (folder := current(workdir, name)) else None) for name in ARTIFACTS
    }


def publish(workdir: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Publish a new version of `name`: `write` fills its folder (manifest included)."""
    return publish_version(root(workdir, name), write)


def write_manifest(folder: Path, name: str, content: Mapping[str, Any]) -> None:
    """Write `folder`'s manifest.json: `content` with the artifact's kind and format."""
    artifact = ARTIFACTS[name]
    manifest = {"kind": artifact.kind, "format": artifact.format, "created_at": time.time()}
    (folder / "manifest.json").write_text(json.dumps(manifest | dict(content), indent=2) + "\n")


def outdated(folder: Path, name: str) -> bool:
    """Whether `folder` holds artifact `name` in a format older than the one read now."""
    manifest = json.loads((folder / "manifest.json").read_text())
    artifact = ARTIFACTS[name]
    written = manifest.get("format")
    return (
        manifest.get("kind") == artifact.kind
        and isinstance(written, int)
        and artifact.format is not None
        and written < artifact.format
    )


def read_manifest(folder: Path, name: str) -> dict[str, Any]:
    """`folder`'s manifest.json, refused unless it holds artifact `name` in its format."""
    artifact = ARTIFACTS[name]
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    if manifest.get("kind") != artifact.kind or manifest.get("format") != artifact.format:
        raise ValueError(
            f"{folder} holds {manifest.get('kind')} format {manifest.get('format')}; "
            f"expected {artifact.kind} format {artifact.format}"
        )
    return manifest
