"""User interest embeddings (several per user, PinnerSage-style) and their online updater.
The batch job that clusters every user's history is `tastegraph.profiles.batch`."""

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
    "popular_items",
    "profiles_root",
    "weighted_medoid",
]
