"""Where the assistant's LM comes from: the joined Qwen GGUF is checked before it is used."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tastegraph.assistant.models import cached_lm, join_parts, lm_cache_dir


def parts(folder: Path) -> list[Path]:
    chunks = [b"GGUF" + bytes(range(200)), bytes(range(256)) * 3, b"tail"]
    paths = []
    for n, chunk in enumerate(chunks, start=1):
        path = folder / f"part0{n}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


def test_joined_parts_are_published_only_with_the_expected_size_and_checksum(
    tmp_path: Path,
) -> None:
    chunks = parts(tmp_path)
    whole = b"".join(p.read_bytes() for p in chunks)
    target = tmp_path / "models" / "joined.gguf"

    good = hashlib.sha256(whole).hexdigest()
    assert join_parts(chunks, target, len(whole), good) == target
    assert target.read_bytes() == whole

    target.unlink()
    with pytest.raises(ValueError, match="refusing") as error:
        join_parts(chunks, target, len(whole), "0" * 64)
    assert good in str(error.value)  # says what it found
    with pytest.raises(ValueError, match="refusing"):
        join_parts(list(reversed(chunks)), target, len(whole), good)  # wrong order
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no half-written file left


def test_an_unknown_model_name_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown language model"):
        cached_lm(tmp_path, "GPT-9")
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        cached_lm(tmp_path, str(tmp_path))  # a folder that is not a model
    assert lm_cache_dir(tmp_path, "/models/my-lm.gguf").name == "my-lm"
