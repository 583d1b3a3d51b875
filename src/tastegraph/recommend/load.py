"""Open a Recommender over the published artifacts of a workdir."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tastegraph.config import Settings
from tastegraph.graph.job import ItemDetails, TasteArtifacts, item_attributes, item_details
from tastegraph.index import ItemIndex, open_index
from tastegraph.profiles import ProfileConfig, ProfileStore
from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.recommender import Recommender
from tastegraph.store import Store

if TYPE_CHECKING:
    from tastegraph.recommend.rerank import RelatedReranker


def open_recommender(
    workdir: Path, store: Store, settings: Settings, config: RecommendConfig | None = None
) -> Recommender:
    """The current index, taste graph, profiles and related-items re-ranker; a workdir
    without profiles starts every user new (they fill in as events arrive), one without a
    re-ranker orders related items by the related score."""
    from tastegraph.recommend.rerank import open_reranker  # rerank builds on this module

    taste = TasteArtifacts.open(workdir)
    try:
        profiles = ProfileStore.open(workdir)
    except FileNotFoundError:
        profiles = ProfileStore(ProfileConfig.from_settings(settings))
    details = item_details(store, settings.variant_attribute)
    index = open_index(workdir)
    reranker = open_reranker(workdir, index.ids)
    return assemble(index, taste, profiles, details, config, reranker)


def assemble(
    index: ItemIndex,
    taste: TasteArtifacts,
    profiles: ProfileStore,
    details: dict[str, ItemDetails],
    config: RecommendConfig | None = None,
    reranker: RelatedReranker | None = None,
) -> Recommender:
    """A Recommender from its parts, with titles and products taken from item details."""
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
        reranker=reranker,
    )
