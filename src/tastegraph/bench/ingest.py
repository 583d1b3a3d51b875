"""Ingest speed: the H&M sample end to end, and bulk appends of durable events.

Baselines, measured in the same run: reading the files and checking the photos without a
store (the floor the ingest cannot beat), and appending events one transaction each (what a
naive client that acknowledges every event alone would get). Given a PostgreSQL URL, the
same bulk append runs there too, beside SQLite's.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tastegraph.config import Settings
from tastegraph.ingest import ingest_hm
from tastegraph.ingest.media import check_photos
from tastegraph.ingest.readers import read_table
from tastegraph.store import Event, Item, SQLiteStore, Store, open_store

HM_TARGET_SECONDS = 15.0
APPEND_TARGET_PER_SECOND = 20_000
APPEND_BATCH = 1_000
SINGLE_BASELINE_EVENTS = 2_000


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def read_floor(data_dir: Path, settings: Settings) -> None:
    """Everything the H&M ingest reads and checks, with nothing stored."""
    for name in ("customers.csv", "articles.csv", "transactions.csv"):
        for _ in read_table(data_dir / name):
            pass
    photos = sorted(str(p) for p in (data_dir / "images").glob("*/*.jpg"))
    check_photos(photos, settings.max_image_pixels, settings.ingest_workers)


def synthetic_events(item_ids: list[str], n: int, seed: int = 0) -> list[Event]:
    rng = random.Random(seed)
    actions = ("view", "click", "save", "purchase")
    return [
        Event(
            event_id=f"bench-{seed}-{i}",
            user_id=f"bench-user-{rng.randrange(10_000)}",
            item_id=rng.choice(item_ids),
            action=rng.choice(actions),
            weight=1.0,
            ts=1_600_000_000 + i,
        )
        for i in range(n)
    ]


def append_batched(store: Store, events: list[Event]) -> None:
    for start in range(0, len(events), APPEND_BATCH):
        store.append_events(events[start : start + APPEND_BATCH])


def append_one_by_one(store: SQLiteStore, events: list[Event]) -> None:
    for event in events:
        store.append_events([event])


def run(data_dir: Path, n_events: int = 200_000, postgres: str | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tastegraph-bench-") as tmp:
        settings = Settings(workdir=Path(tmp))
        floor_s = timed(lambda: read_floor(data_dir, settings))
        with SQLiteStore(Path(tmp) / "store.db") as store:
            ingest_s = timed(lambda: ingest_hm(store, data_dir, settings))
            rerun_s = timed(lambda: ingest_hm(store, data_dir, settings))
            counts = store.counts()
            items = [e.item_id for e in store.iter_events()]
            bulk = synthetic_events(items, n_events, seed=1)
            bulk_s = timed(lambda: append_batched(store, bulk))
            single = synthetic_events(items, SINGLE_BASELINE_EVENTS, seed=2)
            single_s = timed(lambda: append_one_by_one(store, single))
            catalog = list(store.iter_items())
        postgres_s = None if postgres is None else postgres_bulk(postgres, catalog, bulk)
    figures = {
        "hm_ingest_s": ingest_s,
        "hm_rerun_s": rerun_s,
        "hm_read_floor_s": floor_s,
        "hm_events": counts["events"],
        "hm_items": counts["items"],
        "hm_photos": counts["media"],
        "hm_events_per_s": counts["events"] / ingest_s,
        "bulk_events_per_s": n_events / bulk_s,
        "single_events_per_s": SINGLE_BASELINE_EVENTS / single_s,
    }
    if postgres_s is not None:
        figures["postgres_bulk_events_per_s"] = n_events / postgres_s
    _print(figures, n_events)
    return figures


def postgres_bulk(url: str, catalog: list[Item], events: list[Event]) -> float:
    """Seconds to append `events` to the PostgreSQL store at `url` (catalog added first),
    in the same batches as SQLite's, under ids no earlier run used."""
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    fresh = [replace(e, event_id=f"{run_id}-{e.event_id}") for e in events]
    with open_store(url) as store:
        store.add_items(catalog)
        return timed(lambda: append_batched(store, fresh))


def _print(f: dict[str, float], n_events: int) -> None:
    ok = {True: "meets", False: "MISSES"}
    print(
        f"H&M ingest ({f['hm_events']:,.0f} events, {f['hm_items']:,.0f} items,"
        f" {f['hm_photos']:,.0f} photos), store synchronous=FULL"
    )
    print(
        f"  full ingest           {f['hm_ingest_s']:7.2f} s  ({f['hm_events_per_s']:,.0f} events/s)"
    )
    print(
        f"  baseline: read+check  {f['hm_read_floor_s']:7.2f} s  "
        f"ingest/floor = {f['hm_ingest_s'] / f['hm_read_floor_s']:.2f}x"
    )
    print(f"  idempotent re-run     {f['hm_rerun_s']:7.2f} s")
    print(f"  target < {HM_TARGET_SECONDS:.0f} s: {ok[f['hm_ingest_s'] < HM_TARGET_SECONDS]}")
    print(f"Bulk append of {n_events:,} synthetic events, durable on return")
    print(f"  batches of {APPEND_BATCH:,}        {f['bulk_events_per_s']:10,.0f} events/s")
    print(
        f"  baseline: one per txn {f['single_events_per_s']:10,.0f} events/s  "
        f"batched/baseline = {f['bulk_events_per_s'] / f['single_events_per_s']:.1f}x"
    )
    print(
        f"  target >= {APPEND_TARGET_PER_SECOND:,}/s: "
        f"{ok[f['bulk_events_per_s'] >= APPEND_TARGET_PER_SECOND]}"
    )
    if "postgres_bulk_events_per_s" in f:
        postgres = f["postgres_bulk_events_per_s"]
        print(
            f"  PostgreSQL, same batches {postgres:10,.0f} events/s  "
            f"PostgreSQL/SQLite = {postgres / f['bulk_events_per_s']:.2f}x  "
            f"target >= {APPEND_TARGET_PER_SECOND:,}/s: "
            f"{ok[postgres >= APPEND_TARGET_PER_SECOND]}"
        )
