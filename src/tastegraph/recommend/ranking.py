"""The home feed's ranking: candidates of every source weighed into one score, then
diversified, each credited to the source that contributed most."""

from __future__ import annotations

import numpy as np

from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.diversify import mmr
from tastegraph.recommend.items import ItemRows, Recommendation
from tastegraph.recommend.sources import SOURCES, Candidates


def rank(
    items: ItemRows, sources: dict[str, Candidates], n: int, config: RecommendConfig
) -> list[Recommendation]:
    """The n best candidates by weighted source scores (each scaled by the source's best),
    diversified by MMR."""
    if n <= 0:
        return []
    weights = {
        "interest": config.interest_weight,
        "walk": config.walk_weight,
        "popular": config.popular_weight,
        "repeat": config.repeat_weight,
    }
    names = [s for s in SOURCES if s in sources and len(sources[s].rows)]
    if not names:
        return []
    rows = np.unique(np.concatenate([sources[s].rows for s in names]))
    parts = np.zeros((len(rows), len(names)))  # (C, sources)
    present = np.zeros(parts.shape, dtype=bool)
    for column, name in enumerate(names):
        source = sources[name]
        at = np.searchsorted(rows, source.rows)
        best = source.scores.max()
        parts[at, column] = weights[name] * source.scores / best if best > 0 else 0.0
        present[at, column] = True
    totals = parts.sum(axis=1)
    top = np.argsort(-totals, kind="stable")[: config.mmr_pool * n]
    picked = top[mmr(items.vectors[rows[top]], totals[top], n, config.mmr_lambda)]
    out = []
    for i in picked:
        name = names[int(np.argmax(np.where(present[i], parts[i], -np.inf)))]
        reason = sources[name].reason(int(rows[i]))
        out.append(items.recommendation(int(rows[i]), float(totals[i]), name, reason))
    return out
