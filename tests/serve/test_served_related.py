"""The server's related items are the CLI's: the same recommender, re-ranker included, and
a newly published re-ranker or related-items table is served without a restart."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tastegraph.bench.serve import LoadConfig, report, run_load, running_server
from tastegraph.cli import app
from tastegraph.config import Settings
from tastegraph.recommend.assemble import open_recommender
from tastegraph.recommend.related_job import publish_related_table
from tastegraph.recommend.rerank import RelatedReranker, open_reranker
from tastegraph.recommend.rerank_job import publish_reranker
from tastegraph.store import SQLiteStore

N = 10


def cli_related(workdir: Path, item: str) -> list[str]:
    env = {"TASTEGRAPH_WORKDIR": str(workdir), "HF_HUB_OFFLINE": "1"}
    result = CliRunner().invoke(app, ["related", item, "-n", str(N)], env=env)
    assert result.exit_code == 0, result.output
    return [line.split()[1] for line in result.output.strip().splitlines()]


def served_related(url: str, item: str) -> list[str]:
    response = httpx.get(f"{url}/v1/items/{item}/related", params={"n": N}, timeout=30)
    assert response.status_code == 200, response.text
    return [card["id"] for card in response.json()["items"]]


def reversed_reranker(reranker: RelatedReranker) -> RelatedReranker:
    """A re-ranker that ranks the pool the other way round: another model to publish."""
    trees = reranker.trees
    flipped = dataclasses.replace(trees, baseline=-trees.baseline, leaf_value=-trees.leaf_value)
    return dataclasses.replace(reranker, trees=flipped)


def wait_for_version(url: str, name: str, version: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{url}/healthz").json()["versions"][name] != version:
        assert time.monotonic() < deadline, f"the server never loaded {name} {version}"
        time.sleep(0.2)


def test_served_related_items_are_the_cli_s_and_follow_a_new_reranker(
    built_workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(built_workdir, workdir)
    reranker = open_reranker(workdir)
    assert reranker is not None, "the main job publishes a re-ranker on this catalog"
    settings = Settings(workdir=workdir)
    with SQLiteStore(workdir / "store.db") as store:
        baskets = [e.item_id for e in store.iter_events() if e.collection_id][:40]
        recommender = open_recommender(workdir, store, settings)
    items = list(dict.fromkeys(baskets))[:5]
    recommender.reranker = recommender.related_table = None  # the related score alone
    score_order = [[r.item_id for r in recommender.related(item, N)] for item in items]

    monkeypatch.setenv("TASTEGRAPH_SERVE_WATCH_SECONDS", "0.5")
    with running_server(workdir, assistant=False) as server:
        health = httpx.get(f"{server.url}/healthz").json()
        assert health["related_items_precomputed"] == health["items"]  # the main job's table
        served = [served_related(server.url, item) for item in items]
        assert served == [cli_related(workdir, item) for item in items]
        assert served != score_order, "the re-ranker orders what is served"

        folder = publish_reranker(reversed_reranker(reranker), workdir)
        wait_for_version(server.url, "reranker", folder.name)
        # The table was computed over the old re-ranker: answers are computed again.
        assert httpx.get(f"{server.url}/healthz").json()["related_items_precomputed"] == 0
        after = [served_related(server.url, item) for item in items]
        assert after == [cli_related(workdir, item) for item in items]
        assert after != served

        with SQLiteStore(workdir / "store.db") as store:  # a table over the new re-ranker
            _, folder = publish_related_table(store, settings, show_progress=False)
        wait_for_version(server.url, "related", folder.name)
        health = httpx.get(f"{server.url}/healthz").json()
        assert health["related_items_precomputed"] == health["items"]
        assert [served_related(server.url, item) for item in items] == after

        # `tastegraph bench serve` times this path too, beside feeds and events.
        load = LoadConfig(rates=(10.0,), seconds=2.0, events_per_second=2.0, users=20, warmup=0.0)
        [result] = run_load(server.url, server.token, load)
    assert len(result.related.seconds) == 5 and result.related.errors == 0
    assert "related p99" in report([result])
