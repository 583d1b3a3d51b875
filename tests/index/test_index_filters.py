"""FilterFields: category vocabularies merge on extend; masks treat missing values as no match."""

from __future__ import annotations

import numpy as np
import pytest

from tastegraph.index import FilterFields


def passing(mask: np.ndarray | None) -> list[bool]:
    assert mask is not None
    result: list[bool] = mask.tolist()
    return result


def test_extend_merges_category_vocabularies() -> None:
    old = FilterFields.from_values(3, ["shoes", None, "bags"], [1.0, 2.0, None])
    new = FilterFields.from_values(3, ["hats", "shoes", None], np.array([4.0, np.nan, 6.0]))
    both = old.extend(new)
    assert [both.category(row) for row in range(6)] == [
        "shoes",
        None,
        "bags",
        "hats",
        "shoes",
        None,
    ]
    assert [both.price(row) for row in range(6)] == [1.0, 2.0, None, 4.0, None, 6.0]
    assert passing(both.mask({"shoes"}, None)) == [True, False, False, False, True, False]


def test_masks() -> None:
    fields = FilterFields.from_values(4, ["a", "b", None, "a"], [5.0, None, 7.0, 9.0])
    assert fields.mask(None, None) is None and fields.mask(None, (None, None)) is None
    assert passing(fields.mask({"a"}, (6.0, None))) == [False, False, False, True]
    assert passing(fields.mask(None, (None, 7.0))) == [True, False, True, False]
    assert passing(fields.mask(set(), None)) == [False] * 4
    with pytest.raises(TypeError, match="a category must be a str"):
        FilterFields.from_values(1, [3])  # type: ignore[list-item]
