"""The full recompute: cluster each user's engaged items from scratch (PinnerSage-style).

The incremental updater approximates this: an item joins an interest whose medoid is at
least join_threshold alike; here clusters merge while their average pairwise cosine is at
least join_threshold. On well-separated tastes both give the same interests and medoids.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tastegraph.config import Settings
from tastegraph.profiles.config import ProfileConfig
from tastegraph.profiles.interest import Interest, weighted_medoid
from tastegraph.profiles.profile import UserProfile
from tastegraph.profiles.store import Embeddings, ProfileStore
from tastegraph.store import Event, Store

log = logging.getLogger(__name__)


def average_linkage(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Agglomerative clustering of unit vectors (n, d): merge the two clusters with the
    highest average pairwise cosine while it is at least threshold. O(n^3) in numpy;
    callers bound n. Clusters come as row lists, in order of their first row."""
    n = len(vectors)
    sims = (vectors @ vectors.T).astype(np.float64)  # (n, n)
    np.fill_diagonal(sims, -np.inf)
    sizes = np.ones(n)
    clusters: list[list[int]] = [[row] for row in range(n)]
    for _ in range(n - 1):
        i, j = divmod(int(np.argmax(sims)), n)
        if sims[i, j] < threshold:
            break
        i, j = min(i, j), max(i, j)
        # Lance-Williams update for average linkage: size-weighted mean of the two rows.
        merged = (sizes[i] * sims[i] + sizes[j] * sims[j]) / (sizes[i] + sizes[j])
        sims[i, :] = merged
        sims[:, i] = merged
        sims[i, i] = -np.inf
        sims[j, :] = -np.inf
        sims[:, j] = -np.inf
        sizes[i] += sizes[j]
        clusters[i] += clusters[j]
        clusters[j] = []
    return [sorted(rows) for rows in clusters if rows]


def cluster_profile(
    user_id: str, events: Iterable[Event], embeddings: Embeddings, config: ProfileConfig
) -> UserProfile:
    """One user's profile from all their events (every item must have an embedding)."""
    profile = UserProfile(user_id, config)
    ordered = sorted(events, key=lambda event: event.ts)
    if not ordered:
        return profile
    now = ordered[-1].ts
    profile.updated_at = now
    positive: dict[str, float] = defaultdict(float)  # item -> weight decayed to now
    negative: dict[str, float] = defaultdict(float)
    for event in ordered:
        weight = config.event_weight(event) * config.decay(now - event.ts)
        if weight > 0:
            positive[event.item_id] += weight
            profile.positive_events += 1
            profile.hidden.discard(event.item_id)
            profile.note_engaged(event.item_id, event.action)
            profile.note_recent(event)
        elif weight < 0:
            negative[event.item_id] += weight
            if event.action == "hide":
                profile.hidden.add(event.item_id)
    # Negative feedback on an engaged item takes back what the item brought.
    net = {item: w + negative.get(item, 0.0) for item, w in positive.items()}
    items = sorted((item for item in net if net[item] > 0), key=lambda item: (-net[item], item))
    items = items[: config.max_batch_items]
    if items:
        vectors = np.stack([embeddings.vector(item) for item in items]).astype(np.float32)
        weights = np.array([net[item] for item in items])  # (n,)
        for rows in average_linkage(vectors, config.join_threshold):
            kept = sorted(rows, key=lambda row: -weights[row])[: config.max_items_per_interest]
            interest = Interest(
                item_ids=[items[row] for row in kept],
                weights=weights[kept],
                vectors=vectors[kept],
                importance=float(weights[rows].sum()),
                last_update=now,
            )
            interest.medoid_index = weighted_medoid(interest.weights, interest.vectors)
            profile.interests.append(interest)
    # Negative feedback on items never engaged lowers the nearest interest.
    for item, weight in negative.items():
        if item not in positive:
            profile.penalise_nearest(embeddings.vector(item), weight, now)
    profile.enforce_cap(now)
    return profile


def build_profiles(
    events: Iterable[Event], embeddings: Embeddings, config: ProfileConfig | None = None
) -> ProfileStore:
    """Every user's profile from scratch. Events on items without an embedding are
    skipped and counted in the result's `skipped`."""
    config = config or ProfileConfig()
    store = ProfileStore(config, embeddings_version=getattr(embeddings, "version", None))
    by_user: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event.item_id in embeddings:
            by_user[event.user_id].append(event)
        else:
            store.skipped += 1
    for user_id, user_events in by_user.items():
        store.profiles[user_id] = cluster_profile(user_id, user_events, embeddings, config)
    log.info(
        "built %d profiles (%d interests); %d events skipped for items without an embedding",
        len(store),
        sum(len(profile.interests) for profile in store),
        store.skipped,
    )
    return store


def publish_profiles(
    store: Store, embeddings: Embeddings, settings: Settings
) -> tuple[Path, ProfileStore]:
    """Recompute every profile from the events stored so far and publish them; the
    profiles remember the log position they include, so a server can replay the rest."""
    through = store.last_event_seq()
    profiles = build_profiles(
        store.iter_events(through), embeddings, ProfileConfig.from_settings(settings)
    )
    profiles.events_through = through
    return profiles.publish(settings.workdir), profiles
