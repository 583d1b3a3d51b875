"""The offline job that computes related items ahead of requests: each item's best related
items as the served recommender ranks them (re-ranker included), popular items first and
within a time budget, published as a related-items table (`related_table.py`).

A request for one item scores every indexed item (about 5.5 ms of server CPU on the H&M
sample); the job scores CHUNK items at a time and the server looks answers up. Each answer
scores every item, so the job grows with the square of the catalog: the time budget, not
the catalog, bounds it, and popular items come first.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from tastegraph import registry
from tastegraph.config import Settings
from tastegraph.progress import Progress
from tastegraph.recommend.assemble import open_recommender
from tastegraph.recommend.recommender import Recommender
from tastegraph.recommend.related_table import RelatedTable, inputs_of
from tastegraph.recommend.rerank import CHUNK
from tastegraph.store import Store

log = logging.getLogger(__name__)

WIDTH = 50  # related items kept per item; a request for more is computed (re-ranked: <= 100)
BUDGET_SECONDS = 3600.0  # items not reached by then are computed per request


def popular_first(recommender: Recommender) -> np.ndarray:
    """Every index row: the popular items best first, then the rest in index order."""
    index = recommender.index
    popular = [index.row(item) for item, _ in recommender.popular if item in index]
    rest = np.setdiff1d(np.arange(len(index)), popular, assume_unique=True)
    return np.concatenate([np.array(popular, dtype=np.int64), rest])


def compute_table(
    recommender: Recommender,
    inputs: dict[str, str | None],
    width: int = WIDTH,
    budget_seconds: float = BUDGET_SECONDS,
    show_progress: bool = True,
) -> RelatedTable:
    """Each item's `width` best unfiltered related items, popular items first, until
    `budget_seconds` have passed; `inputs`: the versions the recommender was built from."""
    if width < 1:
        raise ValueError(f"the table needs at least 1 related item per item, got {width}")
    order = popular_first(recommender)
    everything = np.ones(len(recommender.index), dtype=bool)
    rows, scores = [], []
    deadline = time.monotonic() + budget_seconds
    with Progress(len(order), "related items", "items", show=show_progress) as progress:
        for start in range(0, len(order), CHUNK):
            if time.monotonic() >= deadline:
                log.info(
                    "the budget of %.0f s ran out after %d of %d items; the rest are "
                    "computed per request",
                    budget_seconds,
                    start,
                    len(order),
                )
                break
            found, found_scores = recommender.ranked_related(
                order[start : start + CHUNK], width, everything
            )
            rows.append(_padded(found, width, -1))
            scores.append(_padded(found_scores, width, -np.inf))
            progress.update(len(found))
    covered = sum(len(r) for r in rows)
    return RelatedTable(
        recommender.index.ids,
        order[:covered].astype(np.int32),
        np.concatenate(rows or [np.empty((0, width))]).astype(np.int32),
        np.concatenate(scores or [np.empty((0, width))]).astype(np.float64),
        inputs,
    )


def _padded(values: np.ndarray, width: int, fill: float) -> np.ndarray:
    """`values` (Q, <= width) widened to `width` columns with `fill` (a catalog or re-ranker
    pool smaller than the width gives fewer)."""
    missing = width - values.shape[1]
    return np.pad(values, ((0, 0), (0, missing)), constant_values=fill) if missing else values


def publish_related_table(
    store: Store,
    settings: Settings,
    width: int = WIDTH,
    budget_seconds: float = BUDGET_SECONDS,
    show_progress: bool = True,
) -> tuple[RelatedTable, Path]:
    """Compute the table over the current index, taste graph and re-ranker and publish it;
    refused when one of them was published meanwhile (the table would mix them)."""
    workdir = settings.workdir
    versions = registry.versions(workdir)
    if versions["index"] is None or versions["graph"] is None:
        raise FileNotFoundError(
            "related items need the index and the taste graph; run `tastegraph index` and "
            "`tastegraph graph` first"
        )
    recommender = open_recommender(workdir, store, settings)
    table = compute_table(recommender, inputs_of(versions), width, budget_seconds, show_progress)
    if inputs_of(registry.versions(workdir)) != table.inputs:
        raise RuntimeError(
            "the index, taste graph or re-ranker was published while the related items were "
            "computed; run `tastegraph related-table` again"
        )
    return table, registry.publish(workdir, "related", table.save)
