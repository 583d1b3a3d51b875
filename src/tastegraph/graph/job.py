"""The offline graph job: taste graph, interests and fresh popular items, published together."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tastegraph.config import Settings
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.graph.behaviour import event_repeat_share
from tastegraph.graph.complements import Complements
from tastegraph.graph.freshness import Freshness
from tastegraph.graph.graph import GraphConfig, TasteGraph
from tastegraph.graph.interests import InterestConfig, InterestMap
from tastegraph.graph.taste import ItemDetails, TasteArtifacts, item_attributes, item_details
from tastegraph.profiles import popular_items
from tastegraph.store import Event, Store

log = logging.getLogger(__name__)

# "Fresh" popularity: a purchase a week ago counts half as much as one today.
POPULAR_HALF_LIFE_DAYS = 7.0
POPULAR_KEPT = 1000


def build_taste(
    events: Sequence[Event],
    item_ids: Sequence[str],
    vectors: np.ndarray,
    details: dict[str, ItemDetails],
    *,
    now: float | None = None,
    graph_config: GraphConfig | None = None,
    interest_config: InterestConfig | None = None,
) -> TasteArtifacts:
    """From events before `now` (default: all) over items `item_ids` whose embeddings are
    `vectors` (N, d)."""
    graph = TasteGraph.build(events, item_ids, graph_config, now)
    known = [details.get(i) for i in item_ids]
    interests = InterestMap.build(
        vectors,
        [d.attributes if d else {} for d in known],
        [d.title if d else None for d in known],
        interest_config,
    )
    past = events if now is None else [e for e in events if e.ts < now]
    popular = popular_items(
        past,
        graph.now,
        POPULAR_HALF_LIFE_DAYS,
        POPULAR_KEPT,
        action_weights=graph.config.action_weights,
    )
    share = event_repeat_share(past)
    log.info(
        "taste graph: %d items, %d nodes, %d edges; %d interests; repeat share %s",
        len(graph),
        len(graph.node_ids),
        graph.item_to_node.nnz,
        len(interests),
        "not measured (too few users engaged twice)" if share is None else f"{share:.1%}",
    )
    return TasteArtifacts(
        graph,
        interests,
        popular,
        Freshness.fit(past, item_ids, graph.now),
        Complements.fit(past, item_attributes(details), now),
        share,
    )


def build_and_publish(
    store: Store, workdir: Path, settings: Settings, *, now: float | None = None
) -> Path:
    """Build the graph artifacts over the current embeddings and publish them."""
    embeddings = EmbeddingStore.open(workdir)
    events = list(store.iter_events())
    config = GraphConfig(action_weights=dict(settings.action_weights))
    artifacts = build_taste(
        events,
        embeddings.ids,
        np.asarray(embeddings.vectors),
        item_details(store, settings.variant_attribute),
        now=now,
        graph_config=config,
    )
    return artifacts.publish(
        workdir,
        {"embeddings_version": embeddings.version, "graph_config": asdict(config)},
    )
