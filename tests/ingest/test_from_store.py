"""`tastegraph ingest store`: a workdir's SQLite store copied into PostgreSQL, whole, with
every event at its log position, and safe to run again."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from tastegraph.cli import app
from tastegraph.config import Settings
from tastegraph.store import open_store

runner = CliRunner()


def test_a_sqlite_store_moves_to_postgres_with_its_log_positions(
    small_catalog: Settings, postgres_url: str, tmp_path: Path
) -> None:
    source_path = tmp_path / "source.db"
    shutil.copy(small_catalog.workdir / "store.db", source_path)
    source_url = f"sqlite:///{source_path}"
    env = {"TASTEGRAPH_WORKDIR": str(tmp_path / "work"), "TASTEGRAPH_STORE_URL": postgres_url}

    copied = runner.invoke(app, ["ingest", "store", source_url], env=env)
    assert copied.exit_code == 0, copied.output
    with open_store(source_url) as source, open_store(postgres_url) as target:
        assert target.counts() == source.counts()
        assert target.last_event_seq() == source.last_event_seq()
        assert target.events_after(0) == source.events_after(0)
        assert list(target.iter_users()) == list(source.iter_users())
        assert list(target.iter_items()) == list(source.iter_items())
        assert list(target.iter_media()) == list(source.iter_media())
        assert list(target.iter_collections()) == list(source.iter_collections())
        basket = next(target.iter_collections()).id
        assert target.collection_items(basket) == source.collection_items(basket)
        n_events = source.counts()["events"]
    assert "log here ends" not in copied.output

    again = runner.invoke(app, ["ingest", "store", source_url], env=env)
    assert again.exit_code == 0, again.output
    events_line = next(line for line in again.output.splitlines() if line.startswith("events"))
    assert events_line.split()[1:4] == [f"{n_events:,}", "0", f"{n_events:,}"]


def test_a_missing_or_own_source_store_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {"TASTEGRAPH_WORKDIR": str(tmp_path / "work")}
    missing = runner.invoke(app, ["ingest", "store", f"sqlite:///{tmp_path / 'nope.db'}"], env=env)
    assert missing.exit_code == 2 and "no store at" in missing.output
    assert not (tmp_path / "nope.db").exists()
    own = f"sqlite:///{tmp_path / 'work' / 'store.db'}"
    refused = runner.invoke(app, ["ingest", "store", own], env=env)
    assert refused.exit_code == 2 and "this workdir's own store" in refused.output
