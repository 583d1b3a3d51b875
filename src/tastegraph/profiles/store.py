"""All users' profiles in memory, updated per event; saved as JSON plus one .npy matrix."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tastegraph import registry
from tastegraph.artifacts import atomic_dir
from tastegraph.profiles.config import ProfileConfig
from tastegraph.profiles.interest import Interest
from tastegraph.profiles.profile import UserProfile
from tastegraph.store import Event

log = logging.getLogger(__name__)


class Embeddings(Protocol):
    """What profiles need from an embedding store (EmbeddingStore has it)."""

    def __contains__(self, item_id: object) -> bool: ...

    def vector(self, item_id: str) -> np.ndarray: ...


def profiles_root(workdir: Path) -> Path:
    return registry.root(workdir, "profiles")


class ProfileStore:
    def __init__(self, config: ProfileConfig, embeddings_version: str | None = None) -> None:
        self.config = config
        self.embeddings_version = embeddings_version  # the embeddings the vectors came from
        # The store's event log position these profiles include (Store.last_event_seq);
        # a server replays the events after it. None when unknown.
        self.events_through: int | None = None
        self.profiles: dict[str, UserProfile] = {}
        self.skipped = 0  # events left out because their item has no embedding

    def __len__(self) -> int:
        return len(self.profiles)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.profiles

    def __iter__(self) -> Iterator[UserProfile]:
        return iter(self.profiles.values())

    def get(self, user_id: str) -> UserProfile | None:
        return self.profiles.get(user_id)

    def profile(self, user_id: str) -> UserProfile:
        """The user's profile, created empty for a new user."""
        if user_id not in self.profiles:
            self.profiles[user_id] = UserProfile(user_id, self.config)
        return self.profiles[user_id]

    def apply(self, event: Event, embeddings: Embeddings) -> bool:
        """Update the user's profile; False (and counted in skipped) when the item has no
        embedding."""
        if event.item_id not in embeddings:
            self.skipped += 1
            return False
        self.profile(event.user_id).update(event, embeddings.vector(event.item_id))
        return True

    def save(self, folder: Path) -> None:
        """Write to folder (which must not exist), atomically."""
        with atomic_dir(folder) as tmp:
            self._write(tmp)

    def publish(self, workdir: Path) -> Path:
        """Write a new version under workdir/profiles and make it the current one."""
        return registry.publish(workdir, "profiles", self._write)

    @classmethod
    def open(cls, workdir: Path) -> ProfileStore:
        folder = registry.current(workdir, "profiles")
        if folder is None:
            raise FileNotFoundError(f"no profiles in {workdir}; build them first")
        return cls.load(folder)

    @classmethod
    def load(cls, folder: Path) -> ProfileStore:
        manifest = registry.read_manifest(folder, "profiles")
        store = cls(ProfileConfig(**manifest["config"]), manifest["embeddings_version"])
        store.skipped = manifest["skipped"]
        store.events_through = manifest.get("events_through")
        vectors = np.load(folder / "vectors.npy", allow_pickle=False)  # (members, d) float32
        for entry in json.loads((folder / "profiles.json").read_text()):
            profile = UserProfile(entry["user_id"], store.config)
            profile.updated_at = entry["updated_at"]
            profile.positive_events = entry["positive_events"]
            profile.hidden = set(entry["hidden"])
            profile.engaged = dict(entry["engaged"])
            profile.recent = [(i, a, float(t)) for i, a, t in entry["recent"]]
            for saved in entry["interests"]:
                rows = slice(saved["offset"], saved["offset"] + len(saved["item_ids"]))
                profile.interests.append(
                    Interest(
                        item_ids=list(saved["item_ids"]),
                        weights=np.array(saved["weights"], dtype=np.float64),
                        vectors=vectors[rows],
                        importance=saved["importance"],
                        last_update=saved["last_update"],
                        medoid_index=saved["medoid_index"],
                    )
                )
            store.profiles[profile.user_id] = profile
        log.info("loaded %d profiles from %s", len(store), folder)
        return store

    def _write(self, folder: Path) -> None:
        entries: list[dict[str, Any]] = []
        chunks: list[np.ndarray] = []
        offset = 0
        for user_id in sorted(self.profiles):
            profile = self.profiles[user_id]
            interests = []
            for interest in profile.interests:
                interests.append(
                    {
                        "item_ids": interest.item_ids,
                        "weights": [float(w) for w in interest.weights],
                        "importance": float(interest.importance),
                        "last_update": interest.last_update,
                        "medoid_index": interest.medoid_index,
                        "offset": offset,
                    }
                )
                chunks.append(interest.vectors)
                offset += len(interest.item_ids)
            entries.append(
                {
                    "user_id": user_id,
                    "updated_at": profile.updated_at,
                    "positive_events": profile.positive_events,
                    "hidden": sorted(profile.hidden),
                    "engaged": dict(sorted(profile.engaged.items())),
                    "recent": profile.recent,
                    "interests": interests,
                }
            )
        matrix = np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)
        manifest = {
            "config": dataclasses.asdict(self.config),
            "embeddings_version": self.embeddings_version,
            "users": len(self.profiles),
            "interests": sum(len(p.interests) for p in self.profiles.values()),
            "dim": int(matrix.shape[1]),
            "skipped": self.skipped,
            "events_through": self.events_through,
        }
        np.save(folder / "vectors.npy", np.ascontiguousarray(matrix, dtype=np.float32))
        (folder / "profiles.json").write_text(json.dumps(entries))
        registry.write_manifest(folder, "profiles", manifest)
