"""Per-item filter fields (category, price) and the boolean masks that filters select."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

PriceRange = tuple[float | None, float | None]


@dataclass
class FilterFields:
    """Category and price of every indexed item, in index row order.

    An item without a category or price never matches a category or price filter,
    and always matches a search without one.
    """

    names: list[str]  # the category vocabulary; codes index into it
    codes: np.ndarray  # (N,) int32, -1 where an item has no category
    prices: np.ndarray  # (N,) float64, NaN where an item has no price

    def __post_init__(self) -> None:
        if self.codes.shape != self.prices.shape or self.codes.ndim != 1:
            raise ValueError(
                f"expected (N,) codes and prices, got {self.codes.shape} and {self.prices.shape}"
            )

    @classmethod
    def empty(cls) -> FilterFields:
        return cls([], np.zeros(0, np.int32), np.zeros(0, np.float64))

    @classmethod
    def from_values(
        cls,
        count: int,
        categories: Sequence[str | None] | None = None,
        prices: Sequence[float | None] | np.ndarray | None = None,
    ) -> FilterFields:
        """Fields for `count` items; None (or a missing sequence) means not known."""
        categories = [None] * count if categories is None else list(categories)
        if len(categories) != count:
            raise ValueError(f"expected {count} categories, got {len(categories)}")
        names: list[str] = []
        lookup: dict[str, int] = {}
        codes = np.full(count, -1, np.int32)
        for row, category in enumerate(categories):
            if category is None or category == "":
                continue
            if not isinstance(category, str):
                raise TypeError(f"a category must be a str or None, got {category!r}")
            if category not in lookup:
                lookup[category] = len(names)
                names.append(category)
            codes[row] = lookup[category]
        return cls(names, codes, _prices(count, prices))

    def __len__(self) -> int:
        return len(self.codes)

    def category(self, row: int) -> str | None:
        code = int(self.codes[row])
        return None if code < 0 else self.names[code]

    def price(self, row: int) -> float | None:
        price = float(self.prices[row])
        return None if math.isnan(price) else price

    def extend(self, other: FilterFields) -> FilterFields:
        """These fields followed by `other`'s, with one shared category vocabulary."""
        names = list(self.names)
        lookup = {name: code for code, name in enumerate(names)}
        for name in other.names:
            if name not in lookup:
                lookup[name] = len(names)
                names.append(name)
        remap = np.array([lookup[name] for name in other.names] + [-1], np.int32)
        codes = np.concatenate([self.codes, remap[other.codes]])  # code -1 maps to -1
        return FilterFields(names, codes, np.concatenate([self.prices, other.prices]))

    def mask(
        self, categories: Collection[str] | None, price_range: PriceRange | None
    ) -> np.ndarray | None:
        """(N,) bool: True for items that pass, or None when nothing is filtered."""
        if categories is None and (price_range is None or price_range == (None, None)):
            return None
        mask = np.ones(len(self), bool) if categories is None else self._in(categories)
        if price_range is not None:
            low, high = check_price_range(price_range)
            if low is not None:
                mask &= self.prices >= low  # NaN compares False: no price, no match
            if high is not None:
                mask &= self.prices <= high
        return mask

    def _in(self, categories: Collection[str]) -> np.ndarray:
        """(N,) bool: True for items whose category is one of `categories`."""
        if isinstance(categories, str):
            raise TypeError(f"categories must be a collection of str, not the str {categories!r}")
        wanted = np.zeros(len(self.names) + 1, bool)  # the last slot is for code -1
        lookup = {name: code for code, name in enumerate(self.names)}
        wanted[[lookup[c] for c in categories if c in lookup]] = True
        result: np.ndarray = wanted[self.codes]
        return result


def check_price_range(price_range: PriceRange) -> PriceRange:
    """A (low, high) pair, both inclusive, either None for no bound."""
    if not isinstance(price_range, tuple) or len(price_range) != 2:
        raise TypeError(f"price_range must be a (low, high) tuple, got {price_range!r}")
    low, high = (None if bound is None else _number(bound, price_range) for bound in price_range)
    if low is not None and high is not None and low > high:
        raise ValueError(f"price_range low {low} is above high {high}")
    return low, high


def _number(bound: object, price_range: PriceRange) -> float:
    if isinstance(bound, bool) or not isinstance(bound, int | float | np.number):
        raise TypeError(f"price bounds must be numbers or None, got {price_range!r}")
    if math.isnan(bound):
        raise ValueError(f"price bounds must not be NaN, got {price_range!r}")
    return float(bound)


def _prices(count: int, prices: Sequence[float | None] | np.ndarray | None) -> np.ndarray:
    if prices is None:
        return np.full(count, np.nan)
    if isinstance(prices, np.ndarray):
        values = prices.astype(np.float64).reshape(-1)
    else:
        values = np.array([np.nan if p is None else float(p) for p in prices], np.float64)
    if len(values) != count:
        raise ValueError(f"expected {count} prices, got {len(values)}")
    return values
