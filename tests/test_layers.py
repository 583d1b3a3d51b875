"""Online code (the server and what it loads on request) never imports an offline job or a
training module: fitting stays in the jobs, and the request path stays small."""

from __future__ import annotations

import json
import subprocess
import sys

# The server and every module it loads lazily (search, new items, the assistant).
ONLINE = [
    "tastegraph.serve.app",
    "tastegraph.online",
    "tastegraph.recommend.assemble",
    "tastegraph.recommend.search",
    "tastegraph.embeddings.online",
    "tastegraph.assistant.chat",
    "tastegraph.assistant.describe",
]
OFFLINE = [
    "tastegraph.pipeline",
    "tastegraph.embeddings.job",
    "tastegraph.embeddings.train",
    "tastegraph.graph.job",
    "tastegraph.graph.sage",
    "tastegraph.index.build",
    "tastegraph.profiles.batch",
    "tastegraph.recommend.rerank_job",
    "tastegraph.recommend.related_job",
    "tastegraph.assistant.train",
    "tastegraph.assistant.shopping",
    "tastegraph.evaluate",
    "sklearn",
    "ray",
]


def imported_by(modules: list[str]) -> set[str]:
    """Every module a fresh interpreter holds after importing `modules`."""
    code = (
        f"import json, sys\nfor m in {modules!r}: __import__(m)\n"
        "print(json.dumps(list(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_online_code_imports_no_offline_job() -> None:
    loaded = imported_by(ONLINE)
    assert set(ONLINE) <= loaded
    assert sorted(loaded & set(OFFLINE)) == []


def test_the_check_sees_what_a_module_imports_in_turn() -> None:
    loaded = imported_by(["tastegraph.recommend.rerank_job"])
    assert {"tastegraph.embeddings.train", "sklearn"} <= loaded
