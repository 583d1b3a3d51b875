"""The embed job on a small real catalog: train, embed, incremental re-run, SIGKILL resume."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tastegraph.config import Settings
from tastegraph.embeddings.job import fusion_root, photo_embeddings, prepare_features, run_embed
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.embeddings.train import TrainConfig, save_fusion, train_fusion
from tastegraph.encoders.colour import RGB_BINS, ColourSignature
from tastegraph.store import SQLiteStore

QUICK = TrainConfig(content_epochs=3, taste_epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def trained(small_catalog: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A copy of the small catalog with a fusion model: the session's catalog stays bare
    for the fixtures that build everything on it (tests/conftest.py)."""
    workdir = tmp_path_factory.mktemp("embed-job") / "work"
    shutil.copytree(small_catalog.workdir, workdir)
    settings = small_catalog.model_copy(update={"workdir": workdir})
    with SQLiteStore(workdir / "store.db") as store:
        features = prepare_features(store, settings)
        result = train_fusion(features.table, list(store.iter_events()), QUICK, show_progress=False)
    assert result.taste_pairs > 0 and result.content_items > 0
    save_fusion(result, fusion_root(workdir), features.towers, QUICK)
    return settings


def test_embed_publishes_unit_vectors_for_every_item(trained: Settings) -> None:
    with SQLiteStore(trained.workdir / "store.db") as store:
        result = run_embed(store, trained)
        n_items = store.counts()["items"]
    embeddings = result.embeddings
    assert len(embeddings) == n_items
    assert embeddings.vectors.shape == (n_items, 256)
    np.testing.assert_allclose(np.linalg.norm(embeddings.vectors, axis=1), 1.0, atol=1e-5)
    manifest = embeddings.manifest
    assert manifest["count"] == n_items and manifest["dim"] == 256
    assert set(manifest["towers"]) == {"image", "text"}
    assert 0 < manifest["items_with_text"] < n_items  # some H&M items are photo-only
    assert EmbeddingStore.open(trained.workdir).version == embeddings.version


def test_embed_stores_each_photo_colour_signature_beside_its_embedding(trained: Settings) -> None:
    with SQLiteStore(trained.workdir / "store.db") as store:
        embeddings = run_embed(store, trained).embeddings
        table = prepare_features(store, trained).table
    colours = embeddings.colours
    assert colours is not None and colours.shape == (len(embeddings), ColourSignature.dim)
    assert embeddings.manifest["colour_signature"].startswith(ColourSignature.name)
    has_photo = dict(zip(table.item_ids, table.has_image.tolist(), strict=True))
    histograms = colours[:, : RGB_BINS**3].sum(axis=1)
    for row, item_id in enumerate(embeddings.ids):  # a histogram sums to 1; no photo: zeros
        assert histograms[row] == pytest.approx(1.0 if has_photo[item_id] else 0.0, abs=1e-5)
    first = embeddings.ids[0]
    np.testing.assert_array_equal(embeddings.colour(first), colours[0])
    with pytest.raises(KeyError):
        embeddings.colour("no such item")


def test_photo_embeddings_read_an_item_as_if_it_had_no_text(trained: Settings) -> None:
    with SQLiteStore(trained.workdir / "store.db") as store:
        embeddings = run_embed(store, trained).embeddings
        table = prepare_features(store, trained).table
        ids, vectors = photo_embeddings(table, trained.workdir, embeddings)
    rows = table.index()
    assert set(ids) == {i for i in table.item_ids if table.has_image[rows[i]]}
    photo = dict(zip(ids, vectors, strict=True))
    photo_only = [i for i in ids if not table.has_text[rows[i]]]
    with_text = [i for i in ids if table.has_text[rows[i]]]
    assert photo_only and with_text
    for item_id in photo_only:  # nothing fused in: its own embedding
        np.testing.assert_allclose(photo[item_id], embeddings.vector(item_id), atol=1e-5)
    moved = [float(photo[i] @ embeddings.vector(i)) for i in with_text]
    assert max(moved) < 0.9999  # the text moved every fused embedding away from the photo's


def test_rerun_with_nothing_new_encodes_nothing_and_keeps_the_version(trained: Settings) -> None:
    with SQLiteStore(trained.workdir / "store.db") as store:
        first = run_embed(store, trained)
        again = run_embed(store, trained)
    assert (again.features.encoded_images, again.features.encoded_texts) == (0, 0)
    assert not again.published
    assert again.embeddings.version == first.embeddings.version


def test_similar_items_exclude_the_item_and_are_sorted(trained: Settings) -> None:
    embeddings = EmbeddingStore.open(trained.workdir)
    item = embeddings.ids[0]
    neighbours = embeddings.similar(item, k=5)
    assert len(neighbours) == 5 and item not in [n for n, _ in neighbours]
    scores = [s for _, s in neighbours]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(KeyError, match="no-such-item"):
        embeddings.similar("no-such-item")


def test_fusion_model_for_other_towers_is_refused(trained: Settings, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(trained.workdir, workdir)
    manifest_path = next((workdir / "models" / "fusion").glob("v*/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    manifest["towers"]["image"] = "some-other-tower@1"
    manifest_path.write_text(json.dumps(manifest))
    settings = trained.model_copy(update={"workdir": workdir})
    with (
        SQLiteStore(workdir / "store.db") as store,
        pytest.raises(ValueError, match="train embeddings"),
    ):
        run_embed(store, settings)


def shards(workdir: Path) -> list[Path]:
    return sorted(workdir.glob("features/efficientnet-lite0@*/shard-*.npz"))


def test_sigkill_mid_embed_then_rerun_finishes_without_reencoding(
    trained: Settings, tmp_path: Path
) -> None:
    reference = EmbeddingStore.open(trained.workdir)
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(trained.workdir / "store.db", workdir / "store.db")
    shutil.copytree(trained.workdir / "models", workdir / "models")
    env = os.environ | {
        "TASTEGRAPH_WORKDIR": str(workdir),
        "TASTEGRAPH_EMBED_SHARD_SIZE": "4",
        "TASTEGRAPH_EMBED_BATCH_SIZE": "4",
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "tastegraph", "embed"]
    job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while len(shards(workdir)) < 2:
        assert job.poll() is None, "the embed job ended before it could be killed"
        assert time.monotonic() < deadline, "no shard was written within 180 s"
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert not (workdir / "embeddings" / "CURRENT").exists()
    kept = len(shards(workdir))

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    encoded = int(re.search(r"encoded (\d+) photos", rerun.stdout).group(1))  # type: ignore[union-attr]
    assert encoded <= len(reference) - 4 * kept  # the shards kept were not encoded again
    resumed = EmbeddingStore.open(workdir)
    assert resumed.ids == reference.ids
    np.testing.assert_allclose(resumed.vectors, reference.vectors, atol=1e-4)
