"""Fusion training on a dense log: the training budget against training every pair of every
epoch, in one run.

A film-ratings log is dense: people rate dozens of films in one sitting, so one-hour
sessions yield hundreds of thousands of co-engaged pairs from under 100,000 ratings, and
training every pair for every taste epoch took 54 minutes on MovieLens-sized data. The
budget (`TrainConfig.max_content_steps`, `max_taste_steps`) caps the batches whatever the
log; taste batches are drawn by weight, dense users damped (`TrainConfig.owner_power`).
The bench builds such a log synthetically (items in taste clusters, users rating in
sittings), trains with the budget, and sets the time against the batches the unbudgeted
schedule would run at this run's time per batch (the pairing, timed on its own, counted
once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tastegraph.embeddings.pairs import engagement_groups, taste_pairs
from tastegraph.embeddings.table import FeatureTable
from tastegraph.embeddings.train import TrainConfig, train_fusion
from tastegraph.store import Event

TARGET_SECONDS = 300.0
CLUSTERS = 20
IMAGE_DIM, TEXT_DIM = 1280, 384  # the default towers' widths
MINUTE, DAY = 60.0, 86400.0


@dataclass(frozen=True)
class DenseLog:
    table: FeatureTable
    events: list[Event]
    users: int


def dense_log(
    items: int = 1700, ratings: int = 90_000, per_user: int = 95, seed: int = 0
) -> DenseLog:
    """`items` items with photo and text features clustered by taste, and `ratings` ratings by
    users who rate about `per_user` items each (four in five from their own cluster), in
    sittings of about 35 ratings a minute or two apart, days between sittings."""
    rng = np.random.default_rng(seed)
    cluster_of = rng.integers(CLUSTERS, size=items)
    table = FeatureTable(
        [f"item{row}" for row in range(items)],
        _clustered(rng, cluster_of, IMAGE_DIM),
        _clustered(rng, cluster_of, TEXT_DIM),
        np.ones(items, dtype=bool),
        np.ones(items, dtype=bool),
        [None] * items,
    )
    members = [np.flatnonzero(cluster_of == c) for c in range(CLUSTERS)]
    events: list[Event] = []
    user = 0
    while len(events) < ratings:
        taste = members[user % CLUSTERS]
        count = min(per_user, ratings - len(events), items)
        own = rng.choice(taste, min(int(0.8 * count), len(taste)), replace=False)
        mine = np.union1d(own, rng.choice(items, count - len(own), replace=False))
        start = 0.0
        for sitting in np.array_split(rng.permutation(mine), max(1, count // 35)):
            start += rng.uniform(1, 10) * DAY
            gaps = np.cumsum(rng.uniform(0.5, 2.0, len(sitting)) * MINUTE)
            events += [
                Event(f"r{len(events) + i}", f"user{user}", f"item{row}", "save", 0.8, start + gap)
                for i, (row, gap) in enumerate(zip(sitting, gaps, strict=True))
            ]
        user += 1
    return DenseLog(table, events, user)


def _clustered(rng: np.random.Generator, cluster_of: np.ndarray, dim: int) -> np.ndarray:
    centres = rng.normal(size=(CLUSTERS, dim)).astype(np.float32)
    noise = rng.normal(size=(len(cluster_of), dim)).astype(np.float32)
    # Non-negative, like pooled conv features.
    return np.asarray(np.abs(centres[cluster_of] + noise), dtype=np.float32)


def unbudgeted_batches(config: TrainConfig, content_items: int, pairs: int) -> int:
    """The batches of every epoch over every item and pair: the schedule before the budget."""
    per_epoch = -(-content_items // config.batch_size), -(-pairs // config.batch_size)
    return config.content_epochs * per_epoch[0] + config.taste_epochs * per_epoch[1]


def run(items: int = 1700, ratings: int = 90_000, seed: int = 0) -> dict[str, float]:
    log = dense_log(items, ratings, seed=seed)
    config = TrainConfig(seed=seed)
    index = {item: row for row, item in enumerate(log.table.item_ids)}
    start = time.perf_counter()
    taste_pairs(engagement_groups(log.events, index), seed=seed)  # training's first step
    pairing = time.perf_counter() - start
    start = time.perf_counter()
    result = train_fusion(log.table, log.events, config)
    seconds = time.perf_counter() - start
    trained = sum(result.steps.values())
    if trained == 0:
        raise ValueError(f"nothing to train on in {len(log.events)} ratings of {items} items")
    per_batch = max(seconds - pairing, 0.0) / trained
    unbudgeted = unbudgeted_batches(config, result.content_items, result.taste_pairs)
    figures = {
        "items": float(items),
        "ratings": float(len(log.events)),
        "users": float(log.users),
        "pairs": float(result.taste_pairs),
        "batches": float(trained),
        "seconds": seconds,
        "unbudgeted_batches": float(unbudgeted),
        "unbudgeted_seconds": pairing + per_batch * unbudgeted,
    }
    _print(figures)
    return figures


def _print(f: dict[str, float]) -> None:
    verdict = "meets" if f["seconds"] <= TARGET_SECONDS else "MISSES"
    print(
        f"Fusion training on a synthetic dense log: {f['items']:,.0f} items, "
        f"{f['ratings']:,.0f} ratings by {f['users']:,.0f} users in sittings, "
        f"{f['pairs']:,.0f} co-engaged pairs"
    )
    print(
        f"  baseline: every pair every epoch   {f['unbudgeted_batches']:8,.0f} batches, about "
        f"{f['unbudgeted_seconds']:7.0f} s (this run's time per batch, pairing timed apart)"
    )
    print(
        f"  with the training budget           {f['batches']:8,.0f} batches, "
        f"{f['seconds']:7.1f} s = {f['seconds'] / f['unbudgeted_seconds']:.2f} of the baseline "
        f"(target <= {TARGET_SECONDS:.0f} s: {verdict})"
    )
