"""The assistant's per-client rate limit: 429 with Retry-After once the bucket is empty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving import serve_settings

from tastegraph.serve.app import create_app
from tastegraph.serve.limits import RateLimit


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    limit = RateLimit(per_minute=600, burst=3)  # 10 a second
    assert [limit.wait_needed("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limit.wait_needed("a")
    assert 0.0 < wait <= 0.1
    assert limit.wait_needed("b") == 0.0  # clients are counted apart
    time.sleep(wait + 0.01)
    assert limit.wait_needed("a") == 0.0
    with pytest.raises(ValueError):
        RateLimit(per_minute=0, burst=1)


def test_chat_answers_429_with_retry_after(workdir: Path) -> None:
    settings = serve_settings(workdir).model_copy(update={"chat_burst": 2, "chat_per_minute": 1})
    with TestClient(create_app(settings, assistant=False)) as client:
        body = {"user_id": "someone", "message": "hello"}
        assert [client.post("/v1/assistant/chat", json=body).status_code for _ in range(2)] == [
            503,  # the assistant is off on this server, but the turn counted
            503,
        ]
        refused = client.post("/v1/assistant/chat", json=body)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"].startswith("too many assistant turns")
        assert client.get("/v1/search", params={"q": "dress"}).status_code == 200  # others go on
