"""No artifact is read or written with pickle: a pickle runs code when loaded."""

from __future__ import annotations

import re
from pathlib import Path

SOURCE = Path(__file__).parents[1] / "src"
UNSAFE = re.compile(r"\bimport pickle\b|\bpickle\.|\bjoblib\b|\btorch\.load\(|allow_pickle=True")


def test_no_pickle_in_the_source() -> None:
    found = [
        f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
        for path in sorted(SOURCE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if UNSAFE.search(line)
    ]
    assert not found, "unsafe deserialisation:\n" + "\n".join(found)


def test_the_check_finds_what_it_looks_for() -> None:
    for line in (
        "import pickle",
        "model = pickle.load(f)",
        "np.load(p, allow_pickle=True)",
        "joblib.dump(m, p)",
        "torch.load(path)",
    ):
        assert UNSAFE.search(line), line
    assert not UNSAFE.search("np.load(path, allow_pickle=False)")
