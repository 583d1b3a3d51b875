"""The page says what still trains beside the server, and stops saying it once it is done:
a real server (uvicorn on loopback) whose re-ranker step is held until the test lets it
finish, and the page in Chromium."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from browser import CHROMIUM, CHROMIUM_ARGS, TOKEN
from fastapi import FastAPI
from playwright.sync_api import expect, sync_playwright

from tastegraph.bench.serve import answers_health, free_port
from tastegraph.config import Settings
from tastegraph.serve.app import create_app


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """`app` on 127.0.0.1:port in a thread of this process, until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    assert answers_health(url, 120, alive=thread.is_alive), "the server never answered"
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_the_page_says_what_still_trains_until_it_is_done(
    built_workdir: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(built_workdir, workdir)
    may_finish = threading.Event()

    def run_step(name: str) -> str:
        may_finish.wait(timeout=300)
        return "held by the test"

    settings = Settings(workdir=workdir, api_token=TOKEN, serve_watch_seconds=3600)
    app = create_app(settings, assistant=False, train_beside=(["train reranker"], run_step))
    with serving(app, free_port()) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{url}/#token={TOKEN}")
        line = page.locator("#training")
        expect(line).to_be_visible()
        expect(line).to_contain_text("Still learning in the background: related-items re-ranker")
        expect(line).to_contain_text("min so far")

        may_finish.set()  # the page polls /healthz every 15 s, and hides the line
        expect(line).to_be_hidden(timeout=45_000)
        browser.close()
