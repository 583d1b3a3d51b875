"""Graph-aware item embeddings (PinSage-style): an item's content embedding plus a learned
transform of its most important graph neighbours' embeddings.

Neighbours and their importance come from random walks: the items a walk from the item
visits most, weighted by visit counts. The transform is trained so that an item's
graph-aware embedding lands near the content embeddings of items engaged with it *later*:
neighbourhoods come from the graph before a split time, positives from the weeks after it,
which is the task the embedding serves (complete a basket with items not bought yet).
Items nobody engaged with have no neighbours and keep their content embedding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from tastegraph.embeddings.pairs import co_engaged_pairs
from tastegraph.graph.graph import DAY_S, GraphConfig, TasteGraph
from tastegraph.graph.walk import RandomWalker, WalkConfig
from tastegraph.store import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SageConfig:
    neighbours: int = 10  # most visited items kept per item
    walkers: int = 100  # walks per item that find its neighbours
    walk_steps: int = 5
    # Positives are pairs engaged together in the last `future_days` before the graph's
    # time; neighbourhoods for training come from the graph before that window.
    future_days: float = 28.0
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    temperature: float = 0.07
    seed: int = 0


def neighbourhoods(graph: TasteGraph, vectors: np.ndarray, config: SageConfig) -> np.ndarray:
    """(N, d) importance-weighted mean of each item's top neighbours' vectors (rows aligned
    with the graph's items); zeros for items without neighbours."""
    out = np.zeros_like(vectors)
    engaged = np.flatnonzero(graph.degree > 0)
    walker = RandomWalker(graph, WalkConfig(walkers=config.walkers, steps=config.walk_steps))
    for start in range(0, len(engaged), 4096):
        rows = engaged[start : start + 4096]
        visits = walker.visits(rows)  # (R, N) sparse
        for i, row in enumerate(rows):
            begin, end = visits.indptr[i], visits.indptr[i + 1]
            if begin == end:
                continue
            counts, items = visits.data[begin:end], visits.indices[begin:end]
            top = np.argsort(-counts, kind="stable")[: config.neighbours]
            out[row] = (counts[top] / counts[top].sum()) @ vectors[items[top]]
    return out


class GraphAggregator(nn.Module):
    """h = normalise(own + W neighbours); W starts at zero, so h starts as the content."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.transform = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.transform.weight)

    def forward(self, own: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        return F.normalize(own + self.transform(neighbours), dim=-1)  # (B, d)


def train_aggregator(
    events: Sequence[Event],
    item_ids: Sequence[str],
    vectors: np.ndarray,
    now: float,
    graph_config: GraphConfig | None = None,
    config: SageConfig | None = None,
    show_progress: bool = False,
) -> GraphAggregator:
    """Learn W from events before `now`: neighbourhoods from the graph before the last
    future_days, positives (query, later co-engaged item) from those days."""
    config = config or SageConfig()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    split = now - config.future_days * DAY_S
    past = TasteGraph.build(events, item_ids, graph_config, now=split)
    index = {item_id: row for row, item_id in enumerate(item_ids)}
    recent = [e for e in events if split <= e.ts < now]
    pairs = co_engaged_pairs(recent, index, seed=config.seed)
    pairs = np.concatenate([pairs, pairs[:, ::-1]])  # both directions
    pairs = pairs[past.degree[pairs[:, 0]] > 0]  # the query needs a past neighbourhood
    model = GraphAggregator(vectors.shape[1])
    if len(pairs) < 2:
        log.warning("no later co-engagement to train the graph aggregator on; it stays off")
        return model
    own = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    around = torch.from_numpy(neighbourhoods(past, vectors, config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    epochs = tqdm(range(config.epochs), desc="training graph aggregator", disable=not show_progress)
    for _ in epochs:
        losses = []
        for start in range(0, len(pairs), config.batch_size):
            batch = pairs[rng.permutation(len(pairs))[start : start + config.batch_size]]
            queries = model(own[batch[:, 0]], around[batch[:, 0]])  # (B, d)
            targets = own[batch[:, 1]]  # (B, d): the later items, as content
            logits = queries @ targets.T / config.temperature
            loss = F.cross_entropy(logits, torch.arange(len(batch)))
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.item())
        epochs.set_postfix(loss=f"{np.mean(losses):.3f}")
    log.info("graph aggregator trained on %d later co-engaged pairs", len(pairs))
    return model


def graph_aware_embeddings(
    model: GraphAggregator, graph: TasteGraph, vectors: np.ndarray, config: SageConfig | None = None
) -> np.ndarray:
    """(N, d) float32, L2-normalised: each item's embedding with its neighbourhood in
    `graph`; items without neighbours keep their content embedding."""
    around = neighbourhoods(graph, vectors, config or SageConfig())
    with torch.inference_mode():
        out = model(
            torch.from_numpy(np.ascontiguousarray(vectors, np.float32)), torch.from_numpy(around)
        )
    result: np.ndarray = out.numpy()
    lonely = ~np.any(around != 0, axis=1)
    result[lonely] = vectors[lonely]
    return result
