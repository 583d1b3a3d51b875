"""Quality of the item embeddings on held-out data, against the raw towers.

1. Text -> image retrieval: items with text held out of training entirely; for each, find
   its photo from its text among all held-out photos (recall@10). Baseline: the raw towers
   joined by a least-squares linear map from text to image features, fitted on the
   training items.
2. Basket completion: baskets after the cut-off (training saw only events before it); one
   item of a basket is the query, the rest are the targets, every item is a candidate
   (recall@20). Compared: the fused taste-trained embedding, the same model after the
   content stage only, raw image features, raw text features, variants of the same product
   ranked by raw image cosine, and most-popular items.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import torch

from tastegraph.embeddings.fusion import FusionModel
from tastegraph.embeddings.job import fuse_table
from tastegraph.embeddings.table import FeatureTable
from tastegraph.embeddings.train import TrainConfig, train_fusion
from tastegraph.evaluate.baselines import cosine_scorer, same_product_then_cosine, unit_rows
from tastegraph.evaluate.metrics import Estimate, bootstrap, recall_at_k, top_k
from tastegraph.evaluate.split import WEEK, test_cutoff
from tastegraph.store import Event

OURS = "fused, taste-trained"


@dataclass
class EvalConfig:
    holdout_items: int = 1000  # items with text kept out of training, for text -> image
    test_weeks: float = 8.0  # baskets in the last weeks of the log are the test split
    cutoff: float | None = None  # or: the test split starts here (unix seconds)
    retrieval_k: int = 10
    basket_k: int = 20
    seed: int = 0
    # Measure on the validation split instead: the test weeks and test items are dropped,
    # and the same protocol runs on what is left. Tune here, never on the test split.
    validation: bool = False


@dataclass
class EmbeddingReport:
    split: dict[str, str | int]
    text_to_image_recall_at_10: dict[str, Estimate]
    basket_recall_at_20: dict[str, Estimate]
    # Per basket, the taste-trained embedding's recall minus each baseline's.
    basket_recall_gain_over: dict[str, Estimate]


def _hits(queries: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """1.0 where query i finds candidate i in its top k."""
    ranked = top_k(queries @ candidates.T, k)
    hits: np.ndarray = (ranked == np.arange(len(queries))[:, None]).any(axis=1)
    return hits.astype(np.float64)


def text_to_image(
    table: FeatureTable, model: FusionModel, holdout: np.ndarray, train_rows: np.ndarray, k: int
) -> dict[str, Estimate]:
    with torch.inference_mode():
        image, text, _, _ = table.tensors(holdout)
        ours = _hits(model.embed_texts(text).numpy(), model.embed_images(image).numpy(), k)
    mapping, *_ = np.linalg.lstsq(table.text[train_rows], table.image[train_rows], rcond=None)
    mapped = unit_rows(table.text[holdout] @ mapping)
    baseline = _hits(mapped, unit_rows(table.image[holdout]), k)
    chance = np.full(len(holdout), min(k, len(holdout)) / len(holdout))
    return {
        "fusion model": bootstrap(ours),
        "raw towers + least-squares map": bootstrap(baseline),
        "chance": bootstrap(chance),
    }


def _products(table: FeatureTable) -> list[str]:
    """The product of each row: its variant group, or the item itself when it has none."""
    return [
        p if p is not None else f"item:{i}"
        for p, i in zip(table.variant_of, table.item_ids, strict=True)
    ]


def _hold_out_products(
    products: list[str],
    candidates: np.ndarray,
    size: int,
    rng: np.random.Generator,
    taken: frozenset[str],
) -> tuple[np.ndarray, frozenset[str]]:
    """Whole products drawn at random until they hold `size` candidate rows, so no colour
    variant of a held-out item is seen in training. Returns the held-out candidate rows
    (sorted) and the products held out; products in `taken` are never drawn."""
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row in candidates.tolist():
        if products[row] not in taken:
            rows_of[products[row]].append(row)
    names = list(rows_of)
    chosen: list[str] = []
    rows: list[int] = []
    for index in rng.permutation(len(names)):
        if len(rows) >= size:
            break
        product = names[index]
        chosen.append(product)
        rows += rows_of[product]
    return np.array(sorted(rows[:size])), frozenset(chosen)


def held_out_baskets(
    events: Sequence[Event], index: dict[str, int], cutoff: float
) -> list[list[int]]:
    """Rows of the distinct items of each basket at or after the cut-off (two items or more)."""
    baskets: dict[str, set[int]] = defaultdict(set)
    for event in events:
        if event.ts >= cutoff and event.collection_id and event.item_id in index:
            baskets[event.collection_id].add(index[event.item_id])
    return [sorted(rows) for _, rows in sorted(baskets.items()) if len(rows) >= 2]


def basket_completion(
    baskets: list[list[int]], score: Callable[[np.ndarray], np.ndarray], k: int
) -> np.ndarray:
    """(len(baskets),) recall@k of the other items of a basket from each of its items,
    averaged per basket (the unit the confidence intervals resample)."""
    queries = [(b, q) for b, rows in enumerate(baskets) for q in rows]
    per_basket: dict[int, list[float]] = defaultdict(list)
    for start in range(0, len(queries), 512):
        chunk = queries[start : start + 512]
        query_rows = np.array([q for _, q in chunk])
        scores = score(query_rows)
        scores[np.arange(len(chunk)), query_rows] = -np.inf  # never recommend the query itself
        relevant = [set(baskets[b]) - {q} for b, q in chunk]
        for (b, _), recall in zip(chunk, recall_at_k(top_k(scores, k), relevant), strict=True):
            per_basket[b].append(recall)
    return np.array([np.mean(per_basket[b]) for b in range(len(baskets))])


def evaluate_embeddings(
    table: FeatureTable,
    events: Sequence[Event],
    train_config: TrainConfig,
    config: EvalConfig,
    show_progress: bool = True,
) -> EmbeddingReport:
    """Train on the training split only, then measure both tasks on the held-out data."""
    rng = np.random.default_rng(config.seed)
    both = np.flatnonzero(table.has_image & table.has_text)
    if len(both) < 6 or not events:
        raise ValueError("evaluation needs at least 6 items with photo and text, and events")
    size = min(config.holdout_items, len(both) // 3)
    products = _products(table)
    holdout, held = _hold_out_products(products, both, size, rng, frozenset())
    cutoff = test_cutoff(events, config.test_weeks) if config.cutoff is None else config.cutoff
    if config.validation:
        events = [e for e in events if e.ts < cutoff]
        cutoff -= config.test_weeks * WEEK
        holdout, held_too = _hold_out_products(products, both, size, rng, held)
        held |= held_too
    index = table.index()
    baskets = held_out_baskets(events, index, cutoff)
    if not baskets:
        raise ValueError(
            f"no basket of two or more items after the cut-off "
            f"{datetime.fromtimestamp(cutoff, UTC).isoformat()}; set the cut-off (--cutoff) "
            "if the log ends with a few live events after the historical ones"
        )
    train_rows = np.array([row for row in both if products[row] not in held])
    held_items = frozenset(table.item_ids[row] for row, p in enumerate(products) if p in held)
    trained = dataclasses.replace(train_config, cutoff=cutoff)
    content_only = dataclasses.replace(trained, taste_epochs=0)
    model = train_fusion(
        table, events, trained, holdout=held_items, show_progress=show_progress
    ).model
    content = train_fusion(
        table, events, content_only, holdout=held_items, show_progress=show_progress
    ).model

    popular = Counter(index[e.item_id] for e in events if e.ts < cutoff and e.item_id in index)
    popularity = np.zeros(len(table), dtype=np.float32)
    for row, count in popular.items():
        popularity[row] = count
    scorers = {
        OURS: cosine_scorer(fuse_table(model, table)),
        "fused, content stage only": cosine_scorer(fuse_table(content, table)),
        "raw image features": cosine_scorer(table.image),
        "raw text features": cosine_scorer(table.text),
        "same product, then raw image cosine": same_product_then_cosine(
            table.variant_of, table.image
        ),
        "most popular before cut-off": lambda rows: np.tile(popularity, (len(rows), 1)),
    }
    split = {
        "name": "validation" if config.validation else "test",
        "cutoff": datetime.fromtimestamp(cutoff, UTC).isoformat(),
        "holdout_items": len(holdout),
        "test_baskets": len(baskets),
    }
    recalls = {
        name: basket_completion(baskets, score, config.basket_k) for name, score in scorers.items()
    }
    ours = recalls.pop(OURS)
    return EmbeddingReport(
        split,
        text_to_image(table, model, holdout, train_rows, config.retrieval_k),
        {OURS: bootstrap(ours)} | {name: bootstrap(r) for name, r in recalls.items()},
        # Same baskets, same resamples (same seed and length): paired differences.
        {name: bootstrap(ours - r) for name, r in recalls.items()},
    )
