"""Offline evaluation of the shopping assistant: does reading item embeddings help the LM
choose what the shopper bought, above all where text cannot tell?

Split: purchases before the cut-off train; purchases after it by held-out shoppers test.
Every shopper who buys in the test weeks is held out: none of their purchases becomes a
training example (their earlier purchases still appear as their recent items, and still
train the fusion model, which sees only events before the cut-off).

Each query is one real purchase in the test weeks, asked in one of three families (see
assistant/shopping.py): "for me" (history only; photo-only targets included), "attribute"
(a request written from the target's colour and type) and "like this, but" (a reference
from the shopper's history, another colour named). Candidates: the target at a random label
among negatives drawn at random from the items someone bought in the test weeks, in the
target's slice (text or photo-only) and category. Methods, all on the same queries:
- ours: the LM reads each item as its tokens (our fused embedding through the projector)
  followed by its text line when it has one; stage 1 aligns the projector on item texts
  as `tastegraph train assistant` does (look first, half by the photo alone, the warm
  start), stage 2 trains it and the choice head on training purchases of every family. The head
  also weighs each candidate's cosine to the shopper's items and to the request (through
  the text tower and fusion text head), with learned scales (assistant/head.py);
- tokens_only: the same, items as tokens alone;
- text: the same LM reading items as text (a photo-only item: its id and product), its
  choice head trained the same way;
- generic_vision: ours' layout and training with the projector on raw image-tower features
  (the generic vision path); its head weighs the cosine to the shopper's items in that
  space, and none to the request: raw image features have no text side;
- cosine: no LM; the sum of the two cosines ours' head weighs;
- random; keyword: how many of a candidate's colour and type words the request names;
- off_the_shelf: the untrained LM reading text, its pick read from its next-token scores
  for the labels (up to 9 candidates, where each label is one token).
Slices: targets with text or photo-only; warm (bought by someone before the cut-off) or
cold. Where text cannot tell: every query whose items all have a photo is asked again with
the text hidden (families "..., text hidden"): each item is read as a photo-only item is,
by the embedding of its photo alone and no text line (the text method: its id and
product), with no retraining; cosine reads the photo embeddings, and keyword has no words.
hit@1 and MRR with 95% intervals that resample shoppers; ratios are ours over each
method, paired on the same resamples.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tastegraph.assistant.choice import (
    REFERENCE,
    ItemView,
    Layout,
    TextLookup,
    affinity,
    choice_scores,
    has_text,
    item_line,
    label_id,
    matrix_lookup,
    pad_id,
    padded,
    plain_request,
)
from tastegraph.assistant.describe import look_phrase
from tastegraph.assistant.facts import Catalog
from tastegraph.assistant.lm import ItemLM, lm_hidden_size
from tastegraph.assistant.projector import ItemProjector, ProjectorConfig
from tastegraph.assistant.shopping import (
    FAMILIES,
    CandidatePool,
    ExampleConfig,
    ShoppingConfig,
    ShoppingExample,
    build_examples,
    looks,
    train_shopping,
)
from tastegraph.assistant.train import (
    AlignConfig,
    TrainResult,
    align_projector,
    look_then_text,
    stage1_vectors,
)
from tastegraph.embeddings.fusion import FusionModel
from tastegraph.embeddings.job import embed_photos, fuse_table
from tastegraph.embeddings.table import FeatureTable
from tastegraph.embeddings.train import TrainConfig, train_fusion
from tastegraph.encoders import TextTower
from tastegraph.evaluate.metrics import Estimate, clustered_bootstrap
from tastegraph.evaluate.recommend import period
from tastegraph.evaluate.split import SplitConfig
from tastegraph.store import Event

log = logging.getLogger(__name__)

OURS = "ours"
# method -> (layout, item vectors: "fused" or "image"); stage 2 trains each
TRAINED: dict[str, tuple[Layout, str | None]] = {
    OURS: ("tokens_text", "fused"),
    "tokens_only": ("tokens", "fused"),
    "text": ("text", None),
    "generic_vision": ("tokens_text", "image"),
}
METHODS = (*TRAINED, "cosine", "random", "keyword", "off_the_shelf")
SLICES = ("all", "text", "photo_only", "warm", "cold")
_BATCH = 16


@dataclass
class AssistantEvalConfig(SplitConfig):
    train_examples: int = 600  # stage-2 examples, split evenly over the families
    queries_per_family: int = 350  # test queries drawn per family (CIs of about ±0.05)
    tokens: int = 4  # soft tokens per item
    align_items: int = 8000  # stage 1 for the projectors, on items with text; 0 skips it
    align: AlignConfig = field(default_factory=AlignConfig)
    examples: ExampleConfig = field(default_factory=ExampleConfig)
    shopping: ShoppingConfig = field(default_factory=ShoppingConfig)
    fusion: TrainConfig = field(default_factory=TrainConfig)
    methods: tuple[str, ...] = METHODS  # ours always runs; fewer LM methods cost less

    def __post_init__(self) -> None:
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; choose from {list(METHODS)}")
        if OURS not in self.methods:
            self.methods = (OURS, *self.methods)


@dataclass
class SliceReport:
    queries: int
    methods: dict[str, dict[str, Estimate]]  # method -> "hit1" / "mrr" -> estimate
    ratios: dict[str, Estimate]  # ours over each other method, hit@1, paired


@dataclass
class AssistantReport:
    split: dict[str, str | int | float]
    candidates: int
    families: dict[str, dict[str, SliceReport]]  # family ("all" too) -> slice -> report
    by_position: dict[str, list[float]]  # method -> hit@1 by the target's label, all queries
    training: dict[str, dict[str, float]]  # method -> steps, seconds, held-out losses


def evaluate_assistant(
    table: FeatureTable,
    events: Sequence[Event],
    catalog: Catalog,
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
    vectors = {"fused": fuse_table(fusion, table), "image": table.image}
    # What stage 1 reads of an item by its photo alone (assistant/train.py): raw image
    # features are that already; NaN rows have no photo.
    photo_only = np.where(table.has_image[:, None], embed_photos(fusion, table.image), np.nan)
    photos = {"fused": photo_only, "image": table.image}
    encode_request = fusion_text(fusion, text_tower)
    requests = cache(lambda text: encode_request([text])[0])
    training, testing = split_examples(train, in_test, catalog, config)
    log.info("assistant eval: %d training, %d test queries", len(training), len(testing))

    text_hidden_queries = readable_by_photo(testing, table)
    scores: dict[str, np.ndarray] = {}
    text_hidden_scores: dict[str, np.ndarray] = {}  # method -> scores of text_hidden_queries
    trained: dict[str, dict[str, float]] = {}
    aligned = alignment_rows(table, item_texts, config.align_items, config.seed)
    stage_one: dict[str, tuple[dict[str, torch.Tensor], float]] = {}  # vectors -> weights, s
    for name, (layout, source) in TRAINED.items():
        if name not in config.methods:
            continue
        lm = fresh_lm(lm_folder, vectors[source or "fused"].shape[1], config)
        figures = {"stage-1 seconds": 0.0}
        with tempfile.TemporaryDirectory() as checkpoints:
            if source is not None and len(aligned):
                if source not in stage_one:
                    texts = [stage1_answer(catalog, item_texts, table.item_ids[r]) for r in aligned]
                    read = stage1_vectors(
                        vectors[source][aligned], photos[source][aligned], config.align.seed
                    )
                    aligned_result = align_projector(
                        lm,
                        read,
                        texts,
                        Path(checkpoints) / "alignment",
                        config.align,
                        show_progress,
                    )
                    seconds = aligned_result.seconds + (
                        aligned_result.lm.seconds if aligned_result.lm else 0.0
                    )
                    stage_one[source] = (lm.projector.state_dict(), seconds)
                weights, seconds = stage_one[source]
                lm.projector.load_state_dict(weights)  # tokens_only goes on from ours' stage 1
                figures["stage-1 seconds"] = seconds
            lookup = matrix_lookup(table.item_ids, vectors[source]) if source else None
            reader = ItemView(lm, layout, catalog, lookup, requests if source == "fused" else None)
            result = train_shopping(
                reader, training, Path(checkpoints) / "shopping", config.shopping, show_progress
            )
        trained[name] = {**training_figures(result), **figures}
        scores[name] = lm_scores(reader, testing, show_progress)
        if text_hidden_queries:
            by_photo = matrix_lookup(table.item_ids, photos[source]) if source else None
            hidden_view = replace(reader, vectors=by_photo, hide_text=True)
            text_hidden_scores[name] = lm_scores(hidden_view, text_hidden_queries, show_progress)
        del lm.model  # one LM in memory at a time is enough
    scores |= untrained_scores(table, vectors["fused"], requests, catalog, testing, config)
    if text_hidden_queries:  # no keyword: with the text hidden there are no words to match
        text_hidden_scores |= untrained_scores(
            table, photos["fused"], requests, catalog, text_hidden_queries, config, keyword=False
        )
    scores |= off_the_shelf_scores(lm_folder, catalog, testing, config, show_progress)
    ranks = {name: answer_ranks(s, testing) for name, s in scores.items()}
    split: dict[str, str | int | float] = {
        "name": config.split,
        **period(config.cutoff, config.end),
        "training_examples": len(training),
        "test_queries": len(testing),
        "held_out_shoppers": len({e.user_id for e in testing}),
    }
    cold = {e.item_id for e in train if e.action == "purchase"}
    slices = query_slices(testing, catalog, cold)
    families = family_reports(ranks, testing, slices, config)
    if text_hidden_queries:
        text_hidden_ranks = {
            name: answer_ranks(s, text_hidden_queries) for name, s in text_hidden_scores.items()
        }
        everything = {"all": np.ones(len(text_hidden_queries), dtype=bool)}
        hidden = family_reports(text_hidden_ranks, text_hidden_queries, everything, config)
        families |= {f"{family}, text hidden": report for family, report in hidden.items()}
    return AssistantReport(
        split,
        config.examples.candidates,
        families,
        hit_by_position(ranks, testing, config.examples.candidates),
        trained,
    )


def readable_by_photo(
    examples: Sequence[ShoppingExample], table: FeatureTable
) -> list[ShoppingExample]:
    """The queries every item of which (recent, reference, history, candidates) has a
    photo: those that can be asked again with the text hidden, every item read by its
    photo alone, as a catalog without text would be."""
    with_photo = {i for i, has in zip(table.item_ids, table.has_image, strict=True) if has}

    def readable(e: ShoppingExample) -> bool:
        items = {*e.recent, *e.history, *e.candidates, *([e.reference] if e.reference else [])}
        return items <= with_photo

    return [e for e in examples if readable(e)]


def untrained_scores(
    table: FeatureTable,
    vectors: np.ndarray,
    requests: TextLookup,
    catalog: Catalog,
    testing: Sequence[ShoppingExample],
    config: AssistantEvalConfig,
    keyword: bool = True,
) -> dict[str, np.ndarray]:
    """The cosine, random and keyword methods' scores, those of them asked for."""
    noise = np.random.default_rng(config.seed).random((len(testing), config.examples.candidates))
    scores = {}
    if "cosine" in config.methods:
        scores["cosine"] = cosine_scores(table, vectors, requests, testing)
    scores["random"] = noise
    if keyword and "keyword" in config.methods:
        # Below one keyword: random tie-breaks only order candidates naming as many words.
        scores["keyword"] = keyword_scores(catalog, testing) + 0.5 * noise
    return {name: values for name, values in scores.items() if name in config.methods}


def off_the_shelf_scores(
    lm_folder: Path,
    catalog: Catalog,
    testing: Sequence[ShoppingExample],
    config: AssistantEvalConfig,
    show_progress: bool,
) -> dict[str, np.ndarray]:
    if "off_the_shelf" not in config.methods:
        return {}
    if config.examples.candidates > 9:
        log.info("off_the_shelf left out: its labels are one token each up to 9 candidates")
        return {}
    reader = ItemView(fresh_lm(lm_folder, 1, config), "text", catalog)
    scores = label_scores(reader, testing, show_progress)
    del reader.lm.model
    return {"off_the_shelf": scores}


def split_examples(
    train: Sequence[Event],
    in_test: Sequence[Event],
    catalog: Catalog,
    config: AssistantEvalConfig,
) -> tuple[list[ShoppingExample], list[ShoppingExample]]:
    """Training examples from the training weeks' purchases of shoppers who do not buy in
    the test weeks; test queries from the test weeks' purchases of those who do."""
    held_out = {e.user_id for e in in_test if e.action == "purchase"}
    families = len(config.examples.families)

    def purchases(events: Sequence[Event]) -> CandidatePool:
        return CandidatePool((e.item_id for e in events if e.action == "purchase"), catalog)

    training = build_examples(
        train,
        lambda e: e.user_id not in held_out,
        catalog,
        purchases(train),
        config.examples,
        max(1, config.train_examples // families),
    )
    testing = build_examples(
        [*train, *in_test],
        lambda e: e.ts >= config.cutoff and e.user_id in held_out,
        catalog,
        purchases(in_test),
        replace(config.examples, seed=config.examples.seed + 1),
        config.queries_per_family,
    )
    if len(training) <= config.shopping.holdout or not testing:
        raise ValueError(
            f"the split gives {len(training)} training and {len(testing)} test examples; "
            f"need more than {config.shopping.holdout} and at least one"
        )
    return training, testing


def fresh_lm(folder: Path, embed_dim: int, config: AssistantEvalConfig) -> ItemLM:
    """The LM as loaded, with a new projector and choice head (seeded)."""
    torch.manual_seed(config.seed)
    projector = ItemProjector(ProjectorConfig(embed_dim, lm_hidden_size(folder), config.tokens))
    return ItemLM.load(folder, projector)


def stage1_answer(catalog: Catalog, item_texts: dict[str, str], item_id: str) -> str:
    """The answer stage 1 trains on, as `tastegraph train assistant` writes it."""
    facts = catalog.get(item_id)
    look = look_phrase(facts.colour, facts.kind) if facts is not None else ""
    return look_then_text(look, item_texts[item_id])


def alignment_rows(
    table: FeatureTable, item_texts: dict[str, str], n: int, seed: int
) -> np.ndarray:
    """Up to n table rows of items with text, drawn at random: stage 1's items."""
    rows = [row for row, item_id in enumerate(table.item_ids) if item_texts.get(item_id)]
    drawn = np.random.default_rng(seed).permutation(rows)[:n]
    return np.sort(drawn).astype(np.int64)


def training_figures(result: TrainResult) -> dict[str, float]:
    return {
        "examples": float(result.examples),
        "steps": float(result.steps),
        "seconds": result.seconds,
        "held-out loss before": result.heldout_loss_before,
        "held-out loss after": result.heldout_loss_after,
    }


def lm_scores(
    reader: ItemView, examples: Sequence[ShoppingExample], show_progress: bool
) -> np.ndarray:
    """(Q, n) the LM's choice-head scores for every example."""
    out = []
    for start in tqdm(range(0, len(examples), _BATCH), desc="scoring", disable=not show_progress):
        prompts, items = reader.batch(examples[start : start + _BATCH])
        with torch.inference_mode():
            out.append(choice_scores(reader.lm, prompts, items).float().numpy())
    return np.concatenate(out)


def label_scores(
    reader: ItemView, examples: Sequence[ShoppingExample], show_progress: bool
) -> np.ndarray:
    """(Q, n) the LM's next-token log-probabilities of each label after the answer prefix
    ("Best match: ["): how an LM off the shelf answers a numbered choice."""
    lm = reader.lm
    labels = [label_id(lm, i) for i in range(len(examples[0].candidates))]
    out = []
    for start in tqdm(range(0, len(examples), _BATCH), desc="scoring", disable=not show_progress):
        prompts, items = reader.batch(examples[start : start + _BATCH])
        ids, mask = padded([p.ids for p in prompts], pad_id(lm))
        with torch.inference_mode():
            logits = lm.forward(ids, items, attention_mask=mask).logits  # (B, T, V)
        last = logits[torch.arange(len(prompts)), torch.tensor([len(p.ids) - 1 for p in prompts])]
        out.append(torch.log_softmax(last.float(), dim=-1)[:, labels].numpy())
    return np.concatenate(out)


def fusion_text(fusion: FusionModel, tower: TextTower) -> Callable[[list[str]], np.ndarray]:
    """Texts -> (Q, d) unit vectors in the item space (text tower, fusion text head)."""

    def encode(texts: list[str]) -> np.ndarray:
        features = torch.from_numpy(tower.encode(texts))
        with torch.inference_mode():
            vectors: np.ndarray = fusion.embed_texts(features).numpy()
        return vectors

    return encode


def request_words(example: ShoppingExample, catalog: Catalog) -> str:
    """The request as words, the reference item's text line in its place."""
    if example.reference is None:
        return example.request
    facts = catalog.get(example.reference)
    line = item_line(facts, catalog.display) if facts is not None else None
    return example.request.replace(REFERENCE, line or "this")


def cosine_scores(
    table: FeatureTable,
    vectors: np.ndarray,
    requests: TextLookup,
    examples: Sequence[ShoppingExample],
) -> np.ndarray:
    """(Q, n) cosine of each candidate to the mean of the shopper's items (recent and
    reference), to the request's words and to the closest item of the shopper's history:
    ours' head's affinities, unweighted."""
    row = table.index()

    def rows(item_ids: Sequence[str]) -> np.ndarray:
        return vectors[[row[i] for i in item_ids]]

    scores = np.zeros((len(examples), len(examples[0].candidates)))
    for q, example in enumerate(examples):
        mine = [*example.recent, *([example.reference] if example.reference else [])]
        request = requests(plain_request(example.request))
        history = rows(example.history or mine)
        cosines = affinity(rows(mine), history, rows(example.candidates), request)
        scores[q] = cosines.sum(axis=1)
    return scores


def keyword_scores(catalog: Catalog, examples: Sequence[ShoppingExample]) -> np.ndarray:
    """(Q, n) how many of each candidate's colour and type, as words, its request names
    (with the reference item's text line)."""
    scores = np.zeros((len(examples), len(examples[0].candidates)))
    for q, example in enumerate(examples):
        request = request_words(example, catalog).lower()
        for i, item_id in enumerate(example.candidates):
            words = looks(catalog.get(item_id)) or ()
            scores[q, i] = sum(word in request for word in words)
    return scores


def answer_ranks(scores: np.ndarray, examples: Sequence[ShoppingExample]) -> np.ndarray:
    """(Q,) 1-based rank of the bought item; ties count against it."""
    answers = np.array([e.answer for e in examples])
    mine = scores[np.arange(len(examples)), answers][:, None]
    ranks: np.ndarray = (scores >= mine).sum(axis=1).astype(np.float64)
    return ranks


def query_slices(
    examples: Sequence[ShoppingExample], catalog: Catalog, bought_before: set[str]
) -> dict[str, np.ndarray]:
    """Slice name -> (Q,) bool mask over the queries."""
    text = np.array([has_text(catalog.get(e.bought)) for e in examples], dtype=bool)
    warm = np.array([e.bought in bought_before for e in examples], dtype=bool)
    everything = np.ones(len(examples), dtype=bool)
    return {"all": everything, "text": text, "photo_only": ~text, "warm": warm, "cold": ~warm}


def family_reports(
    ranks: dict[str, np.ndarray],
    examples: Sequence[ShoppingExample],
    slices: dict[str, np.ndarray],
    config: AssistantEvalConfig,
) -> dict[str, dict[str, SliceReport]]:
    users = np.array([e.user_id for e in examples])
    family = np.array([e.family for e in examples])
    out = {}
    for name in ("all", *FAMILIES):
        chosen = np.ones(len(examples), dtype=bool) if name == "all" else family == name
        out[name] = {
            slice_name: slice_report(ranks, users, chosen & mask, config)
            for slice_name, mask in slices.items()
            if (chosen & mask).any()
        }
    return out


def slice_report(
    ranks: dict[str, np.ndarray], users: np.ndarray, mask: np.ndarray, config: SplitConfig
) -> SliceReport:
    def estimate(x: np.ndarray, baseline: np.ndarray | None = None) -> Estimate:
        return clustered_bootstrap(x, users[mask], config.resamples, config.seed, baseline)

    hit = {name: (r[mask] == 1).astype(np.float64) for name, r in ranks.items()}
    methods = {
        name: {"hit1": estimate(hit[name]), "mrr": estimate(1.0 / r[mask])}
        for name, r in ranks.items()
    }
    ratios = {
        name: estimate(hit[OURS], values)
        for name, values in hit.items()
        if name != OURS and values.mean() > 0
    }
    return SliceReport(int(mask.sum()), methods, ratios)


def hit_by_position(
    ranks: dict[str, np.ndarray], examples: Sequence[ShoppingExample], candidates: int
) -> dict[str, list[float]]:
    """Method -> hit@1 over the queries whose target sits at each label (NaN: none)."""
    answers = np.array([e.answer for e in examples])
    return {
        name: [
            float((r[answers == p] == 1).mean()) if (answers == p).any() else float("nan")
            for p in range(candidates)
        ]
        for name, r in ranks.items()
    }
