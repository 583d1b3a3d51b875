"""Baselines tuned inside the training period, never on the split they are reported on.

Each tuned baseline has a small grid (`GRIDS`). Every setting is fitted on the training
events before the tuning cut-off (`SplitConfig.tuning`: the test split's rule applied to
the training events alone) and scored by NDCG@k on the next engagements of the tuning
split, with the same positives and exclusions as the reported split. The best setting (the
first of equals) is then refitted on all training events. Each grid starts with the
baseline's default (popularity 7 days, item-kNN 100 neighbours, ALS 64 factors at 0.05, EASE
500), kept where there is nothing to tune on and on ties. A baseline that cannot be fitted
on a catalog (EASE beyond its item limit) is left out, with a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tastegraph.evaluate import baselines as base
from tastegraph.evaluate.engagements import (
    FeedRows,
    Targets,
    engaged_before,
    next_engagements,
    ranked_rows,
    ranking_metrics,
)
from tastegraph.evaluate.split import SplitConfig
from tastegraph.store import Event

logger = logging.getLogger(__name__)

POPULARITY = "time-decayed popularity"
ITEM_KNN = "item-kNN (cosine)"
ALS = "implicit ALS"
EASE = "EASE"

Params = dict[str, Any]

GRIDS: dict[str, list[Params]] = {  # each grid's first setting is the baseline's default
    POPULARITY: [{"half_life_days": days} for days in (7.0, 1.0, 30.0, 365.0)],
    ITEM_KNN: [{"neighbours": k} for k in (100, 20, 500)],
    ALS: [
        {"factors": factors, "regularization": regularization}
        for factors, regularization in (
            (64, 0.05),
            (32, 0.01),
            (32, 0.05),
            (64, 0.01),
            (128, 0.01),
            (128, 0.05),
        )
    ],
    EASE: [{"regularization": value} for value in (500.0, 50.0, 2000.0)],
}


def fit(name: str, log: base.TrainingLog, params: Params, popularity: base.Popularity) -> FeedRows:
    """A tuned baseline's feed, fitted on `log`; the others fall back on `popularity`."""
    if name == POPULARITY:
        return base.Popularity(log, **params).recommend
    if name == ITEM_KNN:
        return base.ItemKNN(log, popularity=popularity, **params).recommend
    if name == ALS:
        return base.ALS(log, popularity=popularity, **params).recommend
    if name == EASE:
        return base.EASE(log, popularity=popularity, **params).recommend
    raise ValueError(f"no tuned baseline called {name!r}; expected one of {list(GRIDS)}")


def fits(name: str, log: base.TrainingLog) -> bool:
    return name != EASE or base.EASE.fits(log)


@dataclass
class Tuned:
    params: Params  # the chosen setting
    scores: list[float] = field(default_factory=list)  # mean NDCG@k per grid setting, in order


def tune_baselines(
    train: Sequence[Event],
    index: Mapping[str, int],
    tuning: SplitConfig,
    k: int,
    threshold: float,
    exclude: bool,
) -> dict[str, Tuned]:
    """The best setting of each baseline in GRIDS on the `tuning` split inside `train` (the
    events before the reported split's cut-off; `SplitConfig.tuning` places it). A baseline
    that cannot be fitted there is left out; with no tuning events or no positives among
    them, each keeps its default (its grid's first)."""
    inner, held = tuning.partition(train)
    if not inner:
        logger.info("no events before the tuning cut-off: baselines keep their defaults")
        return {name: Tuned(grid[0]) for name, grid in GRIDS.items()}
    logbook = base.TrainingLog.build(inner, dict(index), tuning.cutoff)
    leave_out = engaged_before(logbook) if exclude else None
    targets = next_engagements(held, index, threshold, leave_out)
    chosen: dict[str, Tuned] = {}
    popularity = base.Popularity(logbook)
    for name, grid in GRIDS.items():
        if not fits(name, logbook):
            logger.info("%s left out: it cannot be fitted on this catalog", name)
            continue
        if not targets.users:
            chosen[name] = Tuned(grid[0])
            continue
        scores = [
            _mean_ndcg(fit(name, logbook, params, popularity), targets, k, logbook, leave_out)
            for params in grid
        ]
        best = int(np.argmax(scores))
        chosen[name] = Tuned(grid[best], scores)
        logger.info(
            "%s tuned: %s (NDCG@%d %.4f on %d tuning users)",
            name,
            grid[best],
            k,
            scores[best],
            len(targets.users),
        )
    return chosen


def _mean_ndcg(
    feed: FeedRows,
    targets: Targets,
    k: int,
    logbook: base.TrainingLog,
    leave_out: Mapping[str, set[int]] | None,
) -> float:
    ranked = ranked_rows(feed, targets.users, k, logbook.n_items, leave_out)
    return float(ranking_metrics(ranked, targets.relevant, k)[f"NDCG@{k}"].mean())


def fit_tuned(
    tuned: Mapping[str, Tuned], log: base.TrainingLog, popularity: base.Popularity
) -> dict[str, Callable[[str, int], np.ndarray]]:
    """Each tuned baseline refitted with its chosen setting on `log` (all training events);
    a baseline the training log cannot hold (EASE) is left out."""
    fitted = {}
    for name, chosen in tuned.items():
        if fits(name, log):
            fitted[name] = fit(name, log, chosen.params, popularity)
        else:
            logger.info("%s left out: it cannot be fitted on all the training events", name)
    return fitted
