"""Tower features, computed once per content and cached on disk in append-only shards.

A cache lives in features/<tower>@<version>/ and holds shard-NNNNNN.npz files, each with
`keys` (content hashes) and `features` (float32). A shard appears whole or not at all, so a
job killed at any point resumes by computing only the keys no shard holds yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tastegraph.artifacts import atomic_path, remove_stale_temporaries

_SHARD = re.compile(r"shard-(\d{6})\.npz")


def cache_dir(workdir: Path, tower_name: str, tower_version: str) -> Path:
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", tower_name)
    return workdir / "features" / f"{safe_name}@{tower_version}"


class FeatureCache:
    def __init__(self, directory: Path, dim: int) -> None:
        self.directory = directory
        self.dim = dim
        remove_stale_temporaries(directory)
        self._rows: dict[str, tuple[int, int]] = {}  # key -> (shard number, row)
        self._shards: dict[int, np.ndarray] = {}
        for path in sorted(directory.glob("shard-*.npz")):
            self._load_shard(path)

    def _load_shard(self, path: Path) -> None:
        match = _SHARD.fullmatch(path.name)
        if match is None:
            return
        number = int(match.group(1))
        with np.load(path, allow_pickle=False) as shard:
            keys, features = shard["keys"], shard["features"]
        if features.shape != (len(keys), self.dim):
            raise ValueError(f"{path}: features {features.shape} do not match {len(keys)} keys")
        self._shards[number] = features
        for row, key in enumerate(keys.tolist()):
            self._rows.setdefault(key, (number, row))

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys not cached yet, each once, in first-seen order."""
        return [k for k in dict.fromkeys(keys) if k not in self._rows]

    def missing_content(self, content: dict[str, str]) -> list[tuple[str, str]]:
        """The (key, content) pairs not cached yet; content is a photo path or a text."""
        return [(key, content[key]) for key in self.missing(content)]

    def add(self, keys: Sequence[str], features: np.ndarray) -> Path:
        """Write one new shard; it is durable and visible once this returns."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.shape != (len(keys), self.dim):
            raise ValueError(
                f"expected features of shape ({len(keys)}, {self.dim}), got {features.shape}"
            )
        number = max(self._shards, default=-1) + 1
        path = self.directory / f"shard-{number:06d}.npz"
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, keys=np.array(keys, dtype=str), features=features)
        self._load_shard(path)
        return path

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """(len(keys), dim) float32; every key must be cached."""
        out = np.empty((len(keys), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            number, row = self._rows[key]
            out[i] = self._shards[number][row]
        return out
