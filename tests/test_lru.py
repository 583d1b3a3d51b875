"""The least-recently-used map behind the walk and interest caches."""

from __future__ import annotations

import pytest

from tastegraph.lru import LruMap


def test_keeps_the_most_recently_used_entries() -> None:
    kept: LruMap[str, int] = LruMap(size=2)
    kept.put_many({"a": 1, "b": 2})
    assert kept.get_many(["a", "zz"]) == {"a": 1}  # a is now more recent than b
    kept.put_many({"c": 3})
    assert kept.get_many(["a", "b", "c"]) == {"a": 1, "c": 3}
    kept.clear()
    assert len(kept) == 0
    nothing: LruMap[str, int] = LruMap(size=0)
    nothing.put_many({"a": 1})
    assert len(nothing) == 0
    with pytest.raises(ValueError, match="size"):
        LruMap(size=-1)
