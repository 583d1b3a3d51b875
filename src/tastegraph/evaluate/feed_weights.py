"""How much popular items weigh in the home feed, fitted to the catalog's own log.

The feed sums its sources' scaled scores (interests, walks, popular items, the user's own
items: `recommend/ranking.py`). How much popularity should count differs by catalog: on
H&M 0.3 was tuned on validation; on a film-ratings log most next ratings go to the films
everyone rates, and a feed that leans on popularity does better. So the weight is fitted on
the log's last tenth of events (`TUNING_FRACTION`), with everything the feed uses (taste
graph, interests, profiles) rebuilt from the events before it, and each grid value scored
by NDCG@`FIT_K` on the next engagements of up to `MAX_USERS` users, as the evaluation
scores feeds (`evaluate/engagements.py`).

The default (the grid's first) is kept unless another value beats it by more than one
paired standard error (`Z`) and by 5% (`MIN_GAIN`), so noise does not move it. The item embeddings
are the published ones, trained on the whole log, tuning tenth included: their taste stage
has seen those weeks, which if anything favours the interest and walk sources over
popularity.

`tastegraph train feed` publishes the fitted weight (artifact "feed"); the server and the
CLI read it (`recommend/assemble.py`); `TASTEGRAPH_POPULAR_WEIGHT` wins over it. The
offline evaluation fits it the same way on its training events, so what it measures is what
is served.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from tastegraph import registry
from tastegraph.config import Settings
from tastegraph.evaluate.baselines import TrainingLog
from tastegraph.evaluate.engagements import (
    POSITIVE_WEIGHT,
    FeedRows,
    engaged_before,
    excludes_engaged,
    next_engagements,
    ranked_rows,
    ranking_metrics,
)
from tastegraph.evaluate.split import share_cutoff
from tastegraph.graph.graph import GraphConfig
from tastegraph.graph.job import build_taste
from tastegraph.graph.taste import ItemDetails, item_details
from tastegraph.index import ItemIndex, open_index
from tastegraph.profiles import ProfileConfig
from tastegraph.profiles.batch import build_profiles
from tastegraph.recommend import Filters, RecommendConfig, Recommender
from tastegraph.recommend.assemble import assemble
from tastegraph.store import Event, Store

log = logging.getLogger(__name__)

POPULAR_WEIGHTS = (0.3, 0.1, 1.0, 3.0, 10.0)  # the first is RecommendConfig's default
TUNING_FRACTION = 0.1
FIT_K = 12
MAX_USERS = 2000  # users scored per grid value: the fit's cost does not grow with the log
# Another value must beat the default by more than this many paired standard errors: the
# one-standard-error rule of model selection, with the default in the simple model's place.
Z = 1.0
# ... and by this share of the default's NDCG: where hits are rare (H&M: a few users in a
# thousand differ), a gain of 1% can pass one standard error and still mean nothing.
MIN_GAIN = 0.05


@dataclass(frozen=True)
class FeedFit:
    popular_weight: float  # the chosen value
    grid: list[float]
    ndcg: list[float]  # mean NDCG@FIT_K of each grid value, in order
    users: int  # users scored
    cutoff: float  # unix seconds: the tuning tenth starts here

    def summary(self) -> str:
        scores = ", ".join(f"{w:g}: {s:.4f}" for w, s in zip(self.grid, self.ndcg, strict=True))
        return (
            f"popular weight {self.popular_weight:g} (NDCG@{FIT_K} of {scores}; "
            f"{self.users:,} users)"
        )


def served_feed(
    recommender: Recommender, rows_of: Mapping[str, int], exclude: bool, explore: float = 0.0
) -> FeedRows:
    """The home feed as item rows, as the server builds it for a request with this
    `explore` dial (measured at 0: the ranking alone; `exclude`: without the items the user
    engaged with)."""
    filters = Filters(exclude_engaged=exclude)

    def feed(user_id: str, n: int) -> np.ndarray:
        answers = recommender.feed(user_id, n, explore=explore, filters=filters)
        return np.array([rows_of[a.item_id] for a in answers], dtype=np.int64)

    return feed


@dataclass(frozen=True)
class ServedAs:
    """How the served feed is built, so the fit scores that feed: buy-again (None: decided
    from the log, `recommend/behaviour.py`), the graph's action weights, the profiles."""

    exclude_engaged: bool | None = None
    repeat_weight: float | None = None
    graph: GraphConfig | None = None
    profiles: ProfileConfig | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ServedAs:
        # An explicit repeat weight keeps engaged items in the feed (recommend/behaviour.py).
        return cls(
            exclude_engaged=False if settings.repeat_weight is not None else None,
            repeat_weight=settings.repeat_weight,
            graph=GraphConfig(action_weights=dict(settings.action_weights)),
            profiles=ProfileConfig.from_settings(settings),
        )


def fit_popular_weight(
    index: ItemIndex,
    events: Sequence[Event],
    details: dict[str, ItemDetails],
    config: RecommendConfig | None = None,
    served: ServedAs | None = None,
    *,
    seed: int = 0,
) -> FeedFit | None:
    """The popular-item weight that best foresees the log's last tenth from the events
    before it, for the feed built as `served` says; None where the log is too short or that
    tenth holds no user with a positive to foresee."""
    config, served = config or RecommendConfig(), served or ServedAs()
    if not events:
        return None
    cutoff = share_cutoff(events, TUNING_FRACTION)
    past = [e for e in events if e.ts < cutoff]
    if not past:
        return None
    rows_of = {item_id: row for row, item_id in enumerate(index.ids)}
    exclude = excludes_engaged(past, served.exclude_engaged)
    leave_out = engaged_before(TrainingLog.build(past, rows_of, cutoff)) if exclude else None
    targets = next_engagements(
        [e for e in events if e.ts >= cutoff], rows_of, POSITIVE_WEIGHT, leave_out
    )
    if not targets.users:
        return None
    chosen = sorted(np.random.default_rng(seed).permutation(len(targets.users))[:MAX_USERS])
    users = [targets.users[i] for i in chosen]
    relevant = [targets.relevant[i] for i in chosen]
    vectors = index.index.reconstruct_n(0, len(index))
    taste = build_taste(past, index.ids, vectors, details, now=cutoff, graph_config=served.graph)
    profiles = build_profiles(past, index, served.profiles)
    per_user = []
    before: Recommender | None = None
    for weight in POPULAR_WEIGHTS:
        recommender = assemble(
            index,
            taste,
            profiles,
            details,
            replace(config, popular_weight=weight),
            repeat_weight=0.0 if exclude else served.repeat_weight,
        )
        if before is not None:  # same graph and index: the walks found so far still hold
            recommender.take_over_caches(before, nearest=True)
        before = recommender
        feed = served_feed(recommender, rows_of, exclude)
        ranked = ranked_rows(feed, users, FIT_K, len(index), leave_out)
        per_user.append(ranking_metrics(ranked, relevant, FIT_K)[f"NDCG@{FIT_K}"])
    fit = FeedFit(
        POPULAR_WEIGHTS[_best(np.array(per_user))],
        list(POPULAR_WEIGHTS),
        [float(scores.mean()) for scores in per_user],
        len(users),
        cutoff,
    )
    log.info("feed fitted on the log's last tenth: %s", fit.summary())
    return fit


def _best(scores: np.ndarray) -> int:
    """The grid value (row of `scores`, (G, U) per user) with the best mean, where it beats
    the default (row 0) by more than Z paired standard errors and by MIN_GAIN; else the
    default."""
    means = scores.mean(axis=1)
    best = int(np.argmax(means))
    gain = scores[best] - scores[0]
    spread = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else np.inf
    clear = gain.mean() > Z * spread and means[best] >= (1.0 + MIN_GAIN) * means[0]
    return best if clear else 0


def train_and_publish(store: Store, settings: Settings) -> tuple[FeedFit | None, Path | None]:
    """Fit the popular weight over the current index, for the feed these settings serve,
    and publish it (None, None where the log has nothing to learn from)."""
    index = open_index(settings.workdir)
    fit = fit_popular_weight(
        index,
        list(store.iter_events()),
        item_details(store, settings.variant_attribute),
        served=ServedAs.from_settings(settings),
    )
    if fit is None:
        return None, None
    content = asdict(fit) | {"index_version": index.version, "fit_k": FIT_K}

    def write(folder: Path) -> None:
        registry.write_manifest(folder, "feed", content)

    return fit, registry.publish(settings.workdir, "feed", write)
