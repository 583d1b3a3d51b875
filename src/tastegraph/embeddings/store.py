"""The versioned embedding store: item ids, a memory-mappable float32 matrix, a manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tastegraph import registry
from tastegraph.artifacts import current_version, publish_version


def embeddings_root(workdir: Path) -> Path:
    return registry.root(workdir, "embeddings")


class EmbeddingStore:
    """One published version. Vectors are L2-normalised, so a dot product is a cosine."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest = registry.read_manifest(folder, "embeddings")
        self.ids: list[str] = json.loads((folder / "ids.json").read_text())
        self.vectors = np.load(folder / "vectors.npy", mmap_mode="r")  # (N, dim) float32
        self._rows = {item_id: row for row, item_id in enumerate(self.ids)}

    @classmethod
    def open(cls, workdir: Path) -> EmbeddingStore:
        folder = current_version(embeddings_root(workdir))
        if folder is None:
            raise FileNotFoundError(f"no embeddings in {workdir}; run `tastegraph embed` first")
        return cls(folder)

    @property
    def version(self) -> str:
        return self.folder.name

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def vector(self, item_id: str) -> np.ndarray:
        if item_id not in self._rows:
            raise KeyError(f"item {item_id!r} has no embedding in version {self.version}")
        return np.asarray(self.vectors[self._rows[item_id]])

    def similar(self, item_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The k nearest other items by cosine, best first (exact search)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores = self.vectors @ self.vector(item_id)
        scores[self._rows[item_id]] = -np.inf
        top = np.argpartition(-scores, min(k, len(scores) - 1))[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[i], float(scores[i])) for i in top if np.isfinite(scores[i])]

    @staticmethod
    def publish(
        workdir: Path, ids: list[str], vectors: np.ndarray, manifest: dict[str, Any]
    ) -> Path:
        if vectors.shape[0] != len(ids) or vectors.dtype != np.float32:
            raise ValueError(
                f"expected ({len(ids)}, dim) float32 vectors, got {vectors.shape} {vectors.dtype}"
            )
        manifest = manifest | {"count": len(ids), "dim": int(vectors.shape[1])}

        def write(folder: Path) -> None:
            np.save(folder / "vectors.npy", np.ascontiguousarray(vectors))
            (folder / "ids.json").write_text(json.dumps(ids))
            registry.write_manifest(folder, "embeddings", manifest)

        return publish_version(embeddings_root(workdir), write)
