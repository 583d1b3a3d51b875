"""What the assistant knows for certain about each item, and the constraints a shopper sets.

An item's facts are its own attributes (colour, type, category, pattern), price and text.
A constraint ("in blue", "a dress", "under €30") holds for an item only when its facts say
so: an item with no colour (a photo-only item) never passes a colour constraint. Replies
are checked against the same facts (assistant/faithful.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from tastegraph.config import Settings
from tastegraph.display import PriceDisplay, price_display
from tastegraph.graph.taste import ItemDetails, item_details
from tastegraph.store import Store

# Words that qualify a colour but name none on their own ("light", "other").
COLOUR_QUALIFIERS = {"light", "dark", "medium", "other", "unknown", "off", "greyish", "bright"}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-case words, plural endings dropped ("Dresses" -> "dress"), hyphens kept."""
    return [singular(w) for w in _WORD.findall(text.lower())]


def singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


@dataclass(frozen=True)
class ItemFacts:
    title: str | None
    colour: str | None  # the catalog's value, e.g. "Dark Blue"
    kind: str | None  # e.g. "Dress"
    category: str | None  # e.g. "Garment Full body"
    pattern: str | None  # e.g. "Stripe"
    price: float | None  # on the catalog's stored scale
    text: str  # title and description, lower case
    product: str | None = None  # the product this item is a variant of, where known

    @property
    def label(self) -> str | None:
        """'Dark Blue · Dress': true of the item, or None when it has neither attribute."""
        parts = [p for p in (self.colour, self.kind) if p]
        return " · ".join(parts) or None


@dataclass(frozen=True)
class Constraints:
    """What every item shown must satisfy: any of the colours, any of the kinds (type or
    category), and a price range (stored scale, inclusive)."""

    colours: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None

    def holds(self, facts: ItemFacts | None) -> bool:
        if facts is None:
            return not self
        if self.colours and facts.colour not in self.colours:
            return False
        if self.kinds and facts.kind not in self.kinds and facts.category not in self.kinds:
            return False
        if self.min_price is None and self.max_price is None:
            return True
        if facts.price is None:
            return False
        low = -np.inf if self.min_price is None else self.min_price
        high = np.inf if self.max_price is None else self.max_price
        return bool(low <= facts.price <= high)

    def __bool__(self) -> bool:
        return bool(self.colours or self.kinds or self.min_price is not None) or (
            self.max_price is not None
        )

    def without_price(self) -> Constraints:
        return Constraints(self.colours, self.kinds)


class Catalog:
    """Every item's facts and the vocabulary the shopper may use: the catalog's colours and
    kinds, matched as words."""

    def __init__(
        self,
        details: Mapping[str, ItemDetails],
        display: PriceDisplay,
        colour_key: str = "colour_group",
        kind_key: str = "product_type",
        category_key: str = "product_group",
        pattern_key: str = "graphical_appearance",
    ) -> None:
        self.display = display
        self._keys = (colour_key, kind_key, category_key, pattern_key)
        self.facts = {item_id: _facts(d, *self._keys) for item_id, d in details.items()}
        self.colours = _vocabulary(f.colour for f in self.facts.values())
        self.kinds = _vocabulary(
            v for f in self.facts.values() for v in (f.kind, f.category) if v is not None
        )
        self.patterns = _vocabulary(f.pattern for f in self.facts.values())

    @classmethod
    def from_settings(
        cls, details: Mapping[str, ItemDetails], settings: Settings, display: PriceDisplay
    ) -> Catalog:
        return cls(
            details,
            display,
            settings.colour_attribute,
            settings.kind_attribute,
            settings.index_category_key,
            settings.pattern_attribute,
        )

    @classmethod
    def open(cls, store: Store, settings: Settings) -> Catalog:
        """Every stored item's facts, shown with the catalog's price display."""
        details = item_details(store, settings.variant_attribute)
        return cls.from_settings(details, settings, price_display(settings))

    def add(self, item_id: str, details: ItemDetails) -> None:
        """An item added while serving; the vocabulary stays as built."""
        self.facts[item_id] = _facts(details, *self._keys)

    def get(self, item_id: str) -> ItemFacts | None:
        return self.facts.get(item_id)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.facts

    def allowed(self, item_ids: Iterable[str], constraints: Constraints) -> np.ndarray:
        """(N,) bool: which of the items satisfy the constraints."""
        return np.fromiter((constraints.holds(self.facts.get(i)) for i in item_ids), dtype=bool)

    def describe(self, constraints: Constraints) -> str:
        """'Dress, in Black or Dark Blue, up to €30.00': constraints as a shopper reads them."""
        parts = []
        if constraints.kinds:
            parts.append(" or ".join(constraints.kinds))
        if constraints.colours:
            parts.append("in " + " or ".join(constraints.colours))
        if constraints.max_price is not None:
            parts.append(f"up to {self.display.text(constraints.max_price)}")
        if constraints.min_price is not None:
            parts.append(f"from {self.display.text(constraints.min_price)}")
        return ", ".join(parts)

    def colour_values(self, phrase: list[str]) -> list[str]:
        """Catalog colours that hold every word of the phrase ("blue" -> Blue, Dark Blue)."""
        if set(phrase) <= COLOUR_QUALIFIERS:
            return []
        return [value for value, ws in self.colours.items() if set(phrase) <= set(ws)]

    def kind_values(self, phrase: list[str]) -> list[str]:
        """Kinds named by the phrase: the values it spells out ("top" is Top where the
        catalog has a Top), else those whose last word it is ("top": Vest top, Bikini top)."""
        exact = [v for v, ws in self.kinds.items() if phrase == ws]
        return exact or [v for v, ws in self.kinds.items() if phrase == ws[-1:]]


def _facts(
    d: ItemDetails, colour_key: str, kind_key: str, category_key: str, pattern_key: str
) -> ItemFacts:
    def attribute(key: str) -> str | None:
        value = str(d.attributes.get(key) or "").strip()
        return value or None

    text = " ".join(t for t in (d.title, d.description) if t).lower()
    return ItemFacts(
        d.title,
        attribute(colour_key),
        attribute(kind_key),
        attribute(category_key),
        attribute(pattern_key),
        d.price,
        text,
        d.product,
    )


def _vocabulary(values: Iterable[str | None]) -> dict[str, list[str]]:
    """Each distinct value with its words, leaving out values that name nothing."""
    out = {}
    for value in values:
        if value and value not in out:
            ws = words(value)
            if ws and not set(ws) <= COLOUR_QUALIFIERS:
                out[value] = ws
    return out
