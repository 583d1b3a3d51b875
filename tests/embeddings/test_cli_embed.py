"""The embedding commands end to end through the CLI, on the small real catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from tastegraph.cli import app
from tastegraph.config import Settings
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.index import open_index

runner = CliRunner()


def test_train_embed_similar(small_catalog: Settings, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(small_catalog.workdir, workdir)
    env = {"TASTEGRAPH_WORKDIR": str(workdir), "HF_HUB_OFFLINE": "1"}

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    missing = runner.invoke(app, ["embed"], env=env)
    assert missing.exit_code == 2 and "tastegraph train embeddings" in missing.output

    trained = invoke("train", "embeddings", "--content-epochs", "2", "--taste-epochs", "1")
    assert "co-engaged pairs" in trained and "saved" in trained
    embedded = invoke("embed")
    assert "published" in embedded
    assert "unchanged" in invoke("embed")
    assert "indexed" in invoke("index")
    embeddings, index = EmbeddingStore.open(workdir), open_index(workdir)
    assert len(index) == len(embeddings)
    assert index.metadata["embeddings_version"] == embeddings.version

    item = EmbeddingStore.open(workdir).ids[0]
    lines = invoke("similar", item, "-k", "3").strip().splitlines()
    assert len(lines) == 4 and item in lines[0]  # the item itself, then its 3 neighbours
    unknown = runner.invoke(app, ["similar", "nope"], env=env)
    assert unknown.exit_code == 2 and "nope" in unknown.output
