"""Write artifacts so that a crash never leaves half of one: temporary name, fsync, rename."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed over `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        tmp.chmod(0o644)  # mkstemp makes files private; artifacts are for every reader
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it is renamed to `target` (which must not exist)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield tmp
        for file in tmp.iterdir():
            _fsync(file)
        tmp.chmod(0o755)  # mkdtemp makes folders private
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically; dataclasses are written as objects."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=_jsonable) + "\n")


def remove_stale_temporaries(directory: Path) -> None:
    """Remove what a killed writer left behind under temporary names."""
    if directory.is_dir():
        for leftover in directory.glob(".*.tmp"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def publish_version(root: Path, write: Callable[[Path], None]) -> Path:
    """Write a new version of an artifact under `root` and make it the current one.

    `write` fills a temporary folder; the folder is renamed to root/<version>, then the
    CURRENT pointer is replaced. Readers see the old version until that last rename.
    """
    remove_stale_temporaries(root)  # what a writer killed mid-publish left (one writer a root)
    version = time.strftime("v%Y%m%dT%H%M%S", time.gmtime()) + f"-{secrets.token_hex(3)}"
    with atomic_dir(root / version) as tmp:
        write(tmp)
    with atomic_path(root / "CURRENT") as tmp:
        tmp.write_text(version + "\n")
    return root / version


def current_version(root: Path) -> Path | None:
    """The folder of the current version under `root`, or None if none was published."""
    pointer = root / "CURRENT"
    if not pointer.is_file():
        return None
    return root / pointer.read_text().strip()
