from __future__ import annotations

import pytest
from world import World, make_world


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()
