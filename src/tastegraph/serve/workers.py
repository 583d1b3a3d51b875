"""Several server processes on one port (`tastegraph serve --workers N`).

uvicorn starts each worker in a fresh interpreter, so the settings travel in an environment
variable, and every worker builds its own app: its own recommender and live profiles,
following the store's event log (OnlineSystem.follow_log). uvicorn's supervisor starts a
worker again when one dies.
"""

from __future__ import annotations

import json
import os
import random

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tastegraph.config import Settings
from tastegraph.serve.app import create_app

SETTINGS_VARIABLE = "TASTEGRAPH_WORKER_SETTINGS"
REBALANCE_EVERY = 100  # responses a connection gets, on average, before it is closed


def serve_workers(settings: Settings, *, assistant: bool, workers: int) -> None:
    import uvicorn

    os.environ[SETTINGS_VARIABLE] = json.dumps(
        {"settings": settings.model_dump(mode="json"), "assistant": assistant}
    )
    uvicorn.run(
        f"{__name__}:worker_app",
        factory=True,
        workers=workers,
        host=settings.serve_host,
        port=settings.serve_port,
        log_level="warning",
    )


def worker_app() -> FastAPI:
    """The app of one worker, from the settings its parent left in the environment."""
    passed = json.loads(os.environ[SETTINGS_VARIABLE])
    app = create_app(Settings.model_validate(passed["settings"]), assistant=passed["assistant"])
    app.add_middleware(Rebalance, every=REBALANCE_EVERY)
    return app


class Rebalance:
    """Close a kept-alive connection now and then (on average after `every` responses), so
    that its client connects again, to whichever worker accepts first: the least busy.
    Workers share one listening socket and a client keeps its connection, so without this
    the split of connections made at the start holds however uneven it is."""

    def __init__(self, app: ASGIApp, every: int) -> None:
        self.app = app
        self.chance = 1.0 / every

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or random.random() >= self.chance:
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, send_closing)
