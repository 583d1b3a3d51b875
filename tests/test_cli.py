from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastegraph.cli import app

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"TASTEGRAPH_DATA": "", **(env or {})})
    return result.exit_code, result.output


def test_help_lists_the_working_commands() -> None:
    code, output = invoke("--help")
    assert code == 0
    for command in ("ingest", "stats", "bench"):
        assert command in output
    code, output = invoke("ingest", "--help")
    assert code == 0 and all(name in output for name in ("hm", "items", "events"))


def test_ingest_hm_without_data_says_how_to_give_it(tmp_path: Path) -> None:
    code, output = invoke("--workdir", str(tmp_path), "ingest", "hm")
    assert code == 2
    assert "--data" in output and "TASTEGRAPH_DATA" in output


def test_ingest_hm_in_a_wrong_folder_names_what_is_missing(tmp_path: Path) -> None:
    code, output = invoke("--workdir", str(tmp_path), "ingest", "hm", "--data", str(tmp_path))
    assert code == 2
    assert "missing transactions.csv" in output


def test_events_file_with_no_usable_row_exits_1(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text("user,item,action,timestamp\nu1,nope,save,2020-01-01\nu2,,click,yesterday\n")
    code, output = invoke("--workdir", str(tmp_path / "w"), "ingest", "events", str(events))
    assert code == 1
    assert "quarantine" in output
    assert len(list((tmp_path / "w" / "quarantine").glob("events-events.csv-*.jsonl"))) == 1


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "items.xlsx"
    bad.write_bytes(b"PK\x03\x04")
    code, output = invoke("--workdir", str(tmp_path), "ingest", "items", str(bad))
    assert code == 2 and "unknown format" in output


def test_items_then_events_then_stats(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "sku-1", "title": "Chair", "price": 120}\n{"id": "sku-2"}\n')
    events = tmp_path / "events.csv"
    events.write_text(
        "user,item,rating,timestamp\nann,sku-1,5,1700000000\nann,sku-2,1,1700000100\n"
    )
    env = {"TASTEGRAPH_WORKDIR": str(tmp_path / "w")}
    assert invoke("ingest", "items", str(items), env=env)[0] == 0
    code, output = invoke("ingest", "events", str(events), env=env)
    assert code == 0 and "events" in output
    code, output = invoke("stats", env=env)
    assert code == 0
    assert "items" in output and "events" in output and " 2" in output


def test_store_from_another_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    assert invoke("--workdir", str(tmp_path), "stats")[0] == 0
    with sqlite3.connect(tmp_path / "store.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    code, output = invoke("--workdir", str(tmp_path), "stats")
    assert code == 2
    assert "schema version 99" in output


@pytest.mark.parametrize("flag", ["--workdir", "--store"])
def test_global_flags_are_documented(flag: str) -> None:
    assert flag in invoke("--help")[1]


def test_serve_with_an_unreachable_store_fails_in_one_line_hiding_the_password(
    tmp_path: Path,
) -> None:
    url = f"postgresql:///db?host={tmp_path / 'no-server'}&user=bob&password=s3cret"
    result = runner.invoke(app, ["--workdir", str(tmp_path), "--store", url, "serve"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot open the PostgreSQL store" in lines[0], result.output
    assert "s3cret" not in result.output and "password=***" in lines[0]
