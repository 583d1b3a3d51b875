"""The taste graph: items linked to the collections and users that engaged with them.

Edges are weighted by action (purchase > save > click > view; a hide takes weight away) and
decayed by age, so the graph reflects current taste. Stored as a sparse item x node matrix
(nodes are collections and users), the bipartite graph that Pixie-style walks traverse.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tastegraph import registry
from tastegraph.config import default_action_weights
from tastegraph.store import Event

DAY_S = 86_400.0


@dataclass(frozen=True)
class GraphConfig:
    # Edge weight of each action; a hide is negative and takes weight off the edge.
    action_weights: dict[str, float] = field(default_factory=default_action_weights)
    # An edge's weight halves every half_life_days before the graph's `now`.
    half_life_days: float = 30.0
    # Link items through the users who engaged with them, not only through collections.
    # User nodes make walks wander across a user's whole history; their weight is scaled
    # by user_weight relative to collection edges.
    user_weight: float = 0.5

    def __post_init__(self) -> None:
        if not (self.half_life_days > 0 and math.isfinite(self.half_life_days)):
            raise ValueError(f"half_life_days must be positive, got {self.half_life_days}")
        if self.user_weight < 0:
            raise ValueError(f"user_weight must be at least 0, got {self.user_weight}")

    def edge_weight(self, event: Event, now: float) -> float:
        age_s = max(now - event.ts, 0.0)
        return float(
            self.action_weights[event.action] * 0.5 ** (age_s / (self.half_life_days * DAY_S))
        )


def graph_root(workdir: Path) -> Path:
    return registry.root(workdir, "graph")


def read_graph_json(folder: Path, name: str) -> Any:
    """One JSON file of a published graph version; a version written before the file
    existed asks for a rebuild."""
    path = folder / name
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing (a graph built by an older version); run `tastegraph graph`"
        )
    return json.loads(path.read_text())


class TasteGraph:
    """Items (rows, aligned with `item_ids`) x nodes (collections and users)."""

    def __init__(
        self,
        item_ids: Sequence[str],
        node_ids: Sequence[str],
        edges: sp.csr_matrix,
        config: GraphConfig,
        now: float,
    ) -> None:
        if edges.shape != (len(item_ids), len(node_ids)):
            raise ValueError(
                f"edges are {edges.shape}, expected ({len(item_ids)}, {len(node_ids)})"
            )
        self.item_ids = list(item_ids)
        self.node_ids = list(node_ids)
        self.config = config
        self.now = now
        self.item_to_node: sp.csr_matrix = edges.tocsr()  # (N items, M nodes)
        self.node_to_item: sp.csr_matrix = edges.T.tocsr()  # (M nodes, N items)
        self.rows = {item_id: row for row, item_id in enumerate(self.item_ids)}

    @classmethod
    def build(
        cls,
        events: Iterable[Event],
        item_ids: Sequence[str],
        config: GraphConfig | None = None,
        now: float | None = None,
    ) -> TasteGraph:
        """The graph of every event before `now` (default: the latest event) on a known item.

        An (item, node) pair's weight is the sum of its events' decayed weights; pairs whose
        sum is not positive (hidden more than engaged) have no edge."""
        config = config or GraphConfig()
        rows = {item_id: row for row, item_id in enumerate(item_ids)}
        kept = [e for e in events if e.item_id in rows and (now is None or e.ts < now)]
        now = now if now is not None else max((e.ts for e in kept), default=0.0)
        weights: dict[tuple[int, str], float] = defaultdict(float)
        for event in kept:
            weight = config.edge_weight(event, now)
            row = rows[event.item_id]
            if event.collection_id is not None:
                weights[(row, f"c:{event.collection_id}")] += weight
            if config.user_weight > 0:
                weights[(row, f"u:{event.user_id}")] += weight * config.user_weight
        positive = {pair: w for pair, w in weights.items() if w > 0}
        node_ids = sorted({node for _, node in positive})
        columns = {node: col for col, node in enumerate(node_ids)}
        edges = sp.csr_matrix(
            (
                np.fromiter(positive.values(), dtype=np.float64, count=len(positive)),
                (
                    np.fromiter((r for r, _ in positive), dtype=np.int64, count=len(positive)),
                    np.fromiter(
                        (columns[n] for _, n in positive), dtype=np.int64, count=len(positive)
                    ),
                ),
            ),
            shape=(len(item_ids), len(node_ids)),
        )
        return cls(item_ids, node_ids, edges, config, now)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def degree(self) -> np.ndarray:
        """(N,) number of nodes each item is linked to; 0 for items nobody engaged with."""
        return np.diff(self.item_to_node.indptr)

    def row_of(self, item_ids: Iterable[str]) -> np.ndarray:
        """Rows of the given items that are in the graph, in order; unknown ids are skipped."""
        return np.array([self.rows[i] for i in item_ids if i in self.rows], dtype=np.int64)

    def publish(
        self,
        workdir: Path,
        extra: Mapping[str, Any] | None = None,
        also: Callable[[Path], None] | None = None,
    ) -> Path:
        """Write a new version under workdir/graph, with whatever `also` writes beside the
        graph (interests, popular items), and make it current."""

        def write(folder: Path) -> None:
            self._write(folder, extra)
            if also is not None:
                also(folder)

        return registry.publish(workdir, "graph", write)

    @classmethod
    def open(cls, workdir: Path) -> TasteGraph:
        folder = registry.current(workdir, "graph")
        if folder is None:
            raise FileNotFoundError(f"no taste graph in {workdir}; run `tastegraph graph`")
        return cls.load(folder)

    @classmethod
    def load(cls, folder: Path) -> TasteGraph:
        manifest = registry.read_manifest(folder, "graph")
        ids = json.loads((folder / "ids.json").read_text())
        with np.load(folder / "edges.npz", allow_pickle=False) as saved:
            edges = sp.csr_matrix(
                (saved["data"], saved["indices"], saved["indptr"]),
                shape=(len(ids["items"]), len(ids["nodes"])),
            )
        config = GraphConfig(**manifest["config"])
        return cls(ids["items"], ids["nodes"], edges, config, manifest["now"])

    def _write(self, folder: Path, extra: Mapping[str, Any] | None) -> None:
        edges = self.item_to_node
        np.savez(folder / "edges.npz", data=edges.data, indices=edges.indices, indptr=edges.indptr)
        (folder / "ids.json").write_text(
            json.dumps({"items": self.item_ids, "nodes": self.node_ids})
        )
        manifest = {
            "now": self.now,
            "config": asdict(self.config),
            "items": len(self.item_ids),
            "nodes": len(self.node_ids),
            "edges": int(edges.nnz),
        } | dict(extra or {})
        registry.write_manifest(folder, "graph", manifest)
