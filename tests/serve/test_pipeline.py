"""The main job: a second run finds every artifact current; new items embed as in batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tastegraph.artifacts import current_version
from tastegraph.assistant.head import HEAD_FORMAT
from tastegraph.assistant.models import DEFAULT_LM
from tastegraph.cli import app
from tastegraph.config import Settings
from tastegraph.embeddings.job import fusion_root
from tastegraph.embeddings.online import ItemEmbedder
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.pipeline import Pipeline, PipelineConfig, assistant_is_current
from tastegraph.store import SQLiteStore


def test_second_demo_run_reuses_everything(workdir: Path) -> None:
    env = {"TASTEGRAPH_WORKDIR": str(workdir), "HF_HUB_OFFLINE": "1"}
    result = CliRunner().invoke(app, ["demo", "--no-serve", "--assistant-items", "100"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()[-8:]
    assert [line.split()[0] for line in lines] == ["[skip]"] * 8, result.output
    help_text = CliRunner().invoke(app, ["demo", "--help"], env=env).output
    assert all(step in help_text for step in ("ingest", "embed", "index", "serve", "--reingest"))


def fusion_manifest(workdir: Path) -> Path:
    folder = current_version(fusion_root(workdir))
    assert folder is not None, f"no fusion model in {workdir}"
    return folder / "manifest.json"


def test_a_fusion_model_for_another_tower_version_is_trained_again(
    workdir: Path, tmp_path: Path
) -> None:
    # As after an upgrade that changes a tower's preprocessing, and so its version.
    copy = tmp_path / "work"
    shutil.copytree(workdir, copy)
    manifest_path = fusion_manifest(copy)
    manifest = json.loads(manifest_path.read_text())
    towers = dict(manifest["towers"])
    manifest["towers"]["image"] = towers["image"] + "-older"
    manifest_path.write_text(json.dumps(manifest))
    settings = Settings(workdir=copy)
    config = PipelineConfig(content_epochs=1, taste_epochs=1)
    with SQLiteStore(copy / "store.db") as store:
        [report] = Pipeline(store, settings, config).run(None, only=["train embeddings"])
        assert report.ran, report
        retrained = json.loads(fusion_manifest(copy).read_text())
        assert retrained["towers"] == towers
        [again] = Pipeline(store, settings, config).run(None, only=["train embeddings"])
        assert not again.ran


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


def test_the_assistant_is_trained_again_for_new_embeddings_an_lm_a_layout_or_an_older_head() -> (
    None
):
    served = {
        "stage": "shopping",
        "embeddings_version": "v3",
        "lm": DEFAULT_LM,
        "item_layout": "tokens_text",
        "head_format": HEAD_FORMAT,
    }
    assert assistant_is_current(served, "v3", DEFAULT_LM)
    assert not assistant_is_current(served, "v4", DEFAULT_LM)
    assert not assistant_is_current(served, "v3", "Qwen2.5-Coder-0.5B-Instruct")
    assert not assistant_is_current(served | {"item_layout": "tokens"}, "v3", DEFAULT_LM)
    older_head = {k: v for k, v in served.items() if k != "head_format"}
    assert not assistant_is_current(older_head, "v3", DEFAULT_LM)
    stage_one = {"stage": "alignment", "embeddings_version": "v3", "lm": DEFAULT_LM}
    assert assistant_is_current(stage_one, "v3", DEFAULT_LM)
