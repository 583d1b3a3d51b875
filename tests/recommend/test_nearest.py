"""Interest neighbours kept between feeds answer as the index does."""

from __future__ import annotations

import numpy as np
from world import World

from tastegraph.recommend.nearest import NearestCache


def test_kept_answers_are_the_indexs_answers(world: World) -> None:
    index = world.recommender().index
    vectors = world.vectors[[0, 7, 0, 30]]  # the first query twice
    cache = NearestCache(index, k=5, size=2)
    scores, rows = cache.search(vectors)
    expected_scores, expected_rows = index.search_rows(vectors, 5)
    assert np.array_equal(rows, expected_rows)
    assert np.allclose(scores, expected_scores, atol=1e-6)
    assert len(cache.kept) == 2  # three distinct vectors, two kept
    again_scores, again_rows = cache.search(vectors[[2]])
    assert np.array_equal(again_rows, expected_rows[[2]]) and np.array_equal(
        again_scores, scores[[2]]
    )
    cache.warm(world.vectors[40:50])
    assert len(cache.kept) == 2
