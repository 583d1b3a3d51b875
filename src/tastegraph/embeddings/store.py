"""The versioned embedding store: item ids, a memory-mappable float32 matrix, a manifest,
and each item's photo colour signature (`encoders/colour.py`) where the embed job made one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tastegraph import registry
from tastegraph.artifacts import current_version, publish_version

COLOURS_FILE = "colours.npy"


def embeddings_root(workdir: Path) -> Path:
    return registry.root(workdir, "embeddings")


class EmbeddingStore:
    """One published version. Vectors are L2-normalised, so a dot product is a cosine."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest = registry.read_manifest(folder, "embeddings")
        self.ids: list[str] = json.loads((folder / "ids.json").read_text())
        self.vectors = np.load(folder / "vectors.npy", mmap_mode="r")  # (N, dim) float32
        colours = folder / COLOURS_FILE
        # (N, colour dim) float32, zeros for an item without a photo; None in a store made
        # before there were signatures, or by a job that made none
        self.colours = np.load(colours, mmap_mode="r") if colours.is_file() else None
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

    @property
    def colour_signature(self) -> str:
        """The colour signature ("name@version") the store holds; "" where it holds none."""
        return str(self.manifest.get("colour_signature", "")) if self.colours is not None else ""

    def colour(self, item_id: str) -> np.ndarray | None:
        """The colour signature of the item's photo; None where the store has none."""
        if item_id not in self._rows:
            raise KeyError(f"item {item_id!r} has no embedding in version {self.version}")
        return None if self.colours is None else np.asarray(self.colours[self._rows[item_id]])

    def colour_rows(self, item_ids: list[str]) -> np.ndarray:
        """(len(item_ids), colour dim) colour signatures; ValueError where the store has none."""
        if self.colours is None:
            raise ValueError(f"embeddings {self.version} have no colour signatures")
        return np.asarray(self.colours[[self._rows[i] for i in item_ids]])

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
        workdir: Path,
        ids: list[str],
        vectors: np.ndarray,
        manifest: dict[str, Any],
        colours: np.ndarray | None = None,
    ) -> Path:
        for name, matrix in (("vectors", vectors), ("colours", colours)):
            if matrix is not None and (matrix.shape[0] != len(ids) or matrix.dtype != np.float32):
                raise ValueError(
                    f"expected ({len(ids)}, dim) float32 {name}, got {matrix.shape} {matrix.dtype}"
                )
        manifest = manifest | {"count": len(ids), "dim": int(vectors.shape[1])}

        def write(folder: Path) -> None:
            np.save(folder / "vectors.npy", np.ascontiguousarray(vectors))
            if colours is not None:
                np.save(folder / COLOURS_FILE, np.ascontiguousarray(colours))
            (folder / "ids.json").write_text(json.dumps(ids))
            registry.write_manifest(folder, "embeddings", manifest)

        return publish_version(embeddings_root(workdir), write)
