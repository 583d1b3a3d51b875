"""The main job: a second run finds every artifact current; new items embed as in batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tastegraph.cli import app
from tastegraph.config import Settings
from tastegraph.embeddings.online import ItemEmbedder
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.store import SQLiteStore


def test_second_demo_run_reuses_everything(workdir: Path) -> None:
    env = {"TASTEGRAPH_WORKDIR": str(workdir), "HF_HUB_OFFLINE": "1"}
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--assistant-items", "100"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()[-8:]
    assert [line.split()[0] for line in lines] == ["[skip]"] * 8, result.output
    help_text = CliRunner().invoke(app, ["demo", "--help"], env=env).output
    assert all(step in help_text for step in ("ingest", "embed", "index", "serve", "--reingest"))


def test_online_embedding_matches_the_batch_job(workdir: Path) -> None:
    embeddings = EmbeddingStore.open(workdir)
    embedder = ItemEmbedder(workdir, Settings(workdir=workdir))
    with SQLiteStore(workdir / "store.db") as store:
        for item_id in embeddings.ids[:3]:
            item = store.get_item(item_id)
            assert item is not None
            photo = Path(store.media_for(item_id)[0].uri).read_bytes()
            online = embedder.embed(item, photo)
            np.testing.assert_allclose(online, embeddings.vector(item_id), atol=1e-4)
