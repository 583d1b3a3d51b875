"""Fuzz every endpoint from the OpenAPI schema against a live server on loopback: no 5xx,
no hang, and the process stays up. `make fuzz` runs it with 100 cases per operation."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tastegraph.bench.serve import running_server

EXAMPLES = int(os.environ.get("TASTEGRAPH_FUZZ_EXAMPLES", "25"))
TOKEN = "fuzz-token-19ce"


@pytest.fixture(scope="module")
def live(built_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("fuzz") / "work"
    shutil.copytree(built_workdir, workdir)
    # One assistant turn a minute: the fuzzer reaches the LM once, then gets 429s.
    limits = {"TASTEGRAPH_CHAT_BURST": "1", "TASTEGRAPH_CHAT_PER_MINUTE": "1"}
    os.environ.update(limits)
    try:
        with running_server(workdir, TOKEN) as server:
            yield server.url
    finally:
        for name in limits:
            os.environ.pop(name)


def test_no_server_errors_from_any_endpoint(live: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live}/openapi.json")
    cases: Counter[str] = Counter()
    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"} if case.method == "POST" else {}
            response = case.call(headers=headers, timeout=30)
            cases[f"{case.method} {case.path}"] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
            )

        call()
        assert httpx.get(f"{live}/healthz", timeout=5).status_code == 200  # still up
    print(f"{sum(cases.values())} generated requests: {dict(cases)}")
    assert len(cases) >= 10 and sum(cases.values()) >= 10 * EXAMPLES // 2
