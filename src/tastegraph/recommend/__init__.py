"""Recommendations: the home feed, related items and search, each with a reason."""

from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.diversify import mmr
from tastegraph.recommend.recommender import Filters, Recommendation, Recommender

__all__ = ["Filters", "RecommendConfig", "Recommendation", "Recommender", "mmr"]
