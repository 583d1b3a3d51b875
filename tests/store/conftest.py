"""A real PostgreSQL 15 server for the store tests, on a Unix socket only (no TCP).

It starts once per test session, the first time a test asks for it; each test gets a
database of its own. Missing binaries fail the run: CI installs them (make system-tools).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
# The socket lives in a folder of our own, so any port number is free there.
PG_PORT = 5432


@dataclass(frozen=True)
class PostgresServer:
    socket_dir: Path
    port: int

    def url(self, dbname: str) -> str:
        return f"postgresql:///{dbname}?host={self.socket_dir}&port={self.port}&user={PG_USER}"


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
    root = Path(tempfile.mkdtemp(prefix="tastegraph-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    shutil.chown(root, PG_USER)
    shutil.chown(sockets, PG_USER)
    pg_ctl = str(PG_BIN / "pg_ctl")
    try:
        _checked(
            _as_postgres(
                str(PG_BIN / "initdb"),
                *("-D", str(data), "-A", "trust", "-U", PG_USER),
                *("--no-sync", "--encoding=UTF8", "--locale=C.UTF-8"),
                cwd=root,
            ),
            "initdb",
        )
        # fsync off: nothing here must outlive a power cut, and the suite runs faster.
        options = f"-c listen_addresses='' -k {sockets} -p {PG_PORT} -c fsync=off"
        started = _as_postgres(
            pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start", cwd=root
        )
        _checked(started, "pg_ctl start", log)
        yield PostgresServer(sockets, PG_PORT)
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop", cwd=root)
        shutil.rmtree(root, ignore_errors=True)


_database_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database."""
    dbname = f"store_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(postgres_server.url("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {dbname}")
    return postgres_server.url(dbname)
