from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving import serve_settings

from tastegraph.serve.app import create_app


@pytest.fixture(scope="module")
def workdir(built_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy per test module: modules write events and items."""
    copy = tmp_path_factory.mktemp("serve") / "work"
    shutil.copytree(built_workdir, copy)
    return copy


@pytest.fixture(scope="module")
def client(workdir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(serve_settings(workdir))) as client:
        yield client
