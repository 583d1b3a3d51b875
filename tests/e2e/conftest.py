from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import TOKEN

from tastegraph.bench.serve import running_server


@pytest.fixture(scope="module")
def live_server(
    built_workdir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`tastegraph serve` on a loopback port over a copy of the built workdir."""
    workdir = tmp_path_factory.mktemp("e2e") / "work"
    shutil.copytree(built_workdir, workdir)
    with running_server(workdir, TOKEN) as server:
        yield server.url, workdir
