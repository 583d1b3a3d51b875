"""Classical baselines for the offline evaluation: what a learned model has to beat.

Two interfaces, one per task:
- next purchase: `recommend(user_id, n)` gives up to n distinct item rows, best first;
- basket completion (item to item): `score(rows)` gives a (Q, N) score matrix, higher better.
`BaselineRecommender` puts a pair of them behind the recommender's own interface
(`ItemRecommender`: feed and related items, with filters), so the contract tests hold
baselines to the same promises as ours; the evaluation asks every method's feed the same
way through `evaluate/engagements.ranked_rows`.

Items are rows 0..N-1 of an index chosen by the caller. Every baseline is fitted only on the
events the caller passes, all of them before the cut-off `now`: `TrainingLog.build` refuses
a later one, so a leak from the test period fails loudly instead of flattering a baseline.
The defaults below are library-typical values; popularity, item-kNN, ALS and EASE are tuned
inside the training period by `evaluate/tuning.py`, never on the test period.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from tastegraph.evaluate.metrics import top_k
from tastegraph.index import ItemIndex
from tastegraph.recommend import Filters, Recommendation
from tastegraph.recommend.items import check_n, passing
from tastegraph.store import Event

logger = logging.getLogger(__name__)

DAY = 24 * 3600.0


class NextPurchase(Protocol):
    def recommend(self, user_id: str, n: int) -> np.ndarray: ...


class ItemToItem(Protocol):
    def score(self, rows: np.ndarray) -> np.ndarray: ...


def decay(ts: np.ndarray, now: float, half_life_days: float) -> np.ndarray:
    """Weight 0.5 ** (age / half-life) of events at times ts seen from `now`."""
    weights: np.ndarray = 0.5 ** ((now - np.asarray(ts, dtype=np.float64)) / (half_life_days * DAY))
    return weights


def fill(primary: Sequence[int], fallback: np.ndarray, n: int) -> np.ndarray:
    """The first n distinct rows of `primary`, then of `fallback`, order kept (int64).
    Negative rows (padding) are skipped."""
    out = list(dict.fromkeys(int(row) for row in primary if row >= 0))[:n]
    if len(out) < n:
        seen = set(out)
        for row in np.asarray(fallback).tolist():
            if row >= 0 and row not in seen:
                out.append(row)
                seen.add(row)
                if len(out) == n:
                    break
    return np.array(out, dtype=np.int64)


def first_allowed(
    recommend: Callable[[str, int], np.ndarray], user_id: str, n: int, allowed: np.ndarray
) -> list[int]:
    """The first n rows of `recommend(user_id, ...)` that `allowed` (N,) bool lets through,
    asking for more while it drops some."""
    asked = n
    while True:
        rows = [int(row) for row in recommend(user_id, asked) if allowed[row]]
        if len(rows) >= n or asked >= len(allowed):
            return rows[:n]
        asked = min(4 * asked, len(allowed))


@dataclass
class TrainingLog:
    """The positive training events, as item rows, grouped the ways the baselines need."""

    history: dict[str, list[tuple[int, float]]]  # user -> (row, ts), oldest first
    baskets: dict[str, set[int]]  # collection id -> rows of the positive events in it
    n_items: int  # N: rows are 0..N-1
    now: float  # the cut-off, unix seconds: every event is before it
    item_ids: list[str | None]  # the item of each row (None: a row no item has)

    @classmethod
    def build(cls, events: Iterable[Event], index: dict[str, int], now: float) -> TrainingLog:
        """Keep positive events (not "hide") on indexed items; raise ValueError on an event
        at or after `now`, which would leak the test period into training."""
        history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        baskets: dict[str, set[int]] = defaultdict(set)
        for event in events:
            if event.ts >= now:
                raise ValueError(
                    f"event {event.event_id} at ts {event.ts} is not before the cut-off {now}; "
                    "pass only training events"
                )
            row = index.get(event.item_id)
            if row is None or event.action == "hide":
                continue
            history[event.user_id].append((row, event.ts))
            if event.collection_id:
                baskets[event.collection_id].add(row)
        for items in history.values():
            items.sort(key=lambda pair: pair[1])  # stable: same-time events keep their order
        n_items = max(index.values()) + 1 if index else 0
        item_ids: list[str | None] = [None] * n_items
        for item_id, row in index.items():
            item_ids[row] = item_id
        return cls(dict(history), dict(baskets), n_items, now, item_ids)

    def flat(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Users in order, and per event: user code, item row and ts (for vectorised fits)."""
        users = list(self.history)
        codes = np.repeat(np.arange(len(users)), [len(h) for h in self.history.values()])
        pairs = [pair for h in self.history.values() for pair in h]
        rows = np.array([row for row, _ in pairs], dtype=np.int64)
        ts = np.array([t for _, t in pairs], dtype=np.float64)
        return users, codes, rows, ts

    def recent_first(self, user_id: str) -> tuple[np.ndarray, np.ndarray]:
        """A user's (rows, ts) most recent first; empty for an unknown user."""
        pairs = self.history.get(user_id, [])[::-1]
        rows = np.array([row for row, _ in pairs], dtype=np.int64)
        return rows, np.array([t for _, t in pairs], dtype=np.float64)


class Popularity:
    """Time-decayed popularity, the same list for everyone: fashion sells in waves, so last
    week's sales predict next week's far better than all-time counts."""

    def __init__(self, log: TrainingLog, half_life_days: float = 7.0) -> None:
        _, _, rows, ts = log.flat()
        self.scores = np.bincount(
            rows, weights=decay(ts, log.now, half_life_days), minlength=log.n_items
        )
        self.ranking = np.argsort(-self.scores, kind="stable").astype(np.int64)  # every row

    def recommend(self, user_id: str, n: int) -> np.ndarray:
        return self.ranking[:n].copy()

    def score(self, rows: np.ndarray) -> np.ndarray:
        """The same popularity row for every query (the item-to-item floor)."""
        return np.tile(self.scores.astype(np.float32), (len(rows), 1))


class RepurchasePopularity:
    """The user's own past items, most recent first, then popular items: repurchase is the
    strongest single next-purchase signal in H&M data."""

    def __init__(self, log: TrainingLog, popularity: Popularity | None = None) -> None:
        self.log = log
        self.popularity = popularity if popularity is not None else Popularity(log)

    def recommend(self, user_id: str, n: int) -> np.ndarray:
        rows, _ = self.log.recent_first(user_id)
        return fill(rows.tolist(), self.popularity.ranking, n)


class CoVisitation:
    """Item-item co-visitation counts: pairs of distinct items in one basket (collection),
    and pairs one user had within `session_window_s` of each other (strictly less). A pair
    that is both counts for both, so bought together weighs more than seen close in time."""

    def __init__(
        self,
        log: TrainingLog,
        session_window_s: float = 3600 * 24,
        half_life_days: float = 30.0,  # recency of the user's own items in `recommend`
        basket_weight: float = 1.0,
        session_weight: float = 1.0,
        popularity: Popularity | None = None,
    ) -> None:
        self.log = log
        self.half_life_days = half_life_days
        self.popularity = popularity if popularity is not None else Popularity(log)
        self.popularity_rank = np.empty(log.n_items, dtype=np.int64)  # tie-break in recommend
        self.popularity_rank[self.popularity.ranking] = np.arange(log.n_items)
        a_parts, b_parts, w_parts = [], [], []

        def add(rows: np.ndarray, together: np.ndarray, weight: float) -> None:
            a, b = np.nonzero(together & (rows[:, None] != rows[None, :]))
            a_parts.append(rows[a])
            b_parts.append(rows[b])
            w_parts.append(np.full(len(a), weight))

        for members in log.baskets.values():
            rows = np.fromiter(members, dtype=np.int64)
            add(rows, np.ones((len(rows), len(rows)), dtype=bool), basket_weight)
        for pairs in log.history.values():
            unique = sorted(set(pairs), key=lambda pair: pair[1])  # two of one item: once
            rows = np.array([row for row, _ in unique], dtype=np.int64)
            ts = np.array([t for _, t in unique], dtype=np.float64)
            add(rows, np.abs(ts[:, None] - ts[None, :]) < session_window_s, session_weight)
        empty = [np.zeros(0, dtype=np.int64)]
        a_all, b_all = np.concatenate(a_parts + empty), np.concatenate(b_parts + empty)
        w_all = np.concatenate([*w_parts, np.zeros(0)])
        shape = (log.n_items, log.n_items)
        # coo -> csr sums the duplicate pairs into counts
        self.matrix = sparse.coo_matrix((w_all, (a_all, b_all)), shape=shape).tocsr()
        logger.info("co-visitation: %d item pairs over %d items", self.matrix.nnz, log.n_items)

    def score(self, rows: np.ndarray) -> np.ndarray:
        """(Q, N) co-visitation counts of each query row with every item."""
        dense: np.ndarray = self.matrix[np.asarray(rows)].toarray().astype(np.float32)
        return dense

    def recommend(self, user_id: str, n: int) -> np.ndarray:
        """Sum of the co-visitation rows of the user's items, each weighted by its recency
        (relative to the user's latest event, which keeps the ranking and avoids underflow);
        ties go to the more popular item; nothing is excluded; popularity fills the rest."""
        rows, ts = self.log.recent_first(user_id)
        if len(rows) == 0:
            return self.popularity.recommend(user_id, n)
        weights = decay(ts, float(ts.max()), self.half_life_days)
        scores = np.asarray(self.matrix[rows].T @ weights).ravel()
        candidates = np.flatnonzero(scores > 0)
        order = np.lexsort((self.popularity_rank[candidates], -scores[candidates]))
        return fill(candidates[order][:n].tolist(), self.popularity.ranking, n)


class ItemKNN:
    """Item-based kNN (Deshpande and Karypis 2004): the cosine similarity of items' columns
    in the binary user x item matrix, each item keeping its `neighbours` most similar items;
    a user's score for an item is the sum of its similarities to the user's items. Ties go
    to the more popular item; popularity fills the rest; nothing is excluded."""

    def __init__(
        self, log: TrainingLog, neighbours: int = 100, popularity: Popularity | None = None
    ) -> None:
        self.popularity = popularity if popularity is not None else Popularity(log)
        self.popularity_rank = np.empty(log.n_items, dtype=np.int64)
        self.popularity_rank[self.popularity.ranking] = np.arange(log.n_items)
        users, codes, rows, _ = log.flat()
        self.user_code = {user: code for code, user in enumerate(users)}
        ones = np.ones(len(rows), dtype=np.float32)
        engaged = sparse.csr_matrix((ones, (codes, rows)), shape=(len(users), log.n_items))
        engaged.data[:] = 1.0  # engaged at all, however often
        self.user_items = engaged
        scale = sparse.diags(1.0 / np.sqrt(np.maximum(engaged.sum(axis=0).A1, 1.0)))
        similarity = (scale @ (engaged.T @ engaged) @ scale).tocsr()
        similarity.setdiag(0.0)
        similarity.eliminate_zeros()
        self.similarity = _keep_largest(similarity, neighbours)

    def recommend(self, user_id: str, n: int) -> np.ndarray:
        code = self.user_code.get(user_id)
        if code is None:
            return self.popularity.recommend(user_id, n)
        scores = np.asarray((self.user_items[code] @ self.similarity).todense()).ravel()
        candidates = np.flatnonzero(scores > 0)
        order = np.lexsort((self.popularity_rank[candidates], -scores[candidates]))
        return fill(candidates[order][:n].tolist(), self.popularity.ranking, n)


def _keep_largest(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Each row's k largest entries (CSR in, CSR out)."""
    data, indices, indptr = matrix.data, matrix.indices, matrix.indptr
    keep = np.zeros(len(data), dtype=bool)
    for row in range(matrix.shape[0]):
        start, end = indptr[row], indptr[row + 1]
        if end - start <= k:
            keep[start:end] = True
        else:
            keep[start + np.argpartition(-data[start:end], k)[:k]] = True
    row_of = np.repeat(np.arange(matrix.shape[0]), np.diff(indptr))
    return sparse.csr_matrix(
        (data[keep], (row_of[keep], indices[keep])), shape=matrix.shape, dtype=np.float32
    )


class ALS:
    """Implicit-feedback matrix factorisation (implicit's CPU ALS, Hu et al. 2008) on the
    user x item matrix of purchase counts (confidence 1 + alpha * count). Counts rather
    than decayed weights, so an older customer's taste still counts; recency is the other
    baselines' job. The defaults are library-typical values (`evaluate/tuning.py` tunes
    them); one thread and a fixed seed keep runs reproducible."""

    def __init__(
        self,
        log: TrainingLog,
        factors: int = 64,
        regularization: float = 0.05,
        iterations: int = 15,
        alpha: float = 40.0,
        seed: int = 0,
        popularity: Popularity | None = None,
    ) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        self.popularity = popularity if popularity is not None else Popularity(log)
        users, codes, rows, _ = log.flat()
        self.user_code = {user: code for code, user in enumerate(users)}
        self.n_items = log.n_items
        counts = np.ones(len(rows), dtype=np.float32)
        shape = (len(users), log.n_items)
        self.user_items = sparse.csr_matrix((counts, (codes, rows)), shape=shape)
        # implicit warns, and runs slowly, with multithreaded BLAS; it checks on construction
        with threadpool_limits(1, "blas"):
            self.model = AlternatingLeastSquares(
                factors=factors,
                regularization=regularization,
                alpha=alpha,
                iterations=iterations,
                num_threads=1,
                random_state=seed,
            )
            self.model.fit(self.user_items, show_progress=False)

    def recommend(self, user_id: str, n: int) -> np.ndarray:
        code = self.user_code.get(user_id)
        if code is None:
            return self.popularity.recommend(user_id, n)
        ids, _ = self.model.recommend(
            code,
            self.user_items[code],
            N=min(n, self.n_items),
            filter_already_liked_items=False,
        )
        return fill(np.asarray(ids).tolist(), self.popularity.ranking, n)


class EASE:
    """EASE (Steck 2019): item-item weights in closed form, a ridge regression of each item
    on all the others (its own weight held at 0), over the binary user x item matrix; a
    user's scores are their items' rows of weights summed. It needs the inverse of an
    (A, A) matrix over the A items bought in training, so catalogs with more than
    MAX_ITEMS such items are refused (`fits`). The default regularisation is a typical
    value (`evaluate/tuning.py` tunes it)."""

    MAX_ITEMS = 20_000

    @classmethod
    def fits(cls, log: TrainingLog) -> bool:
        return len({row for history in log.history.values() for row, _ in history}) <= (
            cls.MAX_ITEMS
        )

    def __init__(
        self, log: TrainingLog, regularization: float = 500.0, popularity: Popularity | None = None
    ) -> None:
        self.popularity = popularity if popularity is not None else Popularity(log)
        users, codes, rows, _ = log.flat()
        self.active, columns = np.unique(rows, return_inverse=True)  # (A,) rows bought
        if len(self.active) > self.MAX_ITEMS:
            raise ValueError(
                f"EASE needs at most {self.MAX_ITEMS} items bought, not {len(self.active)}"
            )
        self.user_code = {user: code for code, user in enumerate(users)}
        shape = (len(users), len(self.active))
        ones = np.ones(len(rows), dtype=np.float64)
        bought = sparse.csr_matrix((ones, (codes, columns)), shape=shape)
        bought.data[:] = 1.0  # bought at all, however often
        self.user_items = bought
        gram = (bought.T @ bought).toarray()
        gram[np.diag_indices_from(gram)] += regularization
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights.astype(np.float32)
        logger.info("EASE: %d items bought by %d users", len(self.active), len(users))

    def recommend(self, user_id: str, n: int) -> np.ndarray:
        """The best-scored items bought in training (ties to the more popular), then
        popularity; nothing is excluded."""
        code = self.user_code.get(user_id)
        if code is None:
            return self.popularity.recommend(user_id, n)
        scores = np.asarray(self.user_items[code] @ self.weights).ravel()
        best = top_k(scores[None, :], min(n, len(scores)))[0]
        return fill(self.active[best[scores[best] > 0]].tolist(), self.popularity.ranking, n)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zeros rows (no vector) stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit


def cosine_scorer(vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Item-to-item cosine on (N, D) vectors; an item whose vector is all zeros scores 0."""
    unit = unit_rows(vectors)

    def score(rows: np.ndarray) -> np.ndarray:
        scores: np.ndarray = unit[np.asarray(rows)] @ unit.T
        return scores

    return score


def same_product_then_cosine(
    variant_of: Sequence[str | None], vectors: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Other variants of the query's product first (items of no known product match
    none), then everything by cosine."""
    codes = {product: code for code, product in enumerate(dict.fromkeys(variant_of))}
    product = np.array([codes[p] if p is not None else -1 for p in variant_of])
    cosine = cosine_scorer(vectors)

    def score(rows: np.ndarray) -> np.ndarray:
        same = (product[rows][:, None] == product[None, :]) & (product[rows][:, None] >= 0)
        scores: np.ndarray = cosine(rows) + 2.0 * same  # cosine <= 1: variants come first
        return scores

    return score


class ContentKNN:
    """Items nearest (cosine) to a taste profile: the recency-weighted mean of the unit
    vectors of the user's `recent` latest events. It tests whether the vectors alone,
    without any co-purchase signal, predict what a customer buys next. Nothing is
    excluded, so the user's own items tend to come first."""

    def __init__(
        self,
        log: TrainingLog,
        vectors: np.ndarray,
        recent: int = 10,
        half_life_days: float = 30.0,
        popularity: Popularity | None = None,
    ) -> None:
        if len(vectors) != log.n_items:
            raise ValueError(f"need one vector per item row: {log.n_items}, got {len(vectors)}")
        self.log = log
        self.unit = unit_rows(vectors)
        self.recent = recent
        self.half_life_days = half_life_days
        self.popularity = popularity if popularity is not None else Popularity(log)

    def recommend(self, user_id: str, n: int) -> np.ndarray:
        rows, ts = self.log.recent_first(user_id)
        rows, ts = rows[: self.recent], ts[: self.recent]
        profile = np.zeros(self.unit.shape[1], dtype=np.float32)
        if len(rows):
            weights = decay(ts, float(ts.max()), self.half_life_days).astype(np.float32)
            profile = weights @ self.unit[rows]
        if not profile.any():  # unknown user, or none of their items has a vector
            return self.popularity.recommend(user_id, n)
        best = top_k((self.unit @ profile)[None, :], min(n, self.log.n_items))[0]
        return fill(best.tolist(), self.popularity.ranking, n)


class BaselineRecommender:
    """A next-purchase baseline's `recommend` and an item-to-item one's `score` as an
    `ItemRecommender` over `index`, whose rows are the baselines' rows. Filters and hidden
    items (taken in by `record`) hold as they do for ours; the baselines learn nothing
    online."""

    def __init__(
        self,
        name: str,
        index: ItemIndex,
        log: TrainingLog,
        recommend: Callable[[str, int], np.ndarray],
        score: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        if list(index.ids) != log.item_ids:
            raise ValueError("the index must hold the log's items in the log's row order")
        self.name = name
        self.index = index
        self.log = log
        self.recommend = recommend
        self.score = score
        self.hidden: dict[str, set[int]] = defaultdict(set)

    def feed(
        self,
        user_id: str,
        n: int = 12,
        *,
        explore: float | None = None,  # baselines do not explore
        filters: Filters | None = None,
    ) -> list[Recommendation]:
        """The baseline's n best allowed rows, asking it for more while filters drop some."""
        check_n(n)
        allowed = self._allowed(filters or Filters(), user_id)
        return [self._answer(r, 0.0) for r in first_allowed(self.recommend, user_id, n, allowed)]

    def related(
        self, item_id: str, n: int = 12, *, filters: Filters | None = None
    ) -> list[Recommendation]:
        check_n(n)
        query = self.index.row(item_id)
        scores = self.score(np.array([query]))[0].astype(np.float64)
        scores[~self._allowed(filters or Filters(), None)] = -np.inf
        scores[query] = -np.inf
        top = np.argsort(-scores, kind="stable")[:n]
        return [self._answer(int(row), float(scores[row])) for row in top if scores[row] > -np.inf]

    def record(self, event: Event) -> bool:
        """Take a "hide" in: the item never comes back to that user."""
        if event.action != "hide" or event.item_id not in self.index:
            return False
        self.hidden[event.user_id].add(self.index.row(event.item_id))
        return True

    def _allowed(self, filters: Filters, user_id: str | None) -> np.ndarray:
        allowed = passing(self.index, filters)
        if user_id is not None:
            allowed[list(self.hidden.get(user_id, ()))] = False
            if filters.exclude_engaged:
                allowed[[row for row, _ in self.log.history.get(user_id, [])]] = False
        return allowed

    def _answer(self, row: int, score: float) -> Recommendation:
        return Recommendation(self.index.ids[row], score, self.name, f"Chosen by {self.name}", "")
