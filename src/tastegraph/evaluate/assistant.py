"""Offline evaluation of the shopping assistant: does reading item embeddings help the LM
choose what the shopper bought?

Split: purchases before the cut-off train; purchases after it by held-out shoppers test.
Every shopper who buys after the cut-off is held out: none of their purchases becomes a
training example (their earlier purchases still appear as their recent items, and still
train the fusion model, which sees only events before the cut-off).

Each test example is a purchase of an item with attributes: the shopper's recent items, a
request written from the bought item's attributes, and 8 candidates, the bought item among
7 hard negatives (see assistant/shopping.py). Methods, all on the same examples:
- ours: the LM reads our fused item embeddings through a projector aligned on item texts
  (stage 1, as `tastegraph train assistant` does) and then trained on stage 2;
- (a) text-only: the same LM reads the items as text (title, colour, type, product code;
  items without a text row: only their id and product code); its choice head (and LoRA,
  when asked) is trained the same way;
- (b) generic vision: the same LM and the same two stages, with the projector reading raw
  image-tower features instead of our embeddings;
- (c) cosine: no LM; candidates ranked by cosine to the shopper's recent items plus cosine
  to the request embedded by the text tower and the fusion model;
- (d) random;
- (e) keyword match, no LM: how many of a candidate's colour and type words the request
  names (ties broken at random), and (f) the same with ties broken by (c). The requests are
  written from the bought item's attributes, so (e) shows how far reading words goes, and
  (f) what taste adds on top of perfect word matching.
hit@1 and MRR with 95% intervals that resample shoppers; ratios are paired.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tastegraph.assistant.choice import choice_scores
from tastegraph.assistant.lm import ItemLM, lm_hidden_size
from tastegraph.assistant.projector import ItemProjector, ProjectorConfig
from tastegraph.assistant.shopping import (
    ExampleConfig,
    ItemReader,
    ItemTexts,
    ItemTokens,
    ShoppingConfig,
    ShoppingExample,
    build_examples,
    describe,
    hard_negatives,
    train_shopping,
)
from tastegraph.assistant.train import AlignConfig, TrainResult, train_alignment
from tastegraph.embeddings.fusion import FusionModel
from tastegraph.embeddings.job import fuse_table
from tastegraph.embeddings.table import FeatureTable
from tastegraph.embeddings.train import TrainConfig, train_fusion
from tastegraph.encoders import TextTower
from tastegraph.evaluate.recommend import (
    OURS,
    SplitConfig,
    TaskReport,
    period,
    task_report,
)
from tastegraph.graph.job import ItemDetails
from tastegraph.store import Event

log = logging.getLogger(__name__)

TEXT_ONLY = "(a) same LM, items as text"
GENERIC_VISION = "(b) projector on raw image features"
COSINE = "(c) cosine, no LM"
RANDOM = "(d) random"
KEYWORDS = "(e) keyword match, no LM"
KEYWORDS_THEN_COSINE = "(f) keyword match, ties by (c)"
_BATCH = 16


@dataclass
class AssistantEvalConfig(SplitConfig):
    train_examples: int = 800  # drawn at random from the training purchases
    test_examples: int | None = None  # None: every test purchase that makes an example
    tokens: int = 4  # soft tokens per item
    align_items: int = 1000  # stage 1 for the projectors, on items with text; 0 skips it
    align: AlignConfig = field(default_factory=AlignConfig)
    examples: ExampleConfig = field(default_factory=ExampleConfig)
    shopping: ShoppingConfig = field(default_factory=ShoppingConfig)
    fusion: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class AssistantReport:
    split: dict[str, str | int | float]
    choice: TaskReport
    training: dict[str, dict[str, float]]  # method -> steps, seconds, held-out losses


def evaluate_assistant(
    table: FeatureTable,
    events: Sequence[Event],
    details: dict[str, ItemDetails],
    item_texts: dict[str, str],
    lm_folder: Path,
    text_tower: TextTower,
    config: AssistantEvalConfig,
    *,
    show_progress: bool = True,
) -> AssistantReport:
    """item_texts: item id -> its words (encoders.item_text), the answers of stage 1."""
    train, in_test = config.partition(events)
    fusion = train_fusion(
        table, train, replace(config.fusion, cutoff=config.cutoff), show_progress=show_progress
    ).model
    fused = fuse_table(fusion, table)  # (N, d), trained on events before the cut-off only
    negatives = hard_negatives(table, details, config.examples)
    held_out = {e.user_id for e in in_test if e.action == "purchase"}
    visible = train + in_test
    training = build_examples(
        train,
        lambda e: e.user_id not in held_out,
        details,
        negatives,
        config.examples,
        config.train_examples,
    )
    testing = build_examples(
        visible,
        lambda e: e.ts >= config.cutoff and e.user_id in held_out,
        details,
        negatives,
        replace(config.examples, seed=config.examples.seed + 1),
        config.test_examples,
    )
    if len(training) <= config.shopping.holdout or not testing:
        raise ValueError(
            f"the split gives {len(training)} training and {len(testing)} test examples; "
            f"need more than {config.shopping.holdout} and at least one"
        )
    log.info("assistant eval: %d training, %d test examples", len(training), len(testing))
    hidden = lm_hidden_size(lm_folder)

    def fresh_lm(embed_dim: int) -> ItemLM:
        """The LM as loaded, with a new projector (LoRA changes the LM it trains)."""
        torch.manual_seed(config.seed)  # the projector's and the choice head's start
        return ItemLM.load(
            lm_folder, ItemProjector(ProjectorConfig(embed_dim, hidden, config.tokens))
        )

    readers: dict[str, ItemReader] = {
        OURS: ItemTokens(fresh_lm(fused.shape[1]), table.item_ids, fused),
        TEXT_ONLY: ItemTexts(fresh_lm(fused.shape[1]), details, config.examples),
        GENERIC_VISION: ItemTokens(fresh_lm(table.image.shape[1]), table.item_ids, table.image),
    }
    item_vectors = {OURS: fused, GENERIC_VISION: table.image}
    aligned_rows = alignment_rows(table, item_texts, config.align_items, config.seed)
    scores: dict[str, np.ndarray] = {}
    trained: dict[str, dict[str, float]] = {}
    for name, reader in readers.items():
        figures = {}
        with tempfile.TemporaryDirectory() as checkpoints:
            if name in item_vectors and len(aligned_rows):
                texts = [item_texts[table.item_ids[row]] for row in aligned_rows]
                align = replace(config.align, holdout=min(config.align.holdout, len(texts) // 5))
                stage1 = train_alignment(
                    reader.lm,
                    item_vectors[name][aligned_rows],
                    texts,
                    Path(checkpoints) / "alignment",
                    align,
                    show_progress,
                )
                figures["stage-1 seconds"] = stage1.seconds
            result = train_shopping(
                reader, training, Path(checkpoints) / "shopping", config.shopping, show_progress
            )
        trained[name] = {**_training_figures(result), "stage-1 seconds": 0.0, **figures}
        scores[name] = lm_scores(reader, testing, show_progress)
        del reader.lm.model  # one LM in memory at a time is enough
    scores[COSINE] = cosine_scores(table, fused, fusion_text(fusion, text_tower), testing)
    scores[RANDOM] = np.random.default_rng(config.seed).random(
        (len(testing), config.examples.candidates)
    )
    keywords = keyword_scores(details, config.examples, testing)
    # Below one keyword: the tie-breakers only order candidates that name as many words.
    scores[KEYWORDS] = keywords + 0.5 * scores[RANDOM]
    scores[KEYWORDS_THEN_COSINE] = keywords + 0.2 * scores[COSINE]
    ranks = {name: answer_ranks(s, testing) for name, s in scores.items()}
    values = {
        name: {"hit@1": (r == 1).astype(np.float64), "MRR": 1.0 / r} for name, r in ranks.items()
    }
    users = np.array([e.user_id for e in testing])
    split: dict[str, str | int | float] = {
        "name": config.split,
        **period(config.cutoff, config.end),
        "training_examples": len(training),
        "test_examples": len(testing),
        "held_out_shoppers": len(set(users.tolist())),
        "candidates": config.examples.candidates,
    }
    order = [OURS, TEXT_ONLY, GENERIC_VISION, COSINE, RANDOM, KEYWORDS, KEYWORDS_THEN_COSINE]
    values = {name: values[name] for name in order}
    choice = task_report(values, users, "shoppers", "hit@1", {}, config.resamples, config.seed)
    return AssistantReport(split, choice, trained)


def alignment_rows(
    table: FeatureTable, item_texts: dict[str, str], n: int, seed: int
) -> np.ndarray:
    """Up to n table rows of items with text, drawn at random: stage 1's items."""
    rows = [row for row, item_id in enumerate(table.item_ids) if item_texts.get(item_id)]
    drawn = np.random.default_rng(seed).permutation(rows)[:n]
    return np.sort(drawn).astype(np.int64)


def _training_figures(result: TrainResult) -> dict[str, float]:
    return {
        "examples": float(result.examples),
        "steps": float(result.steps),
        "seconds": result.seconds,
        "held-out loss before": result.heldout_loss_before,
        "held-out loss after": result.heldout_loss_after,
    }


def lm_scores(
    reader: ItemReader, examples: Sequence[ShoppingExample], show_progress: bool
) -> np.ndarray:
    """(Q, n) the LM's choice scores for every example."""
    out = []
    batches = range(0, len(examples), _BATCH)
    for start in tqdm(batches, desc="scoring", disable=not show_progress):
        prompts, items = reader.batch(examples[start : start + _BATCH])
        with torch.inference_mode():
            out.append(choice_scores(reader.lm, prompts, items).float().numpy())
    return np.concatenate(out)


def fusion_text(fusion: FusionModel, tower: TextTower) -> Callable[[list[str]], np.ndarray]:
    """Texts -> (Q, d) unit vectors in the item space (text tower, fusion text head)."""

    def encode(texts: list[str]) -> np.ndarray:
        features = torch.from_numpy(tower.encode(texts))
        with torch.inference_mode():
            vectors: np.ndarray = fusion.embed_texts(features).numpy()
        return vectors

    return encode


def cosine_scores(
    table: FeatureTable,
    vectors: np.ndarray,
    encode_text: Callable[[list[str]], np.ndarray],
    examples: Sequence[ShoppingExample],
) -> np.ndarray:
    """(Q, n) cosine of each candidate to the mean of the recent items plus cosine to the
    request (baseline c)."""
    row = table.index()
    requests = encode_text([e.request for e in examples])
    scores = np.zeros((len(examples), len(examples[0].candidates)))
    for q, example in enumerate(examples):
        taste = vectors[[row[i] for i in example.recent]].mean(axis=0)
        taste /= max(float(np.linalg.norm(taste)), 1e-12)
        candidates = vectors[[row[i] for i in example.candidates]]
        scores[q] = candidates @ taste + candidates @ requests[q]
    return scores


def keyword_scores(
    details: dict[str, ItemDetails], config: ExampleConfig, examples: Sequence[ShoppingExample]
) -> np.ndarray:
    """(Q, n) how many of each candidate's colour and type, as words, its request names."""
    scores = np.zeros((len(examples), len(examples[0].candidates)))
    for q, example in enumerate(examples):
        request = example.request.lower()
        for i, item_id in enumerate(example.candidates):
            words = describe(details.get(item_id), config) or ()
            scores[q, i] = sum(word in request for word in words)
    return scores


def answer_ranks(scores: np.ndarray, examples: Sequence[ShoppingExample]) -> np.ndarray:
    """(Q,) 1-based rank of the bought item; ties count against it."""
    answers = np.array([e.answer for e in examples])
    mine = scores[np.arange(len(examples)), answers][:, None]
    ranks: np.ndarray = (scores >= mine).sum(axis=1).astype(np.float64)
    return ranks
