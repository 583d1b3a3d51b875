from __future__ import annotations

import os
from pathlib import Path

import pytest

from tastegraph.config import Settings
from tastegraph.ingest import ingest_hm
from tastegraph.store import SQLiteStore

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "hm"


@pytest.fixture(scope="session")
def hm_data() -> Path:
    """The H&M sample; a missing dataset fails the test run, it never skips it."""
    path = Path(os.environ.get("TASTEGRAPH_DATA") or DEFAULT_DATA)
    if not (path / "transactions.csv").is_file():
        pytest.fail(
            f"H&M sample not found at {path} (from TASTEGRAPH_DATA, else {DEFAULT_DATA}); "
            "set TASTEGRAPH_DATA to the folder holding transactions.csv, articles.csv, "
            "customers.csv and images/"
        )
    return path


@pytest.fixture(scope="session")
def hm_workdir(hm_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir holding the full H&M sample, ingested once per test session."""
    workdir = tmp_path_factory.mktemp("hm")
    settings = Settings(workdir=workdir)
    with SQLiteStore(workdir / "store.db") as store:
        ingest_hm(store, hm_data, settings)
    return workdir
