"""A small synthetic shop for the recommender tests: clear tastes, so outcomes are certain.

Six styles of twelve items (items of a style about 0.85 alike); styles 0+1, 2+3 and 4+5
are neighbours (centres 0.5 alike), other styles unrelated. Each style has its own
colour, product type, category and price band.
Shoppers buy within pairs of styles (0+1, 2+3, 4+5) in baskets, so the taste graph links
those styles; style 2 sells the most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tastegraph.graph import TasteGraph
from tastegraph.graph.interests import InterestConfig, InterestMap
from tastegraph.graph.taste import ItemDetails
from tastegraph.index import ItemIndex
from tastegraph.profiles import ProfileConfig, popular_items
from tastegraph.profiles.batch import build_profiles
from tastegraph.recommend import RecommendConfig, Recommender
from tastegraph.store import Event

T0 = 1_700_000_000.0
DAY = 86_400.0
STYLES = 6
PER_STYLE = 12
COLOURS = ["Black", "White", "Red", "Blue", "Green", "Beige"]
TYPES = ["Dress", "Trousers", "Sweater", "Shirt", "Jacket", "Skirt"]


def item_id(style: int, k: int) -> str:
    return f"s{style}-{k:02d}"


def style_of(item: str) -> int:
    return int(item[1])


@dataclass
class World:
    ids: list[str]
    vectors: np.ndarray  # (N, d) unit
    centres: np.ndarray  # (STYLES, d)
    events: list[Event]
    titles: dict[str, str]
    variants: dict[str, str]
    attributes: list[dict[str, str]]
    categories: list[str]
    prices: np.ndarray

    def recommender(
        self,
        config: RecommendConfig | None = None,
        freshness: np.ndarray | None = None,
        complements: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Recommender:
        index = ItemIndex.build(self.ids, self.vectors, self.categories, self.prices)
        now = max(e.ts for e in self.events) + 1
        graph = TasteGraph.build(self.events, self.ids, now=now)
        interests = InterestMap.build(
            self.vectors,
            self.attributes,
            [self.titles[i] for i in self.ids],
            InterestConfig(count=STYLES, neighbours=2),
        )
        popular = popular_items(self.events, now, 7.0, 50)
        profiles = build_profiles(self.events, index, ProfileConfig())
        return Recommender(
            index,
            graph,
            interests,
            popular,
            profiles,
            self.titles,
            self.variants,
            config,
            freshness,
            complements,
        )


def purchase(user: str, item: str, day: float, basket: str | None = None) -> Event:
    return Event(f"{user}-{item}-{day}", user, item, "purchase", 1.0, T0 + day * DAY, basket)


def make_world(dim: int = 32, seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, STYLES + STYLES // 2)))[0].T
    # Styles 2p and 2p+1 share a direction: their centres are 0.5 alike, others 0.
    centres = np.stack([basis[s] + basis[STYLES + s // 2] for s in range(STYLES)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)  # (STYLES, dim)
    ids, rows = [], []
    for style, centre in enumerate(centres):
        ids += [item_id(style, k) for k in range(PER_STYLE)]
        rows.append(centre + 0.4 * rng.standard_normal((PER_STYLE, dim)) / np.sqrt(dim))
    vectors = np.concatenate(rows).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    events = []
    for shopper in range(30):
        pair = shopper % 3  # styles 2*pair and 2*pair + 1
        for day in range(3):
            basket = f"b{shopper}-{day}"
            for style in (2 * pair, 2 * pair + 1):
                k = int(rng.integers(0, PER_STYLE))
                events.append(purchase(f"shopper{shopper}", item_id(style, k), day, basket))
    for day in range(5):  # style 2 sells the most, recently
        for k in range(4):
            events.append(purchase(f"fan{day}", item_id(2, k), 10 + day))
    # u1 likes style 0 only
    events += [purchase("u1", item_id(0, k), 12 + k * 0.1, "u1-basket") for k in range(4)]
    return World(
        ids=ids,
        vectors=vectors,
        centres=centres.astype(np.float32),
        events=sorted(events, key=lambda e: e.ts),
        titles={i: f"{COLOURS[style_of(i)]} {TYPES[style_of(i)]} {i[-2:]}" for i in ids},
        # Items k and k+1 (k even) are two colours of one product.
        variants={i: f"{i[:3]}p{int(i[-2:]) // 2}" for i in ids},
        attributes=[
            {"colour_group": COLOURS[style_of(i)], "product_type": TYPES[style_of(i)]} for i in ids
        ],
        categories=[f"cat{style_of(i)}" for i in ids],
        prices=np.array([10.0 * (style_of(i) + 1) + int(i[-2:]) for i in ids]),
    )


def basket_log(days: int, per_day: int, seed: int = 0) -> list[Event]:
    """Every basket holds one item of style 2p and one of its neighbour style 2p + 1: what
    goes together differs in colour and type from the query, unlike what looks alike."""
    rng = np.random.default_rng(seed)
    events = []
    for day in range(days):
        for b in range(per_day):
            pair = int(rng.integers(0, 3))
            for style in (2 * pair, 2 * pair + 1):
                item = item_id(style, int(rng.integers(0, PER_STYLE)))
                events.append(purchase(f"shopper{day}-{b}", item, day, f"b{day}-{b}"))
    return events


def details_of(world: World) -> dict[str, ItemDetails]:
    return {
        i: ItemDetails(world.titles[i], world.variants[i], attributes, float(price))
        for i, attributes, price in zip(world.ids, world.attributes, world.prices, strict=True)
    }
