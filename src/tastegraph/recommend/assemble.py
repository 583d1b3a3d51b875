"""The one place that builds the online recommender from a workdir's published artifacts.

The server, the CLI commands that recommend or chat, and the benchmarks all open it here,
so they serve the same thing: the current index, taste graph and related-items re-ranker,
and the published profiles brought up to date with the events stored after them.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from tastegraph import registry
from tastegraph.config import Settings
from tastegraph.graph.taste import ItemDetails, TasteArtifacts, item_attributes, item_details
from tastegraph.index import ItemIndex, open_index
from tastegraph.profiles import ProfileConfig, ProfileStore
from tastegraph.recommend.behaviour import for_behaviour
from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.recommender import Recommender
from tastegraph.recommend.related_table import RelatedTable, open_related_table, still_current
from tastegraph.recommend.rerank import RelatedReranker, open_reranker
from tastegraph.store import Store

log = logging.getLogger(__name__)


def open_recommender(
    workdir: Path, store: Store, settings: Settings, config: RecommendConfig | None = None
) -> Recommender:
    """The recommender over the current artifacts; a workdir without profiles starts every
    user new (they fill in as events arrive), one without a re-ranker orders related items
    by the related score, one without a current related-items table computes them."""
    table = open_related_table(workdir, registry.versions(workdir))
    index, reranker = open_index(workdir), open_reranker(workdir)
    taste = TasteArtifacts.open(workdir)
    return assemble(
        index,
        taste,
        open_profiles(workdir, store, settings, index),
        item_details(store, settings.variant_attribute),
        config,
        reranker,
        settings.repeat_weight,
        popular_weight(workdir, settings),
        still_current(table, workdir),
    )


def popular_weight(workdir: Path, settings: Settings) -> float | None:
    """How much popular items weigh in the feed: the setting where given, else the weight
    `tastegraph train feed` fitted to the log (`evaluate/feed_weights.py`), else None (the
    RecommendConfig's)."""
    if settings.popular_weight is not None:
        return settings.popular_weight
    folder = registry.current(workdir, "feed")
    if folder is None:
        return None
    try:
        return float(registry.read_manifest(folder, "feed")["popular_weight"])
    except (OSError, ValueError, KeyError) as exc:  # an unreadable fit: serve the default
        log.warning(
            "ignoring the feed weights in %s (%s); run `tastegraph train feed`", folder, exc
        )
        return None


def open_profiles(
    workdir: Path, store: Store, settings: Settings, index: ItemIndex
) -> ProfileStore:
    """The published profiles, brought up to date with the events stored after them, their
    `events_through` moved to the log position they now reflect (none published: empty
    profiles that follow the log from its current end)."""
    try:
        profiles = ProfileStore.open(workdir)
    except FileNotFoundError:
        profiles = ProfileStore(ProfileConfig.from_settings(settings))
    end = store.last_event_seq()  # read after the profiles: they cannot be past it
    if profiles.events_through is None:  # none published, or published without a position
        profiles.events_through = end
        return profiles
    replayed = store.events_after(profiles.events_through, through=end)
    for event in replayed:
        profiles.apply(event, index)
    profiles.events_through = end
    if replayed:
        log.info("replayed %d events stored after the published profiles", len(replayed))
    return profiles


def assemble(
    index: ItemIndex,
    taste: TasteArtifacts,
    profiles: ProfileStore,
    details: dict[str, ItemDetails],
    config: RecommendConfig | None = None,
    reranker: RelatedReranker | None = None,
    repeat_weight: float | None = None,
    popular_weight: float | None = None,
    related_table: RelatedTable | None = None,
) -> Recommender:
    """A Recommender from its parts, with titles and products taken from item details and
    the re-ranker laid over the index's items; its buy-again settings fitted to the log the
    taste graph measured (`recommend/behaviour.py`), unless `repeat_weight` is given, and
    popular items weighed by `popular_weight` where given. `related_table` serves only
    where its rows are the index's."""
    config = for_behaviour(config or RecommendConfig(), taste.repeat_share, repeat_weight)
    if popular_weight is not None:
        config = replace(config, popular_weight=popular_weight)
    return Recommender(
        index,
        taste.graph,
        taste.interests,
        taste.popular,
        profiles,
        titles={i: d.title for i, d in details.items() if d.title},
        variants={i: d.product for i, d in details.items() if d.product},
        config=config,
        freshness=taste.freshness.scores(index.ids),
        complements=taste.complements.scorer(index.ids, item_attributes(details)),
        reranker=None if reranker is None else reranker.over(index.ids),
        related_table=related_table if related_table and related_table.fits(index.ids) else None,
    )
