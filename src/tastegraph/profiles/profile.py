"""A user's profile: several interests, updated incrementally on each event."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastegraph.profiles.config import ProfileConfig
from tastegraph.profiles.interest import Interest
from tastegraph.store import Event

# Member ids handed to callers with each interest, for labels and explanations.
LABEL_ITEMS = 5


@dataclass(frozen=True)
class InterestQuery:
    """What retrieval needs from one interest."""

    medoid_id: str
    vector: np.ndarray  # (d,) float32, the medoid's embedding
    importance: float  # decayed to the time asked for
    item_ids: list[str]  # the heaviest members, heaviest first: inputs for a label


class UserProfile:
    """Interests (PinnerSage-style), hidden items and engaged items of one user.

    `update` costs O(k d + m d) for k interests of at most m members: a few tens of
    microseconds at k=8, m=20, d=256.
    """

    def __init__(self, user_id: str, config: ProfileConfig) -> None:
        self.user_id = user_id
        self.config = config
        self.interests: list[Interest] = []
        self.hidden: set[str] = set()  # items whose latest event is a hide
        self.engaged: dict[str, str] = {}  # item -> its strongest positive action so far
        self.positive_events = 0
        self.updated_at: float | None = None  # time of the latest event taken in
        # The latest positive events, oldest first: (item id, action, unix seconds).
        self.recent: list[tuple[str, str, float]] = []

    @property
    def dim(self) -> int | None:
        return int(self.interests[0].vectors.shape[1]) if self.interests else None

    @property
    def is_new(self) -> bool:
        """Too few events to rely on: callers start from popular items."""
        return self.positive_events < self.config.cold_start_events

    def update(self, event: Event, vector: np.ndarray) -> None:
        """Take in one event on an item whose L2-normalised embedding is vector (d,)."""
        if event.user_id != self.user_id:
            raise ValueError(f"event of user {event.user_id!r} given to {self.user_id!r}")
        if vector.ndim != 1 or (self.dim is not None and vector.shape[0] != self.dim):
            raise ValueError(f"expected a ({self.dim or 'd'},) vector, got {vector.shape}")
        weight = self.config.event_weight(event)
        self.updated_at = event.ts if self.updated_at is None else max(self.updated_at, event.ts)
        if weight > 0:
            self.positive_events += 1
            self.hidden.discard(event.item_id)
            self.note_engaged(event.item_id, event.action)
            self.note_recent(event)
            self._add(event.item_id, vector, weight, event.ts)
        elif weight < 0:
            if event.action == "hide":
                self.hidden.add(event.item_id)
            self._take_back(event.item_id, vector, weight, event.ts)

    def importances(self, now: float | None = None) -> list[float]:
        """Each interest's importance at now (default: the latest event), in list order."""
        at = self._now(now)
        return [interest.importance_at(at, self.config) for interest in self.interests]

    def interests_for_retrieval(self, now: float | None = None, n: int = 8) -> list[InterestQuery]:
        """The n most important interests at now, most important first."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        ranked = sorted(
            zip(self.importances(now), self.interests, strict=True), key=lambda p: -p[0]
        )
        out = []
        for importance, interest in ranked[:n]:
            heaviest = np.argsort(-interest.weights, kind="stable")[:LABEL_ITEMS]
            out.append(
                InterestQuery(
                    medoid_id=interest.medoid_id,
                    vector=interest.medoid.copy(),
                    importance=importance,
                    item_ids=[interest.item_ids[i] for i in heaviest],
                )
            )
        return out

    def enforce_cap(self, now: float) -> None:
        """Beyond max_interests: merge the two most similar interests if their medoids are
        at least merge_threshold alike, else drop the least important at now."""
        while len(self.interests) > self.config.max_interests:
            medoids = self._medoid_matrix()
            sims = medoids @ medoids.T  # (k, k)
            np.fill_diagonal(sims, -np.inf)
            i, j = divmod(int(np.argmax(sims)), len(self.interests))
            if sims[i, j] >= self.config.merge_threshold:
                merged = Interest.merged(self.interests[i], self.interests[j], self.config)
                self.interests = [x for r, x in enumerate(self.interests) if r not in (i, j)]
                self.interests.append(merged)
            else:
                del self.interests[int(np.argmin(self.importances(now)))]

    def _add(self, item_id: str, vector: np.ndarray, weight: float, ts: float) -> None:
        target = self._holding(item_id)
        if target is None and self.interests:
            sims = self._medoid_matrix() @ vector  # (k,)
            best = int(np.argmax(sims))
            if sims[best] >= self.config.join_threshold:
                target = self.interests[best]
        if target is None:
            self.interests.append(Interest.start(item_id, vector, weight, ts))
            self.enforce_cap(max(ts, self.updated_at or ts))
            return
        target.add(item_id, vector, weight, ts, self.config)

    def _take_back(self, item_id: str, vector: np.ndarray, weight: float, ts: float) -> None:
        """A member loses what it brought (and leaves at zero); a non-member penalises the
        nearest interest instead."""
        target = self._holding(item_id)
        if target is None:
            self.penalise_nearest(vector, weight, ts)
            return
        target.take_back(item_id, weight, ts, self.config)
        if target.empty:
            self.interests = [x for x in self.interests if x is not target]

    def penalise_nearest(self, vector: np.ndarray, weight: float, ts: float) -> None:
        """Negative feedback (weight < 0) on an item that is no member: the nearest interest,
        if within join_threshold, loses -weight times its similarity; at zero it goes."""
        if not self.interests:
            return
        sims = self._medoid_matrix() @ vector  # (k,)
        best = int(np.argmax(sims))
        if sims[best] < self.config.join_threshold:
            return
        target = self.interests[best]
        target.penalise(-weight * float(sims[best]), ts, self.config)
        if target.empty:
            del self.interests[best]

    def _holding(self, item_id: str) -> Interest | None:
        for interest in self.interests:
            if item_id in interest.item_ids:
                return interest
        return None

    def note_recent(self, event: Event) -> None:
        """Keep the latest `recent_events` positive events, in time order."""
        self.recent.append((event.item_id, event.action, event.ts))
        if len(self.recent) > 1 and self.recent[-1][2] < self.recent[-2][2]:
            self.recent.sort(key=lambda entry: entry[2])  # an event arrived late
        del self.recent[: -self.config.recent_events]

    def note_engaged(self, item_id: str, action: str) -> None:
        """Remember the strongest positive action on each item (for "already bought")."""
        weights = self.config.action_weights
        current = self.engaged.get(item_id)
        if current is None or weights[action] > weights[current]:
            self.engaged[item_id] = action

    def _medoid_matrix(self) -> np.ndarray:
        return np.stack([interest.medoid for interest in self.interests])  # (k, d) float32

    def _now(self, now: float | None) -> float:
        if now is not None:
            return now
        return self.updated_at if self.updated_at is not None else 0.0
