"""Recommendation speed: home-feed latency and profile updates, each beside a baseline.

1. Feed on a real catalog (a workdir where `embed`, `index`, `graph` and `profiles` ran):
   p50/p99 per request in-process with the configured index, beside the same feed with
   exact brute-force search: as served (walks and interest neighbours found ahead), with
   nothing kept between requests, and as served right after each user saves an item.
   Related items ("more like this") as served, re-ranked where a re-ranker is published,
   beside the hand-weighted related score alone.
2. Profile update per event: the incremental update against recomputing the user's whole
   profile from their events (the batch job's per-user work).
3. Feed on a synthetic catalog (default 1,000,000 items, 256-d, clustered like real
   embeddings): HNSW against exact brute-force search, with synthetic shoppers and baskets.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tastegraph.config import Settings
from tastegraph.graph import InterestConfig, InterestMap, TasteGraph
from tastegraph.index import ItemIndex
from tastegraph.lru import LruMap
from tastegraph.profiles import ProfileConfig, popular_items
from tastegraph.profiles.batch import build_profiles, cluster_profile
from tastegraph.recommend import RecommendConfig, Recommender
from tastegraph.store import Event, open_store

FEED_P99_TARGET_MS = 10.0
SYNTHETIC_P99_TARGET_MS = 30.0
UPDATE_TARGET_MS = 1.0
WARM_UP = 20


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
        return cls(float(p50), float(p99))


def time_pair(
    ours: Callable[[int], object],
    baseline: Callable[[int], object],
    count: int,
    before: Callable[[int], object] | None = None,
) -> tuple[Latency, Latency]:
    """Latency of ours(i) and baseline(i) for i in range(count), alternating call by call so
    that both meet the same machine noise, after WARM_UP untimed calls of each; before(i),
    untimed, runs ahead of each timed pair."""
    for i in range(min(WARM_UP, count)):
        ours(i)
        baseline(i)
    seconds: tuple[list[float], list[float]] = ([], [])
    for i in range(count):
        if before is not None:
            before(i)
        for call, out in ((ours, seconds[0]), (baseline, seconds[1])):
            start = time.perf_counter()
            call(i)
            out.append(time.perf_counter() - start)
    return Latency.of(seconds[0]), Latency.of(seconds[1])


def _row(name: str, ours: Latency, baseline: Latency, target: float | None) -> None:
    verdict = ""
    if target is not None:
        verdict = f"   target p99 <= {target} ms {'met' if ours.p99_ms <= target else 'NOT met'}"
    print(
        f"{name:56} p50 {ours.p50_ms:8.2f} ms  p99 {ours.p99_ms:8.2f} ms   "
        f"baseline p50 {baseline.p50_ms:8.2f} ms  p99 {baseline.p99_ms:8.2f} ms   "
        f"speed-up p99 {baseline.p99_ms / ours.p99_ms:6.1f}x{verdict}"
    )


def exact_index(recommender: Recommender) -> ItemIndex:
    """An exact (brute-force) index of the recommender's item vectors."""
    index = recommender.index
    return ItemIndex.build(
        index.ids,
        recommender.item_vectors,
        [index.fields.category(r) for r in range(len(index))],
        index.fields.prices,
        kind="exact",
    )


def rebuilt(
    recommender: Recommender,
    index: ItemIndex | None = None,
    config: RecommendConfig | None = None,
) -> Recommender:
    """A new recommender (nothing cached) from the same parts, with another index or config."""
    return Recommender(
        index or recommender.index,
        recommender.graph,
        recommender.interests,
        recommender.popular,
        recommender.profiles,
        recommender.titles,
        recommender.variants,
        config or recommender.config,
        recommender.freshness,
        recommender.complements,
    )


def time_feeds(
    ours: Recommender,
    baseline: Recommender,
    users: list[str],
    requests: int,
    before: Callable[[str], object] | None = None,
) -> tuple[Latency, Latency]:
    """Feeds of the users in turn; before(user), untimed, runs ahead of each timed pair."""
    return time_pair(
        lambda i: ours.feed(users[i % len(users)], 12),
        lambda i: baseline.feed(users[i % len(users)], 12),
        requests,
        None if before is None else lambda i: before(users[i % len(users)]),
    )


def saves(recommender: Recommender, seed: int = 0) -> Callable[[str], object]:
    """Records, for a user, a save of an item drawn from those anyone engaged with, a minute
    after their latest event: their next feed walks from it and may move an interest."""
    rng = np.random.default_rng(seed)
    graph, degree = recommender.graph, recommender.graph.degree
    engaged = [i for i, row in graph.rows.items() if degree[row] and i in recommender.index]
    count = 0

    def save(user: str) -> None:
        nonlocal count
        count += 1
        profile = recommender.profiles.get(user)
        latest = profile.recent[-1][2] if profile and profile.recent else time.time()
        item = engaged[int(rng.integers(len(engaged)))]
        recommender.record(Event(f"bench-save-{count}", user, item, "save", 1.0, latest + 60))

    return save


def bench_feeds(
    recommender: Recommender, users: list[str], requests: int, name: str, target: float
) -> None:
    """Feed latency with the recommender's index beside exact search, three times:
    - as served: walks and interest neighbours found ahead of requests for every user with
      a profile, as the server does when it loads;
    - with nothing kept: every walk and search done during the request;
    - as served, each feed right after the user saved an item (not timed): the feed walks
      from it unless another feed already did, and searches from a moved interest.
    Then the share of feed items the two indexes agree on (1.0 for an exact index). The
    saves stay in the users' live profiles."""
    exact = exact_index(recommender)
    twin = rebuilt(recommender, exact)  # shares the profiles: both see each save
    recommender.warm()
    twin.warm()
    _row(f"{name}, as served", *time_feeds(recommender, twin, users, requests), target)
    nothing_kept = replace(recommender.config, walk_cache_items=0, interest_cache_items=0)
    timed = time_feeds(
        rebuilt(recommender, config=nothing_kept),
        rebuilt(recommender, exact, nothing_kept),
        users,
        requests,
    )
    _row(f"{name}, nothing kept", *timed, target)
    timed = time_feeds(recommender, twin, users, requests, saves(recommender))
    _row(f"{name}, right after a save", *timed, target)
    agree = [
        len({r.item_id for r in recommender.feed(u, 12)} & {r.item_id for r in twin.feed(u, 12)})
        / 12
        for u in users[:200]
    ]
    print(f"  feeds agree with the exact-search feed on {np.mean(agree):.1%} of items")


def bench_catalog(workdir: Path, requests: int) -> None:
    from tastegraph.recommend.assemble import open_recommender

    settings = Settings(workdir=workdir)
    with open_store(settings.resolved_store_url) as store:
        recommender = open_recommender(workdir, store, settings)
        events = list(store.iter_events())
    users = sorted(recommender.profiles.profiles)
    print(
        f"catalog in {workdir}: {len(recommender.index):,} items ({recommender.index.kind} "
        f"index), {len(users):,} users with a profile"
    )
    name = f"feed, {recommender.index.kind} index vs exact"
    bench_feeds(recommender, users, requests, name, FEED_P99_TARGET_MS)
    bench_related(recommender, requests)
    bench_profile_updates(events, recommender.index, min(requests, len(events)))


def bench_related(recommender: Recommender, requests: int, seed: int = 0) -> None:
    """Related items for random catalog items: computed as served against the hand-weighted
    related score alone (the same recommender without its re-ranker); then, where a
    related-items table is served, looked up against computed."""
    computed = copy.copy(recommender)  # shares the index, graph and walk cache
    plain = copy.copy(recommender)
    plain.reranker = None
    for timed in (computed, plain):  # every call computes its answer: none kept or looked up
        timed.related_answers = LruMap(0)
        timed.related_table = None
    ids = recommender.index.ids
    rows = np.random.default_rng(seed).choice(len(ids), min(requests, len(ids)), replace=False)
    items = [ids[r] for r in rows]

    def timed_pair(
        ours: Recommender, baseline: Recommender, n: int = 12
    ) -> tuple[Latency, Latency]:
        return time_pair(
            lambda i: ours.related(items[i % len(items)], n),
            lambda i: baseline.related(items[i % len(items)], n),
            requests,
        )

    how = "re-ranked" if recommender.reranker is not None else "no re-ranker published"
    _row(f"related items ({how}) vs related score", *timed_pair(computed, plain), None)
    if recommender.related_table is None:
        print("no related-items table is served (`tastegraph related-table`): none looked up")
        return
    looked_up = copy.copy(recommender)
    looked_up.related_answers = LruMap(0)
    covered = recommender.related_items_precomputed
    n = min(12, recommender.related_table.width)  # more than the table holds is computed
    _row(
        f"related items looked up ({covered:,} items in the table, n={n}) vs computed",
        *timed_pair(looked_up, computed, n),
        None,
    )


def bench_profile_updates(events: list[Event], embeddings: ItemIndex, count: int) -> None:
    """Replay the last `count` events: the incremental update vs a full recompute."""
    known = [e for e in events if e.item_id in embeddings]
    history, replay = known[:-count], known[-count:]
    store = build_profiles(history, embeddings, ProfileConfig())
    so_far: dict[str, list[Event]] = {}
    for event in history:
        so_far.setdefault(event.user_id, []).append(event)
    vectors = [embeddings.vector(e.item_id) for e in replay]  # looked up beforehand

    def recompute(i: int) -> None:
        user_events = [*so_far.get(replay[i].user_id, []), replay[i]]
        cluster_profile(replay[i].user_id, user_events, embeddings, store.config)

    incremental, full = time_pair(
        lambda i: store.profile(replay[i].user_id).update(replay[i], vectors[i]),
        recompute,
        len(replay),
    )

    _row(
        "profile update per event vs full recompute",
        incremental,
        full,
        UPDATE_TARGET_MS,
    )


def synthetic_recommender(items: int, dim: int, seed: int = 0) -> tuple[Recommender, list[str]]:
    """A clustered catalog with shoppers who buy within a few styles, in baskets."""
    rng = np.random.default_rng(seed)
    styles = 2000
    centres = rng.standard_normal((styles, dim)).astype(np.float32)
    style = rng.integers(0, styles, items)
    vectors = centres[style] + 0.6 * rng.standard_normal((items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"item{i:07d}" for i in range(items)]
    by_style = [np.flatnonzero(style == s) for s in range(styles)]
    events, users = [], [f"user{u:05d}" for u in range(2000)]
    for u, user in enumerate(users):
        favourites = rng.integers(0, styles, 3)
        for k in range(20):
            members = by_style[int(favourites[k % 3])]
            item = ids[int(members[rng.integers(0, len(members))])]
            events.append(
                Event(f"{u}-{k}", user, item, "purchase", 1.0, 1e9 + k * 3600.0, f"{u}-{k // 4}")
            )
    print(
        f"synthetic catalog: {items:,} items x {dim}, {len(events):,} events; "
        "building the HNSW index"
    )
    start = time.perf_counter()
    index = ItemIndex.build(
        ids, vectors, prices=rng.uniform(5, 100, items), kind="hnsw", hnsw_m=16, ef_construction=40
    )
    print(f"  HNSW built in {time.perf_counter() - start:.0f} s")
    now = events[-1].ts + 1
    graph = TasteGraph.build(events, ids, now=now)
    interests = InterestMap.build(vectors, [{}] * items, [None] * items, InterestConfig(count=256))
    profiles = build_profiles(events, index, ProfileConfig())
    recommender = Recommender(
        index, graph, interests, popular_items(events, now, 7.0, 1000), profiles, {}, {}
    )
    return recommender, users


def run(workdir: Path | None, synthetic_items: int, requests: int, dim: int = 256) -> None:
    if workdir is not None:
        bench_catalog(workdir, requests)
    if synthetic_items > 0:
        recommender, users = synthetic_recommender(synthetic_items, dim)
        name = f"feed, {synthetic_items:,} items, HNSW vs exact"
        bench_feeds(recommender, users, requests, name, SYNTHETIC_P99_TARGET_MS)
