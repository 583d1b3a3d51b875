"""What the server tests share: the token, test settings, the service behind a client."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tastegraph.config import Settings
from tastegraph.online import OnlineSystem

TOKEN = "test-token-4f9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def serve_settings(workdir: Path) -> Settings:
    return Settings(
        workdir=workdir,
        api_token=TOKEN,
        max_events_per_request=20,
        max_request_bytes=2_000_000,
        serve_watch_seconds=3600,  # tests call refresh() themselves
        embed_batch_size=8,
        embed_shard_size=8,
    )


def service_of(client: TestClient) -> OnlineSystem:
    service: OnlineSystem = client.app.state.service  # type: ignore[attr-defined]
    return service
