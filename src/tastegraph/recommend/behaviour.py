"""Feed settings fitted to how a catalog's people behave (`graph/behaviour.py` measures it).

Where people engage with an item again (H&M), the user's own items belong in the feed, and
`repeat_weight` (100, tuned on H&M's validation split) puts them first. Where they seldom
do (films), a feed of items the user already engaged with helps no one: the repeat source
is switched off and the feed leaves out what the user engaged with. `recommend/assemble.py`
applies the share the graph job measured; an explicit `TASTEGRAPH_REPEAT_WEIGHT` wins.
"""

from __future__ import annotations

from dataclasses import replace

from tastegraph.graph.behaviour import repeats_are_rare
from tastegraph.recommend.config import RecommendConfig


def for_behaviour(
    config: RecommendConfig, share: float | None, repeat_weight: float | None = None
) -> RecommendConfig:
    """`config` fitted to a log whose repeat share is `share` (None: not measured, left as
    it is); an explicit `repeat_weight` wins and keeps engaged items in."""
    if repeat_weight is not None:
        return replace(config, repeat_weight=repeat_weight, leave_out_engaged=False)
    if share is None or not repeats_are_rare(share):
        return config
    return replace(config, repeat_weight=0.0, leave_out_engaged=True)
