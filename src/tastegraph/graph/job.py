"""The offline graph job: taste graph, interests and fresh popular items, published together."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tastegraph.artifacts import current_version
from tastegraph.config import Settings
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.graph.complements import Complements
from tastegraph.graph.freshness import Freshness
from tastegraph.graph.graph import GraphConfig, TasteGraph, graph_root
from tastegraph.graph.interests import InterestConfig, InterestMap
from tastegraph.profiles import popular_items
from tastegraph.store import Event, Store

log = logging.getLogger(__name__)

# "Fresh" popularity: a purchase a week ago counts half as much as one today.
POPULAR_HALF_LIFE_DAYS = 7.0
POPULAR_KEPT = 1000


@dataclass(frozen=True)
class ItemDetails:
    title: str | None
    product: str | None  # the product this item is a variant of, where known
    attributes: dict[str, Any]
    price: float | None = None
    description: str | None = None


def item_attributes(details: dict[str, ItemDetails]) -> dict[str, dict[str, Any]]:
    """Item id -> its attributes."""
    return {item_id: d.attributes for item_id, d in details.items()}


def item_details(store: Store, variant_attribute: str | None) -> dict[str, ItemDetails]:
    """Title, product and attributes of every item, for labels and reasons."""
    details = {}
    for item in store.iter_items():
        product = item.attributes.get(variant_attribute) if variant_attribute else None
        details[item.id] = ItemDetails(
            item.title or None,
            None if product is None else str(product),
            item.attributes,
            item.price,
            item.description or None,
        )
    return details


@dataclass
class TasteArtifacts:
    """What the graph job publishes: read back with `load`."""

    graph: TasteGraph
    interests: InterestMap
    popular: list[tuple[str, float]]  # item id, decayed purchase weight; best first
    freshness: Freshness
    complements: Complements

    @classmethod
    def build(
        cls,
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
        log.info(
            "taste graph: %d items, %d nodes, %d edges; %d interests",
            len(graph),
            len(graph.node_ids),
            graph.item_to_node.nnz,
            len(interests),
        )
        return cls(
            graph,
            interests,
            popular,
            Freshness.fit(past, item_ids, graph.now),
            Complements.fit(past, item_attributes(details), now),
        )

    def publish(self, workdir: Path, extra: dict[str, Any] | None = None) -> Path:
        def write(folder: Path) -> None:
            self.interests.save(folder)
            (folder / "popular.json").write_text(json.dumps(self.popular))
            self.freshness.save(folder)
            self.complements.save(folder)

        return self.graph.publish(workdir, extra, also=write)

    @classmethod
    def open(cls, workdir: Path) -> TasteArtifacts:
        folder = current_version(graph_root(workdir))
        if folder is None:
            raise FileNotFoundError(f"no taste graph in {workdir}; run `tastegraph graph` first")
        popular = [(str(i), float(s)) for i, s in json.loads((folder / "popular.json").read_text())]
        return cls(
            TasteGraph.load(folder),
            InterestMap.load(folder),
            popular,
            Freshness.load(folder),
            Complements.load(folder),
        )


def build_and_publish(
    store: Store, workdir: Path, settings: Settings, *, now: float | None = None
) -> Path:
    """Build the graph artifacts over the current embeddings and publish them."""
    embeddings = EmbeddingStore.open(workdir)
    events = list(store.iter_events())
    config = GraphConfig(action_weights=dict(settings.action_weights))
    artifacts = TasteArtifacts.build(
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
