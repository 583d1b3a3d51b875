from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_space import Space, make_space


@pytest.fixture
def space(tmp_path: Path) -> Space:
    """Six clusters of ten items each, 32-d."""
    return make_space(tmp_path)
