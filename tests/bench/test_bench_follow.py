"""`tastegraph bench follow` and `bench serve` over PostgreSQL: the workdir's SQLite store is
copied into an empty database, two real server processes follow its log, and every event
posted reaches the other process; a database that is not empty, or a workdir whose own
store is not a file to copy, is refused. No timing is asserted."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tastegraph.cli import app
from tastegraph.store import open_store

runner = CliRunner()


def test_two_servers_over_a_postgres_copy_of_the_store(
    built_workdir: Path, postgres_url: str
) -> None:
    env = {"TASTEGRAPH_WORKDIR": str(built_workdir), "HF_HUB_OFFLINE": "1"}
    with open_store(f"sqlite:///{built_workdir / 'store.db'}") as workdir_store:
        before = workdir_store.counts()

    args = ["bench", "follow", "--events", "10", "--store-url", postgres_url]
    followed = runner.invoke(app, args, env=env)
    assert followed.exit_code == 0, followed.output
    assert "copying the store into" in followed.output
    other = next(line for line in followed.output.splitlines() if "the other process" in line)
    assert other.split()[-1] == "0"  # no event missed
    with open_store(postgres_url) as copied:
        assert copied.counts()["events"] == before["events"] + 10
        assert copied.counts()["items"] == before["items"]
    with open_store(f"sqlite:///{built_workdir / 'store.db'}") as workdir_store:
        assert workdir_store.counts() == before  # the benchmark wrote to its copy only

    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 2 and "not empty" in again.output


def test_a_workdir_on_postgres_needs_a_database_to_write_to(
    built_workdir: Path, postgres_url: str
) -> None:
    env = {"TASTEGRAPH_WORKDIR": str(built_workdir), "TASTEGRAPH_STORE_URL": postgres_url}
    refused = runner.invoke(app, ["bench", "serve", "--rates", "10"], env=env)
    assert refused.exit_code == 2 and "pass --store-url" in refused.output


def test_bench_serve_wants_one_database_per_worker_count(tmp_path: Path) -> None:
    env = {"TASTEGRAPH_WORKDIR": str(tmp_path)}
    serve = ["bench", "serve", "--rates", "10", "--workers", "1,2"]
    one_database = runner.invoke(app, [*serve, "--store-url", "postgresql:///a"], env=env)
    assert one_database.exit_code == 2 and "once per worker count" in one_database.output
    same_twice = ["--store-url", "postgresql:///a", "--store-url", "postgresql:///a"]
    assert runner.invoke(app, [*serve, *same_twice], env=env).exit_code == 2
    repeated = runner.invoke(app, ["bench", "serve", "--workers", "1,1"], env=env)
    assert repeated.exit_code == 2 and "differ" in repeated.output
