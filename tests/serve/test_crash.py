"""Kill -9 while working, restart, check: acknowledged events are stored exactly once, and
artifacts are either the old version or the new one, never half of one."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tastegraph.bench.serve import running_server
from tastegraph.embeddings.fusion import load_fusion
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.index import open_index
from tastegraph.store import SQLiteStore

BATCHES = 80
PER_BATCH = 25


def copy_of(built: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "work"
    shutil.copytree(built, workdir)
    return workdir


def post_batches(
    url: str, token: str, batches: list[list[dict[str, str]]], acked: set[int]
) -> None:
    """Post batches in order; note each acknowledged one; stop at the first failure."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for number, batch in enumerate(batches):
            if number in acked:
                continue
            try:
                response = client.post("/v1/events", json={"events": batch})
            except httpx.TransportError:
                return  # the server is gone: unacknowledged, to be re-sent
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["stored"] + answer["duplicates"] == len(batch)
            acked.add(number)


def test_sigkilled_server_keeps_every_acknowledged_event_once(
    built_workdir: Path, tmp_path: Path
) -> None:
    workdir = copy_of(built_workdir, tmp_path)
    items = EmbeddingStore.open(workdir).ids
    rng = random.Random(7)
    batches = [
        [
            {
                "event_id": f"crash-{b}-{e}",
                "user_id": f"crash-user-{rng.randrange(30)}",
                "item_id": rng.choice(items),
                "action": rng.choice(["view", "click", "save", "purchase"]),
            }
            for e in range(PER_BATCH)
        ]
        for b in range(BATCHES)
    ]
    acked: set[int] = set()
    with running_server(workdir, assistant=False) as server:
        poster = threading.Thread(
            target=post_batches, args=(server.url, server.token, batches, acked)
        )
        poster.start()
        while len(acked) < BATCHES // 4 and poster.is_alive():  # kill it mid-stream
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(server.process.pid, signal.SIGKILL)
        poster.join()
    assert BATCHES // 4 <= len(acked) < BATCHES, "the kill should land mid-stream"
    acknowledged_before_kill = set(acked)

    with SQLiteStore(workdir / "store.db") as store:
        stored = {e.event_id for e in store.iter_events() if e.event_id.startswith("crash-")}
    for number in acknowledged_before_kill:  # acknowledged means durable
        assert {e["event_id"] for e in batches[number]} <= stored

    with running_server(workdir, assistant=False) as server:  # restart; re-send the rest
        post_batches(server.url, server.token, batches, acked)
        health = httpx.get(f"{server.url}/healthz").json()
        assert health["status"] == "ok"
    assert len(acked) == BATCHES
    with SQLiteStore(workdir / "store.db") as store:
        ids = [e.event_id for e in store.iter_events() if e.event_id.startswith("crash-")]
    assert len(ids) == len(set(ids)) == BATCHES * PER_BATCH  # every event, exactly once
    print(
        f"killed after {len(acknowledged_before_kill) * PER_BATCH} events acknowledged, "
        f"{len(stored)} stored at the kill; {len(ids)} of {BATCHES * PER_BATCH} stored once "
        "after the re-send"
    )


def run_killed(args: list[str], workdir: Path, after: float) -> int:
    env = os.environ | {"TASTEGRAPH_WORKDIR": str(workdir), "HF_HUB_OFFLINE": "1"}
    job = subprocess.Popen(
        [sys.executable, "-m", "tastegraph", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        job.wait(timeout=after)
    except subprocess.TimeoutExpired:
        job.send_signal(signal.SIGKILL)
        job.wait()
    return job.returncode


def test_killed_index_rebuild_and_training_leave_the_old_version_readable(
    built_workdir: Path, tmp_path: Path
) -> None:
    workdir = copy_of(built_workdir, tmp_path)
    index_before = open_index(workdir).version
    rebuild = ["index", "--rebuild"]
    train = ["train", "embeddings", "--content-epochs", "30", "--taste-epochs", "5"]
    # How long each takes here when left alone; the kills land at random points within.
    durations = {}
    for job in (rebuild, train):
        start = time.monotonic()
        assert run_killed(job, workdir, 300) == 0
        durations[job[0]] = time.monotonic() - start
    rng = random.Random(3)
    killed = 0
    for _ in range(3):
        killed += run_killed(rebuild, workdir, rng.uniform(0.3, 0.9) * durations["index"]) != 0
        index = open_index(workdir)  # the current version, old or new, always loads whole
        assert len(index) == len(EmbeddingStore.open(workdir))
        killed += run_killed(train, workdir, rng.uniform(0.3, 0.9) * durations["train"]) != 0
        model, manifest = load_fusion(workdir / "models" / "fusion")  # old or new, whole
        assert manifest["towers"] and model.config.embed_dim > 0
    assert killed >= 1  # jobs really died mid-way
    assert run_killed(["index", "--rebuild"], workdir, 120) == 0  # a re-run completes
    assert open_index(workdir).version != index_before
    leftovers = [p.name for p in (workdir / "index").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
