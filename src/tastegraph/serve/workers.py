"""Several server processes on one port (`tastegraph serve --workers N`).

uvicorn starts each worker in a fresh interpreter, so the settings travel in an environment
variable, and every worker builds its own app: its own recommender and live profiles,
following the store's event log (OnlineSystem.follow_log). uvicorn's supervisor starts a
worker again when one dies.
"""

from __future__ import annotations

import json
import os

from fastapi import FastAPI

from tastegraph.config import Settings
from tastegraph.serve.app import create_app

SETTINGS_VARIABLE = "TASTEGRAPH_WORKER_SETTINGS"


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
    return create_app(Settings.model_validate(passed["settings"]), assistant=passed["assistant"])
