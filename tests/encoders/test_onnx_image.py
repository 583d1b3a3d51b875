"""The image tower in ONNX Runtime: the eager tower's features, from a checked graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tastegraph.encoders import EfficientNetLite0Tower, load_image_tower
from tastegraph.encoders.image import file_digest
from tastegraph.encoders.onnx_image import OnnxLite0Tower, sidecar

PHOTOS = 12


@pytest.fixture(scope="module")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_tower(graph_cache: Path) -> OnnxLite0Tower:
    return OnnxLite0Tower(cache=graph_cache)


@pytest.fixture(scope="module")
def batch(hm_data: Path, onnx_tower: OnnxLite0Tower) -> torch.Tensor:
    """Real H&M product photos, preprocessed."""
    paths = sorted((hm_data / "images").glob("*/*.jpg"))[::997][:PHOTOS]
    assert len(paths) == PHOTOS, f"expected {PHOTOS} photos under {hm_data / 'images'}"
    return torch.stack([onnx_tower.preprocess(p.read_bytes()) for p in paths])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    result: np.ndarray = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return result


def test_onnx_features_match_the_eager_tower(
    onnx_tower: OnnxLite0Tower, batch: torch.Tensor
) -> None:
    eager = EfficientNetLite0Tower().encode(batch)
    onnx = onnx_tower.encode(batch)
    assert onnx.shape == (PHOTOS, 1280) and onnx.dtype == np.float32
    assert cosines(onnx, eager).min() >= 0.999
    assert onnx_tower.version == EfficientNetLite0Tower().version  # caches stay valid
    assert onnx_tower.encode(batch[:1]).shape == (1, 1280)  # any batch size


def test_a_graph_that_fails_its_checksum_is_exported_again(
    onnx_tower: OnnxLite0Tower, graph_cache: Path, batch: torch.Tensor
) -> None:
    path = onnx_tower.graph_path
    assert path.parent == graph_cache
    with path.open("r+b") as f:  # corrupt the cached graph
        f.seek(path.stat().st_size // 2)
        f.write(b"\0" * 64)
    expected = sidecar(path).read_text().strip()
    assert file_digest([path], 64) != expected
    again = OnnxLite0Tower(cache=graph_cache)
    rewritten = sidecar(path).read_text().strip()
    assert again.graph_path == path and file_digest([path], 64) == rewritten
    np.testing.assert_allclose(again.encode(batch), onnx_tower.encode(batch), atol=1e-4)


def test_the_runtime_setting_picks_the_tower() -> None:
    assert type(load_image_tower(runtime="torch")) is EfficientNetLite0Tower
    with pytest.raises(ValueError, match="unknown image runtime 'tpu'"):
        load_image_tower(runtime="tpu")


def test_an_unwritable_cache_says_what_to_set(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(OSError, match=r"TASTEGRAPH_CACHE.*TASTEGRAPH_IMAGE_RUNTIME=torch"):
        OnnxLite0Tower(cache=blocker / "onnx")
