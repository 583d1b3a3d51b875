"""Related items computed offline: each item's best related items as the recommender ranks
them (re-ranker included), so an unfiltered "more like this" request looks its answer up
instead of scoring every item. `related_job.py` computes and publishes the table; filtered
requests, wider answers and items the table does not cover are computed per request.

A table holds while the index, taste graph and re-ranker it was computed over are the
ones served. Items embedded by a server after the index was published are not in it:
their own related items are computed, and they join other items' answers with the next
table. Item details (the product an item is a variant of) and the related score's weights
also shape answers but are not versioned: after changing either, run the job again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastegraph import registry

log = logging.getLogger(__name__)

# The artifacts an answer depends on: a table over other versions of them is not served.
INPUTS = ("index", "graph", "reranker")


@dataclass
class RelatedTable:
    item_ids: list[str]  # the index rows the table was computed over, in order
    queries: np.ndarray  # (M,) int32 index rows whose answers the table holds
    rows: np.ndarray  # (M, K) int32 related index rows, best first; -1 pads a short answer
    scores: np.ndarray  # (M, K) float64 their scores (as served); -inf where `rows` is -1
    inputs: dict[str, str | None]  # the versions of INPUTS it was computed over

    def __post_init__(self) -> None:
        self._slot = np.full(len(self.item_ids), -1, dtype=np.int64)
        self._slot[self.queries] = np.arange(len(self.queries))

    @property
    def width(self) -> int:
        """The most related items an answer from the table holds (K)."""
        return int(self.rows.shape[1])

    def answer(self, row: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The n best related rows of index row `row` and their scores, or None where the
        table does not hold them (an uncovered or newer item, or n over its width)."""
        if n > self.width or row >= len(self._slot) or self._slot[row] < 0:
            return None
        slot = self._slot[row]
        return self.rows[slot, :n], self.scores[slot, :n]

    def fits(self, index_ids: Sequence[str]) -> bool:
        """Whether the table's rows are `index_ids`' first rows (the index it was computed
        over, maybe with items added since)."""
        return list(index_ids[: len(self.item_ids)]) == self.item_ids

    def save(self, folder: Path) -> None:
        """Write the table's files into `folder` (see `registry.publish`)."""
        np.savez(
            folder / "related.npz",
            item_ids=np.array(self.item_ids, dtype=str),
            queries=self.queries,
            rows=self.rows,
            scores=self.scores,
        )
        registry.write_manifest(
            folder,
            "related",
            {"inputs": self.inputs, "width": self.width, "items": len(self.queries)},
        )

    @classmethod
    def load(cls, folder: Path) -> RelatedTable:
        manifest = registry.read_manifest(folder, "related")
        with np.load(folder / "related.npz", allow_pickle=False) as saved:
            return cls(
                [str(i) for i in saved["item_ids"]],
                saved["queries"],
                saved["rows"],
                saved["scores"],
                dict(manifest["inputs"]),
            )


def inputs_of(versions: Mapping[str, str | None]) -> dict[str, str | None]:
    """The versions among `versions` (see `registry.versions`) that a table depends on."""
    return {name: versions.get(name) for name in INPUTS}


def open_related_table(workdir: Path, versions: Mapping[str, str | None]) -> RelatedTable | None:
    """The published table, if it was computed over `versions` (read before the caller
    opened the artifacts it serves; see `still_current`); else None, and related items are
    computed per request. An unreadable table is left out with a warning: it only saves
    time."""
    folder = registry.current(workdir, "related")
    if folder is None:
        return None
    try:
        table = RelatedTable.load(folder)
    except (OSError, ValueError, KeyError) as exc:
        log.warning(
            "leaving out the related-items table %s (%s); run `tastegraph related-table`",
            folder,
            exc,
        )
        return None
    if table.inputs != inputs_of(versions):
        log.info(
            "the related-items table %s was computed over other artifacts (%s, served: %s); "
            "related items are computed per request until `tastegraph related-table` runs",
            folder.name,
            table.inputs,
            inputs_of(versions),
        )
        return None
    return table


def still_current(table: RelatedTable | None, workdir: Path) -> RelatedTable | None:
    """`table`, unless an artifact it depends on was published since its versions were
    read: call it after opening the artifacts to serve, which are then no newer than the
    table's inputs (a table left out here comes back with the next refresh)."""
    if table is not None and inputs_of(registry.versions(workdir)) != table.inputs:
        return None
    return table
