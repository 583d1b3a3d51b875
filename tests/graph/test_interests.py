"""Interests: clusters of the embedding space with readable labels and neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from tastegraph.graph.interests import InterestConfig, InterestMap, label


def clustered(n_clusters: int = 4, per: int = 15, dim: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.standard_normal((dim, n_clusters)))[0].T
    x = np.repeat(centres, per, axis=0) + 0.1 * rng.standard_normal((n_clusters * per, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_clusters_follow_the_space_and_labels_name_them() -> None:
    vectors = clustered()
    colours = ["Black", "White", "Red", "Blue"]
    attributes = [{"colour_group": colours[i // 15], "product_type": "Dress"} for i in range(60)]
    attributes[0] = {"colour_group": "Pink", "product_type": "Dress"}  # one odd item
    interests = InterestMap.build(vectors, attributes, [None] * 60, InterestConfig(count=4))
    assert len(interests) == 4
    for c in range(4):
        members = interests.assignment[c * 15 : (c + 1) * 15]
        assert len(set(members.tolist())) == 1  # a whole cluster in one interest
    assert sorted(interests.labels) == sorted(f"{c} · Dress" for c in colours)
    assert interests.adjacent.shape == (4, 3)
    assert all(c not in interests.adjacent[c] for c in range(4))
    assert np.array_equal(interests.nearest(vectors[:15]), interests.assignment[:15])


def test_labels_fall_back_to_title_words_and_repeats_are_numbered() -> None:
    assert label([{}, {}], ["Slim jeans", "Skinny jeans"], ("colour_group",)).startswith("jeans")
    assert label([{}], [None], ("colour_group",)) == "Miscellaneous"
    vectors = clustered(2, 10)
    same = [{"colour_group": "Black"}] * 20
    interests = InterestMap.build(vectors, same, [None] * 20, InterestConfig(count=2))
    assert sorted(interests.labels) == ["Black", "Black 2"]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="same items"):
        InterestMap.build(clustered(), [{}], [None], InterestConfig(count=2))
    with pytest.raises(ValueError, match="empty"):
        InterestMap.build(np.zeros((0, 4), np.float32), [], [])
