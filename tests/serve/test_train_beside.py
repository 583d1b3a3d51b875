"""The demo serves before the re-ranker and the assistant exist, trains them beside the
server, and swaps each in when it is published: no restart."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving import serve_settings

from tastegraph.config import Settings
from tastegraph.pipeline import IMPROVING_STEPS, Pipeline, PipelineConfig
from tastegraph.serve.app import create_app
from tastegraph.store import SQLiteStore

TINY = PipelineConfig(content_epochs=2, taste_epochs=1, assistant_items=100, shopping_examples=0)


def wait_until(done: object, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_serves_first_then_swaps_in_what_trains_beside(built_workdir: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(built_workdir, workdir)
    shutil.rmtree(workdir / "reranker")
    shutil.rmtree(workdir / "models" / "projector")
    shutil.rmtree(workdir / "models" / "feed")
    settings: Settings = serve_settings(workdir).model_copy(update={"serve_watch_seconds": 1.0})
    assistant_may_train = threading.Event()

    def run_step(name: str) -> str:
        if name == "train assistant":
            assistant_may_train.wait(timeout=600)
        with SQLiteStore(workdir / "store.db") as store:
            [report] = Pipeline(store, settings, TINY).run(None, only=[name])
        return report.detail

    app = create_app(settings, train_beside=(IMPROVING_STEPS, run_step))
    with TestClient(app) as client:
        health = client.get("/healthz").json()
        assert {health["versions"][name] for name in ("feed", "reranker", "projector")} == {None}
        assert set(health["training"]) == set(IMPROVING_STEPS)
        user = client.get("/v1/users").json()["users"][0]["id"]
        assert client.get(f"/v1/users/{user}/feed", params={"n": 4}).status_code == 200

        body = {"user_id": user, "message": "a black top"}
        learning = client.post("/v1/assistant/chat", json=body)
        assert learning.status_code == 503 and "still learning" in learning.json()["error"]

        def reranker_served() -> bool:
            return client.get("/healthz").json()["versions"]["reranker"] is not None

        wait_until(reranker_served)
        health = client.get("/healthz").json()
        assert health["versions"]["feed"] is not None  # fitted first, then swapped in
        assert health["training"]["train reranker"]["state"] == "done"
        assistant_may_train.set()

        def assistant_done() -> bool:
            return client.get("/healthz").json()["training"]["train assistant"]["state"] in (
                "done",
                "failed",
            )

        wait_until(assistant_done)
        health = client.get("/healthz").json()
        assert health["training"]["train assistant"]["state"] == "done", health["training"]
        wait_until(lambda: client.get("/healthz").json()["versions"]["projector"] is not None)
        with client.stream("POST", "/v1/assistant/chat", json=body) as answered:
            assert answered.status_code == 200
            assert "event: done" in answered.read().decode()


def test_unknown_steps_are_refused(small_catalog: Settings) -> None:
    with (
        SQLiteStore(small_catalog.workdir / "store.db") as store,
        pytest.raises(ValueError, match="unknown steps"),
    ):
        Pipeline(store, small_catalog, TINY).run(None, only=["train everything"])
