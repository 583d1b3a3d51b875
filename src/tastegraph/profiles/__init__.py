"""User interest embeddings (several per user, PinnerSage-style) and their online updater."""

from tastegraph.profiles.batch import (
    average_linkage,
    build_profiles,
    cluster_profile,
    publish_profiles,
)
from tastegraph.profiles.config import ProfileConfig
from tastegraph.profiles.interest import Interest, weighted_medoid
from tastegraph.profiles.popularity import popular_items
from tastegraph.profiles.profile import InterestQuery, UserProfile
from tastegraph.profiles.store import Embeddings, ProfileStore, profiles_root

__all__ = [
    "Embeddings",
    "Interest",
    "InterestQuery",
    "ProfileConfig",
    "ProfileStore",
    "UserProfile",
    "average_linkage",
    "build_profiles",
    "cluster_profile",
    "popular_items",
    "profiles_root",
    "publish_profiles",
    "weighted_medoid",
]
