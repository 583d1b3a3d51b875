"""The Ray engine of the embed job on a small real catalog: the local engine's features, the
same resumable shards, and a local Ray that listens on loopback only."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import ray

from tastegraph.config import Settings
from tastegraph.embeddings.catalog import CatalogEntry, load_catalog
from tastegraph.embeddings.extract import extract_image_features, extract_text_features
from tastegraph.embeddings.features import FeatureCache
from tastegraph.embeddings.job import prepare_features
from tastegraph.embeddings.ray_engine import (
    extract_image_features_ray,
    extract_text_features_ray,
    start_local_ray,
)
from tastegraph.encoders import EfficientNetLite0Tower, MiniLMTextTower
from tastegraph.store import SQLiteStore

ENTRIES = 24
IMAGE_SHARD, TEXT_SHARD = 8, 5

# Starting Ray and running the embed job on it takes minutes on 2 cores: `make test-slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A Ray on this machine for the module, even where RAY_ADDRESS names a cluster."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("RAY_ADDRESS", raising=False)
        started = start_local_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def entries(small_catalog: Settings) -> list[CatalogEntry]:
    with SQLiteStore(small_catalog.workdir / "store.db") as store:
        return load_catalog(store)[:ENTRIES]


@dataclass
class RayRun:
    images: FeatureCache
    texts: FeatureCache
    encoded_images: int
    encoded_texts: int


@pytest.fixture(scope="module")
def ray_run(
    local_ray: None, entries: list[CatalogEntry], tmp_path_factory: pytest.TempPathFactory
) -> RayRun:
    folder = tmp_path_factory.mktemp("ray-features")
    images = FeatureCache(folder / "images", EfficientNetLite0Tower.dim)
    texts = FeatureCache(folder / "texts", MiniLMTextTower.dim)
    encoded_images = extract_image_features_ray(
        entries, EfficientNetLite0Tower.name, images, batch_size=8, shard_size=IMAGE_SHARD
    )
    encoded_texts = extract_text_features_ray(
        entries, MiniLMTextTower.name, texts, batch_size=16, shard_size=TEXT_SHARD
    )
    return RayRun(images, texts, encoded_images, encoded_texts)


def listening_sockets() -> list[tuple[str, int, str]]:
    """(local address, pid, process name) of every listening TCP socket, from `ss -ltnp`."""
    if shutil.which("ss") is None:
        pytest.fail("`ss` not found: install iproute2 to check which addresses Ray listens on")
    output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    sockets = []
    for line in output.splitlines():
        fields = line.split()
        address = fields[3].rsplit(":", 1)[0].strip("[]").split("%")[0]
        for name, pid in re.findall(r'\("([^"]*)",pid=(\d+)', line):
            sockets.append((address, int(pid), name))
    return sockets


def descendants(root: int) -> set[int]:
    """root and every process below it, from the parent pids in /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name, in parentheses, may hold spaces: the fields after it do not
            child, rest = stat.read_text().split(" ", 1)
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(rest.rsplit(")", 1)[1].split()[1]), []).append(int(child))
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def is_127_0_0_1(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)  # "*" and host names are not
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # "::ffff:127.0.0.1": Ray's gRPC servers listen on those
    return ip == ipaddress.IPv4Address("127.0.0.1")


def test_ray_listens_on_127_0_0_1_only(ray_run: RayRun) -> None:
    ours = descendants(os.getpid())
    ray_sockets = [
        (address, pid, name)
        for address, pid, name in listening_sockets()
        if pid in ours or "ray" in name.lower() or "gcs" in name.lower()
    ]
    assert any(name in {"gcs_server", "raylet"} for _, _, name in ray_sockets), ray_sockets
    exposed = [socket for socket in ray_sockets if not is_127_0_0_1(socket[0])]
    assert not exposed, f"Ray listens beyond 127.0.0.1: {exposed}"


def test_ray_gives_the_local_engine_features(
    ray_run: RayRun, entries: list[CatalogEntry], tmp_path: Path
) -> None:
    images = FeatureCache(tmp_path / "images", EfficientNetLite0Tower.dim)
    texts = FeatureCache(tmp_path / "texts", MiniLMTextTower.dim)
    assert extract_image_features(entries, EfficientNetLite0Tower(), images, threads=1) == (
        ray_run.encoded_images
    )
    assert extract_text_features(entries, MiniLMTextTower(), texts) == ray_run.encoded_texts
    assert ray_run.encoded_images > 0 and ray_run.encoded_texts > 0
    image_keys = [e.image_key for e in entries if e.image_key]
    text_keys = [e.text_key for e in entries if e.text_key]
    for keys, local, on_ray in [
        (image_keys, images, ray_run.images),
        (text_keys, texts, ray_run.texts),
    ]:
        assert len(on_ray) == len(local) == len(set(keys))
        got = on_ray.get(keys)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, local.get(keys), atol=1e-4)


def test_a_second_ray_run_encodes_nothing(ray_run: RayRun, entries: list[CatalogEntry]) -> None:
    name = EfficientNetLite0Tower.name
    assert extract_image_features_ray(entries, name, ray_run.images) == 0
    assert extract_text_features_ray(entries, MiniLMTextTower.name, ray_run.texts) == 0
    reopened = FeatureCache(ray_run.images.directory, EfficientNetLite0Tower.dim)
    assert extract_image_features_ray(entries, name, reopened) == 0


@pytest.mark.parametrize(
    ("modality", "shard_size"), [("images", IMAGE_SHARD), ("texts", TEXT_SHARD)]
)
def test_shards_hold_shard_size_rows(ray_run: RayRun, modality: str, shard_size: int) -> None:
    cache: FeatureCache = getattr(ray_run, modality)
    sizes = []
    for shard in sorted(cache.directory.glob("shard-*.npz")):
        with np.load(shard) as data:
            sizes.append(len(data["keys"]))
    assert len(sizes) == math.ceil(len(cache) / shard_size)
    assert sizes[:-1] == [shard_size] * (len(sizes) - 1) and 0 < sizes[-1] <= shard_size


def test_a_photo_that_fails_to_decode_is_skipped_with_a_warning(
    local_ray: None,
    entries: list[CatalogEntry],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    photos = [e for e in entries if e.image_key][:2]
    photos.append(replace(photos[0], image_path=str(broken), image_key="broken-photo"))
    cache = FeatureCache(tmp_path / "images", EfficientNetLite0Tower.dim)
    with caplog.at_level(logging.WARNING, logger="tastegraph.embeddings.ray_engine"):
        encoded = extract_image_features_ray(photos, EfficientNetLite0Tower.name, cache)
    assert encoded == 2  # the broken photo is skipped, not counted
    assert cache.missing(e.image_key or "" for e in photos) == ["broken-photo"]
    assert "broken.jpg" in caplog.text


def test_a_running_ray_is_left_to_whoever_started_it(local_ray: None) -> None:
    assert start_local_ray() is False
    assert ray.is_initialized()


def test_embed_job_on_ray_matches_the_local_engine(
    local_ray: None, small_catalog: Settings, tmp_path: Path
) -> None:
    """`--engine ray` through prepare_features: the same table as the local engine."""
    with SQLiteStore(small_catalog.workdir / "store.db") as store:
        local = prepare_features(store, small_catalog).table
        on_ray = prepare_features(
            store, small_catalog.model_copy(update={"workdir": tmp_path, "embed_engine": "ray"})
        )
    assert on_ray.encoded_images > 0 and ray.is_initialized()  # left running: the module's
    assert on_ray.table.item_ids == local.item_ids
    np.testing.assert_allclose(on_ray.table.image, local.image, atol=1e-4)
    np.testing.assert_allclose(on_ray.table.text, local.text, atol=1e-4)
