"""Attribute complements: which attribute values people engage with together.

For every categorical item attribute (product type, department, colour, ...), the pointwise
mutual information of the values of two items engaged together (one basket, board or
session; `embeddings.pairs`) against what the values' frequencies alone predict. A bikini
top goes with bikini bottoms, a baby bodysuit with baby trousers; an evening dress rarely
with a rain jacket. "Complete the look" needs this: items bought together are often of
different types, so looking alike is not enough. Smoothed, so a rare pair of values stays
near 0 (no evidence) instead of swinging on a single basket.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastegraph.embeddings.pairs import co_engaged_pairs
from tastegraph.graph.graph import read_graph_json
from tastegraph.store import Event

FILE = "complements.json"
# An attribute with more distinct values is an id or free text, not a category.
MAX_VALUES = 500
SMOOTHING_PAIRS = 5.0

Attributes = Mapping[str, Mapping[str, object]]  # item id -> attribute -> value


@dataclass
class Complements:
    values: dict[str, list[str]]  # attribute -> its values; a value's code is its position
    pmi: dict[str, np.ndarray]  # attribute -> (V, V) float32, rows the query's value

    @classmethod
    def fit(cls, events: Iterable[Event], attributes: Attributes, now: float | None) -> Complements:
        """From the pairs of items engaged together before `now` (default: every event)."""
        values = categorical_values(attributes)
        items = list(attributes)
        pairs = co_engaged_pairs(events, {item: row for row, item in enumerate(items)}, cutoff=now)
        pairs = np.concatenate([pairs, pairs[:, ::-1]])  # symmetric counts
        codes = attribute_codes(items, attributes, values)
        pmi = {}
        for column, name in enumerate(values):
            size = len(values[name])
            first, second = codes[pairs[:, 0], column], codes[pairs[:, 1], column]
            known = (first >= 0) & (second >= 0)
            joint = np.zeros((size, size))
            np.add.at(joint, (first[known], second[known]), 1.0)
            expected = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
            expected /= max(joint.sum(), 1.0)
            ratio = (joint + SMOOTHING_PAIRS) / (expected + SMOOTHING_PAIRS)
            pmi[name] = np.log(ratio).astype(np.float32)
        return cls(values, pmi)

    def scorer(
        self, item_ids: Sequence[str], attributes: Attributes
    ) -> Callable[[np.ndarray], np.ndarray]:
        """score(rows) -> (Q, N): the summed PMI of each query row's attribute values with
        every item's, over the attributes both items have (0 where none)."""
        codes = attribute_codes(item_ids, attributes, self.values)  # (N, K)
        # Items with the same values score alike: each distinct combination is scored once.
        combinations, combination_of = np.unique(codes, axis=0, return_inverse=True)
        combination_of = combination_of.ravel()
        # "Unknown" becomes one more value of each attribute, whose PMI with anything is 0,
        # so a query reads one table row per attribute and gathers it: no masks per request.
        columns, tables = [], []
        for column, name in enumerate(self.values):
            values = combinations[:, column]
            columns.append(np.where(values >= 0, values, len(self.values[name])))
            tables.append(np.pad(self.pmi[name], ((0, 1), (0, 1))))

        def score(rows: np.ndarray) -> np.ndarray:
            queries = combination_of[rows]
            total = np.zeros((len(rows), len(combinations)), dtype=np.float32)
            for values, table in zip(columns, tables, strict=True):
                total += table[values[queries]][:, values]
            return total[:, combination_of]

        return score

    def save(self, folder: Path) -> None:
        state = {
            name: {"values": self.values[name], "pmi": np.round(self.pmi[name], 4).tolist()}
            for name in self.values
        }
        (folder / FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, folder: Path) -> Complements:
        state = read_graph_json(folder, FILE)
        values = {name: list(entry["values"]) for name, entry in state.items()}
        pmi = {
            name: np.array(entry["pmi"], dtype=np.float32).reshape(len(values[name]), -1)
            for name, entry in state.items()
        }
        return cls(values, pmi)


def categorical_values(attributes: Attributes) -> dict[str, list[str]]:
    """Attributes with text values and between 2 and MAX_VALUES distinct ones, sorted."""
    seen: dict[str, set[str]] = defaultdict(set)
    for item in attributes.values():
        for name, value in item.items():
            if isinstance(value, str):
                seen[name].add(value)
    return {
        name: sorted(found) for name, found in sorted(seen.items()) if 2 <= len(found) <= MAX_VALUES
    }


def attribute_codes(
    item_ids: Sequence[str], attributes: Attributes, values: Mapping[str, list[str]]
) -> np.ndarray:
    """(N, K) code of each item's value of each attribute; -1 where it has none."""
    lookups = [{value: code for code, value in enumerate(values[name])} for name in values]
    codes = np.full((len(item_ids), len(values)), -1, dtype=np.int64)
    for row, item in enumerate(item_ids):
        own = attributes.get(item, {})
        for column, (name, lookup) in enumerate(zip(values, lookups, strict=True)):
            value = own.get(name)
            codes[row, column] = lookup.get(value, -1) if isinstance(value, str) else -1
    return codes
