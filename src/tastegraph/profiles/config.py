"""How user profiles are built: thresholds, caps, time decay and the weight of each action."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from tastegraph.config import ACTIONS, Settings, default_action_weights
from tastegraph.store import Event

DAY_S = 86_400.0


@dataclass(frozen=True)
class ProfileConfig:
    # Interests kept per user. A new interest beyond this merges the two most similar
    # interests (if their medoids are at least merge_threshold alike) or drops the least
    # important one.
    max_interests: int = 8
    # Cosine between an item and an interest's medoid at or above which the item joins that
    # interest; below it the item opens a new one. On the fused H&M embeddings 0.6 is the
    # 95th percentile of random item pairs and the median of pairs of the same product type.
    join_threshold: float = 0.6
    # Cosine between two medoids at or above which over-cap interests merge; below it the
    # least important interest is dropped. 0.5 is about the 90th percentile of random pairs:
    # a merge below that would mix unrelated items under one medoid.
    merge_threshold: float = 0.5
    # An event's weight halves every half_life_days.
    half_life_days: float = 30.0
    # Members kept per interest (the heaviest); the medoid is chosen among them.
    max_items_per_interest: int = 20
    # Items per user the batch clustering considers (the heaviest); bounds its O(n^3) cost.
    max_batch_items: int = 500
    # Users with fewer positive events than this are new: callers mix in popular items.
    cold_start_events: int = 3
    # Latest positive events kept per user (item, action, time), for real-time candidates
    # such as walks from what the user engaged with last.
    recent_events: int = 20
    # Profile weight of each action: purchase > save > click > view > 0 > hide.
    action_weights: dict[str, float] = field(default_factory=default_action_weights)
    # Where an event's weight comes from: its action ("action", through action_weights) or
    # the event itself ("event": the weight stored at ingest, e.g. from a rating). A hide
    # always counts as negative.
    weight_source: Literal["action", "event"] = "action"

    def __post_init__(self) -> None:
        if self.max_interests < 1:
            raise ValueError(f"max_interests must be at least 1, got {self.max_interests}")
        if self.max_items_per_interest < 1:
            raise ValueError(
                f"max_items_per_interest must be at least 1, got {self.max_items_per_interest}"
            )
        if self.recent_events < 1:
            raise ValueError(f"recent_events must be at least 1, got {self.recent_events}")
        if self.max_batch_items < 1:
            raise ValueError(f"max_batch_items must be at least 1, got {self.max_batch_items}")
        for name in ("join_threshold", "merge_threshold"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} is a cosine in [-1, 1], got {value}")
        if not (self.half_life_days > 0 and math.isfinite(self.half_life_days)):
            raise ValueError(f"half_life_days must be positive, got {self.half_life_days}")
        if self.weight_source not in ("action", "event"):
            raise ValueError(
                f"weight_source must be 'action' or 'event', not {self.weight_source!r}"
            )
        missing = [action for action in ACTIONS if action not in self.action_weights]
        if missing:
            raise ValueError(f"action_weights has no weight for {missing}; expected {ACTIONS}")
        for action in ACTIONS:
            weight = self.action_weights[action]
            if (weight >= 0) if action == "hide" else (weight <= 0):
                sign = "negative" if action == "hide" else "positive"
                raise ValueError(f"the weight of {action!r} must be {sign}, got {weight}")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ProfileConfig:
        """A config whose action weights are the settings' ones."""
        return cls(action_weights=dict(settings.action_weights), **overrides)

    @property
    def half_life_s(self) -> float:
        return self.half_life_days * DAY_S

    def decay(self, elapsed_s: float) -> float:
        """The factor an event's weight keeps after elapsed_s seconds."""
        return float(0.5 ** (elapsed_s / self.half_life_s))

    def event_weight(self, event: Event) -> float:
        """The weight of an event in a profile at the event's own time; negative for a hide."""
        if self.weight_source == "event":
            return -abs(event.weight) if event.action == "hide" else event.weight
        return self.action_weights[event.action]
