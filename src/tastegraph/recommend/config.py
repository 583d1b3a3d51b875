"""How recommendations are gathered, scored and arranged; tuned on the validation split."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecommendConfig:
    # Home feed candidates.
    interests: int = 8  # the user's most important interests searched (ANN from each medoid)
    per_interest: int = 50  # nearest items fetched per interest
    walk_items: int = 10  # the user's latest items walks start from
    walkers: int = 100  # walks per query item, each of walk_steps steps
    walk_steps: int = 8
    walk_cache_items: int = 10_000  # items whose walk visits are kept for the next request
    interest_cache_items: int = 10_000  # medoids whose nearest items are kept likewise
    # Items whose unfiltered related items are kept as answered (about 4 KB each).
    related_cache_items: int = 5_000
    # A walk query's weight halves for every this many hours it is older than the user's
    # latest event, so the feed follows what the user does right now.
    walk_half_life_hours: float = 24.0
    popular: int = 200  # fresh popular items always in the pool
    # Ranker: each source's scores are scaled to [0, 1] (divided by the source's best) and
    # summed with these weights.
    interest_weight: float = 1.0
    walk_weight: float = 1.0
    popular_weight: float = 0.3  # H&M's; `tastegraph train feed` fits it to a catalog
    # The user's own items back in the feed (in fashion people buy a liked item again, in
    # another size or for someone else); off with exclude_engaged. At 100 they come before
    # the other sources unless long decayed: on validation that beat 10 by 1.08x MAP@12
    # [0.92, 1.37], as did 30 and 1000 alike.
    repeat_weight: float = 100.0
    # Leave the user's engaged items out of the feed whatever the request's filters: for
    # catalogs where nobody engages twice (recommend/behaviour.py sets it from the log).
    leave_out_engaged: bool = False
    # Diversification (MMR): 1.0 ranks by score alone; lower trades score for variety.
    mmr_lambda: float = 0.95
    mmr_pool: int = 5  # MMR picks among the best mmr_pool * n candidates
    # Default share of feed slots given to interests adjacent to the user's (the explore dial).
    explore: float = 0.2
    # Related items ("more like this"): cosine, plus walks from the item (bought or saved
    # together) and other variants of the same product.
    related_walk_weight: float = 0.03
    related_variant_weight: float = 0.2
    # Times the item's freshness log-lift (graph/freshness): items nobody has bought for
    # months are mostly no longer on sale. Measured on the feed too, where it did not help.
    related_freshness_weight: float = 0.05
    # Times the summed PMI of the two items' attribute values (graph/complements): a top
    # goes with trousers even though they do not look alike.
    related_complement_weight: float = 0.04

    def __post_init__(self) -> None:
        for name in ("interests", "per_interest", "walk_items", "popular", "mmr_pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.walk_half_life_hours <= 0:
            raise ValueError(
                f"walk_half_life_hours must be positive, got {self.walk_half_life_hours}"
            )
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda}")
        check_explore(self.explore)


def check_explore(explore: float) -> float:
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore is a share of the feed in [0, 1], got {explore}")
    return explore
