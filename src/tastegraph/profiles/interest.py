"""One interest of a user: a cluster of engaged items, represented by its weighted medoid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastegraph.profiles.config import ProfileConfig


def weighted_medoid(weights: np.ndarray, vectors: np.ndarray) -> int:
    """The row of the member with the least weighted cosine distance to all members.

    For unit vectors sum_j w_j (1 - v_i . v_j) = sum_j w_j - v_i . (sum_j w_j v_j), so the
    medoid is the member closest to the weighted sum: O(m d), exact, no pairwise matrix.
    """
    centre = (weights @ vectors).astype(np.float32)  # (d,)
    return int(np.argmax(vectors @ centre))


@dataclass(eq=False)
class Interest:
    """Members and importance are decayed to last_update; see importance_at for other times."""

    item_ids: list[str]  # the kept members, at most config.max_items_per_interest
    weights: np.ndarray  # (m,) float64, each member's summed decayed weight
    vectors: np.ndarray  # (m, d) float32, each member's L2-normalised embedding
    importance: float  # summed decayed weight of every event the interest took in
    last_update: float  # unix seconds of the last event that changed the interest
    medoid_index: int = 0  # the medoid's row among the members

    @classmethod
    def start(cls, item_id: str, vector: np.ndarray, weight: float, ts: float) -> Interest:
        vectors = np.array(vector, dtype=np.float32).reshape(1, -1)
        return cls([item_id], np.array([weight]), vectors, weight, ts)

    @property
    def medoid_id(self) -> str:
        return self.item_ids[self.medoid_index]

    @property
    def medoid(self) -> np.ndarray:
        row: np.ndarray = self.vectors[self.medoid_index]  # (d,)
        return row

    def importance_at(self, now: float, config: ProfileConfig) -> float:
        return self.importance * config.decay(now - self.last_update)

    def decay_to(self, ts: float, config: ProfileConfig) -> None:
        """Move the reference time forward to ts (never backward)."""
        if ts > self.last_update:
            factor = config.decay(ts - self.last_update)
            self.weights = self.weights * factor
            self.importance *= factor
            self.last_update = ts

    def add(
        self, item_id: str, vector: np.ndarray, weight: float, ts: float, config: ProfileConfig
    ) -> None:
        """Take in a positive event at time ts (which may be older than last_update)."""
        self.decay_to(ts, config)
        weight *= config.decay(self.last_update - ts)
        self.importance += weight
        if item_id in self.item_ids:
            self.weights[self.item_ids.index(item_id)] += weight
        else:
            self.item_ids.append(item_id)
            self.weights = np.append(self.weights, weight)
            self.vectors = np.vstack([self.vectors, np.asarray(vector, dtype=np.float32)])
        self._keep_heaviest(config.max_items_per_interest)

    def take_back(self, item_id: str, weight: float, ts: float, config: ProfileConfig) -> None:
        """A negative event on a member: lower the member, and the importance by as much as
        the member loses; a member at or below zero leaves."""
        self.decay_to(ts, config)
        row = self.item_ids.index(item_id)
        loss = min(float(self.weights[row]), -weight * config.decay(self.last_update - ts))
        self.weights[row] -= loss
        self.importance = max(self.importance - loss, 0.0)
        if self.weights[row] <= 0:
            self._remove(row)
        elif len(self.item_ids) > 1:
            self.medoid_index = weighted_medoid(self.weights, self.vectors)

    def penalise(self, amount: float, ts: float, config: ProfileConfig) -> None:
        """Lower the importance by amount (> 0), counted at time ts."""
        self.decay_to(ts, config)
        self.importance = max(self.importance - amount * config.decay(self.last_update - ts), 0.0)

    @property
    def empty(self) -> bool:
        return not self.item_ids or self.importance <= 0.0

    @classmethod
    def merged(cls, a: Interest, b: Interest, config: ProfileConfig) -> Interest:
        """One interest holding both: members pooled (the heaviest kept), importance summed."""
        ts = max(a.last_update, b.last_update)
        a.decay_to(ts, config)
        b.decay_to(ts, config)
        out = cls(list(a.item_ids), a.weights.copy(), a.vectors, a.importance + b.importance, ts)
        new_rows = []
        for row, item_id in enumerate(b.item_ids):
            if item_id in out.item_ids:
                out.weights[out.item_ids.index(item_id)] += b.weights[row]
            else:
                out.item_ids.append(item_id)
                new_rows.append(row)
        out.weights = np.concatenate([out.weights, b.weights[new_rows]])
        out.vectors = np.vstack([a.vectors, b.vectors[new_rows]])
        out._keep_heaviest(config.max_items_per_interest)
        return out

    def _keep_heaviest(self, limit: int) -> None:
        while len(self.item_ids) > limit:
            self._remove(int(np.argmin(self.weights)), refresh=False)
        self.medoid_index = weighted_medoid(self.weights, self.vectors)

    def _remove(self, row: int, *, refresh: bool = True) -> None:
        del self.item_ids[row]
        self.weights = np.delete(self.weights, row)
        self.vectors = np.delete(self.vectors, row, axis=0)
        if refresh and self.item_ids:
            self.medoid_index = weighted_medoid(self.weights, self.vectors)
