"""The default image tower run by ONNX Runtime: the same network and weights, about 2x or
more the photos/s of eager PyTorch on CPU (`tastegraph bench embed` measures both).

The EfficientNet-Lite0 feature network is exported to ONNX once per weights version and
kept in the user's cache folder with its sha256 beside it; a file whose digest no longer
matches is exported again, never loaded. ONNX Runtime fuses the graph (ORT_ENABLE_ALL) and
uses as many threads as torch does here, or one per call for the embed job. Features agree
with the eager tower's to a cosine of 0.999 or more (tests/encoders; 1.00000 measured on
H&M photos), so both share one version: caches stay valid whichever runtime wrote them.
The eager tower stays the reference (`image_runtime = "torch"`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tastegraph.artifacts import atomic_path
from tastegraph.encoders.image import (
    EfficientNetLite0Tower,
    _check_batch,
    file_digest,
    scale_pixels,
)

logger = logging.getLogger(__name__)

SHA256_HEX = 64  # file_digest's length for the whole sha256


def cache_folder() -> Path:
    """Where exported graphs live: $TASTEGRAPH_CACHE, else $XDG_CACHE_HOME/tastegraph, else
    ~/.cache/tastegraph."""
    explicit = os.environ.get("TASTEGRAPH_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tastegraph"


# The graph's input: uint8 pixels, scaled inside the graph. Part of the file name, so a
# graph exported for another input is never loaded.
GRAPH_INPUT = "u8"


class _Features(torch.nn.Module):
    """The tower's forward pass as one module: pixels scaled, last conv map, mean-pooled."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        extract: Any = self.model.extract_features
        features: torch.Tensor = extract(scale_pixels(pixels)).mean((2, 3))
        return features


def sidecar(graph: Path) -> Path:
    """Where a graph's sha256 is written."""
    return graph.with_suffix(graph.suffix + ".sha256")


def export_graph(tower: EfficientNetLite0Tower, path: Path) -> None:
    """Write the tower's feature network to `path` as ONNX (batch size free), atomically,
    with its sha256 beside it."""
    height, width = tower.input_size
    example = torch.zeros(2, 3, height, width, dtype=torch.uint8)
    batch = torch.export.Dim("batch")
    with atomic_path(path) as written:
        # The exporter prints its progress; keep library output off stdout.
        with contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(
                _Features(tower.model).eval(),
                (example,),
                str(written),
                input_names=["pixels"],
                output_names=["features"],
                dynamic_shapes={"pixels": {0: batch}},
                dynamo=True,
                external_data=False,
            )
        digest = file_digest([written], SHA256_HEX)
    with atomic_path(sidecar(path)) as written:
        written.write_text(digest + "\n")
    logger.info("exported %s to ONNX: %s (sha256 %s)", tower.name, path, digest[:12])


def checked_graph(tower: EfficientNetLite0Tower, folder: Path) -> Path:
    """The tower's exported graph in `folder`, exported first when it is missing or its
    sha256 does not match the one written beside it."""
    path = folder / f"{tower.name}-{tower.version}-{GRAPH_INPUT}.onnx"
    if path.is_file() and sidecar(path).is_file():
        if file_digest([path], SHA256_HEX) == sidecar(path).read_text().strip():
            return path
        logger.warning("%s does not match its sha256; exporting it again", path)
    try:
        export_graph(tower, path)
    except OSError as exc:
        raise OSError(
            f"cannot write the image tower's ONNX graph into {folder} ({exc}); set "
            "TASTEGRAPH_CACHE to a writable folder, or TASTEGRAPH_IMAGE_RUNTIME=torch"
        ) from exc
    return path


class OnnxLite0Tower(EfficientNetLite0Tower):
    """EfficientNet-Lite0 with its forward pass in ONNX Runtime; preprocessing, name,
    version and width are the eager tower's.

    `single_core=True` runs each forward pass on the calling thread alone, for the embed
    job, which calls it from one thread per core (data parallel); otherwise one call uses
    as many threads as torch does, for a caller with one photo at a time."""

    def __init__(
        self,
        weights_path: str | Path | None = None,
        cache: Path | None = None,
        *,
        single_core: bool = False,
    ) -> None:
        import onnxruntime as ort

        super().__init__(weights_path)
        self.single_core_encode = single_core
        self.graph_path = checked_graph(self, cache or cache_folder())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1 if single_core else torch.get_num_threads()
        self.session = ort.InferenceSession(
            str(self.graph_path), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, H, W) uint8 pixels from `preprocess` -> (B, 1280) float32 features."""
        _check_batch(batch)
        pixels = np.ascontiguousarray(batch.numpy())
        outputs: list[Any] = self.session.run(["features"], {"pixels": pixels})
        return np.asarray(outputs[0], dtype=np.float32)
