"""Recommendations: the home feed, related items and search, each with a reason."""

from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.diversify import mmr
from tastegraph.recommend.items import Filters, Recommendation
from tastegraph.recommend.recommender import ItemRecommender, Recommender

__all__ = [
    "Filters",
    "ItemRecommender",
    "RecommendConfig",
    "Recommendation",
    "Recommender",
    "mmr",
]
