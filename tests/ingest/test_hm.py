"""The full H&M sample, ingested for real."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tastegraph.config import Settings
from tastegraph.ingest import InputError, ingest_hm
from tastegraph.store import SQLiteStore

HM_COUNTS = {
    "events": 31_662,
    "users": 1_364,
    "items": 24_717,
    "media": 24_717,
    "collections:basket": 8_802,
}


def counts_of(workdir: Path) -> dict[str, int]:
    with SQLiteStore(workdir / "store.db") as store:
        return store.counts()


def test_full_sample_counts(hm_workdir: Path) -> None:
    counts = counts_of(hm_workdir)
    assert {name: counts[name] for name in HM_COUNTS} == HM_COUNTS


def test_article_keeps_leading_zero_text_and_product_code(hm_workdir: Path) -> None:
    with SQLiteStore(hm_workdir / "store.db") as store:
        item = store.get_item("0111565001")
        assert item is not None
        assert item.title == "20 den 1p Stockings"
        assert item.description and item.description.startswith("Semi shiny nylon stockings")
        assert item.attributes["product_code"] == "0111565"
        assert item.attributes["colour_group"] == "Black"
        (photo,) = store.media_for("0111565001")
        assert (photo.width, photo.height) == (192, 288)
        assert photo.uri.endswith("images/011/0111565001.jpg")


def test_bought_article_without_text_is_a_photo_only_item(hm_data: Path, hm_workdir: Path) -> None:
    with (hm_data / "articles.csv").open() as f:
        described = {row["article_id"] for row in csv.DictReader(f)}
    with (hm_data / "transactions.csv").open() as f:
        rows = list(csv.DictReader(f))
    article = next(row["article_id"] for row in rows if row["article_id"] not in described)
    paid = sorted(float(row["price"]) for row in rows if row["article_id"] == article)
    with SQLiteStore(hm_workdir / "store.db") as store:
        item = store.get_item(article)
        assert item is not None
        assert item.title is None and item.description is None
        assert item.attributes == {"product_code": article[:7]}
        assert paid[0] <= (item.price or -1) <= paid[-1]
        assert len(store.media_for(article)) == 1


def test_basket_holds_the_items_bought_that_day(hm_data: Path, hm_workdir: Path) -> None:
    with (hm_data / "transactions.csv").open() as f:
        first = next(csv.DictReader(f))
        f.seek(0)
        same_day = {
            row["article_id"]
            for row in csv.DictReader(f)
            if (row["customer_id"], row["t_dat"]) == (first["customer_id"], first["t_dat"])
        }
    basket = f"basket:{first['customer_id']}:{first['t_dat']}"
    with SQLiteStore(hm_workdir / "store.db") as store:
        assert set(store.collection_items(basket)) == same_day


def test_rerun_is_idempotent(hm_data: Path, hm_workdir: Path) -> None:
    with SQLiteStore(hm_workdir / "store.db") as store:
        reports = ingest_hm(store, hm_data, Settings(workdir=hm_workdir))
        counts = store.counts()
    assert all(r.stored == 0 and r.duplicates == r.read for r in reports)
    assert {name: counts[name] for name in HM_COUNTS} == HM_COUNTS


def test_folder_that_is_not_hm_is_refused(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "store.db") as store, pytest.raises(InputError) as error:
        ingest_hm(store, tmp_path, Settings(workdir=tmp_path))
    assert "transactions.csv" in str(error.value) and str(tmp_path) in str(error.value)


def ingest_command(hm_data: Path) -> list[str]:
    return [sys.executable, "-m", "tastegraph", "ingest", "hm", "--data", str(hm_data)]


def stored_events(db: Path) -> int:
    """Events committed so far, read from outside the writer (0 before the table exists)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_sigkill_mid_ingest_then_rerun_stores_each_event_once(
    hm_data: Path, tmp_path: Path
) -> None:
    env = os.environ | {
        "TASTEGRAPH_WORKDIR": str(tmp_path),
        "TASTEGRAPH_INGEST_BATCH_SIZE": "100",  # many small commits: a wide window to kill in
    }
    ingest = subprocess.Popen(ingest_command(hm_data), env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while stored_events(tmp_path / "store.db") == 0:
        assert ingest.poll() is None, "the ingest ended before any event was stored"
        assert time.monotonic() < deadline, "no event was stored within 120 s"
        time.sleep(0.005)
    ingest.send_signal(signal.SIGKILL)
    ingest.wait()
    killed_at = stored_events(tmp_path / "store.db")
    assert 0 < killed_at < HM_COUNTS["events"], "the kill did not land mid-ingest"

    subprocess.run(ingest_command(hm_data), env=env, check=True, stdout=subprocess.DEVNULL)
    with sqlite3.connect(tmp_path / "store.db") as conn:
        total, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM events"
        ).fetchone()
    assert total == distinct == HM_COUNTS["events"]
    counts = counts_of(tmp_path)
    assert {name: counts[name] for name in HM_COUNTS} == HM_COUNTS
