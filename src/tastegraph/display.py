"""How a catalog's prices read to people: a currency sign and a factor, both ways.

A catalog's stored prices may be on any scale (the H&M sample's are divided by an unknown
constant: 0.0005 to 0.34). The page, the API's cards and the assistant show
`price * factor` with the currency, and read a shopper's "under 30" back into the stored
scale. The dataset adapter that knows the scale writes `<workdir>/catalog.json`; the
TASTEGRAPH_PRICE_FACTOR and TASTEGRAPH_PRICE_CURRENCY settings win over it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tastegraph.artifacts import write_json
from tastegraph.config import Settings

CATALOG_FILE = "catalog.json"


@dataclass(frozen=True)
class PriceDisplay:
    currency: str = ""  # put before the amount: "€30.00"
    factor: float = 1.0  # shown price = stored price * factor

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"the price factor must be above 0, got {self.factor}")

    def shown(self, stored: float) -> float:
        return round(stored * self.factor, 2)

    def text(self, stored: float | None) -> str | None:
        """'€24.99' for a stored price, None for an item without one."""
        return None if stored is None else f"{self.currency}{self.shown(stored):,.2f}"

    def stored(self, shown: float) -> float:
        """A price as a shopper says it, on the catalog's stored scale."""
        return shown / self.factor


def write_catalog_display(workdir: Path, display: PriceDisplay) -> None:
    write_json(
        workdir / CATALOG_FILE, {"currency": display.currency, "price_factor": display.factor}
    )


def price_display(settings: Settings) -> PriceDisplay:
    """The settings' display where set, else the catalog's own (catalog.json), else raw."""
    path = settings.workdir / CATALOG_FILE
    saved = json.loads(path.read_text()) if path.is_file() else {}
    currency = settings.price_currency
    factor = settings.price_factor
    return PriceDisplay(
        saved.get("currency", "") if currency is None else currency,
        float(saved.get("price_factor", 1.0)) if factor is None else factor,
    )
