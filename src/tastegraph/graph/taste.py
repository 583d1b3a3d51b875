"""The taste artifacts the graph job publishes (taste graph, interests, fresh popular
items, freshness, complements) and the item details recommendations are explained with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tastegraph import registry
from tastegraph.graph.complements import Complements
from tastegraph.graph.freshness import Freshness
from tastegraph.graph.graph import TasteGraph
from tastegraph.graph.interests import InterestMap
from tastegraph.store import Store


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
    """What the graph job publishes (`graph/job.py` builds it); read back with `open`."""

    graph: TasteGraph
    interests: InterestMap
    popular: list[tuple[str, float]]  # item id, decayed purchase weight; best first
    freshness: Freshness
    complements: Complements
    # The share of engagements that repeat an item of the same user (graph/behaviour.py);
    # None for a graph published before it was measured.
    repeat_share: float | None = None

    def publish(self, workdir: Path, extra: dict[str, Any] | None = None) -> Path:
        def write(folder: Path) -> None:
            self.interests.save(folder)
            (folder / "popular.json").write_text(json.dumps(self.popular))
            self.freshness.save(folder)
            self.complements.save(folder)

        return self.graph.publish(
            workdir, (extra or {}) | {"repeat_share": self.repeat_share}, also=write
        )

    @classmethod
    def open(cls, workdir: Path) -> TasteArtifacts:
        folder = registry.current(workdir, "graph")
        if folder is None:
            raise FileNotFoundError(f"no taste graph in {workdir}; run `tastegraph graph` first")
        popular = [(str(i), float(s)) for i, s in json.loads((folder / "popular.json").read_text())]
        return cls(
            TasteGraph.load(folder),
            InterestMap.load(folder),
            popular,
            Freshness.load(folder),
            Complements.load(folder),
            registry.read_manifest(folder, "graph").get("repeat_share"),
        )
