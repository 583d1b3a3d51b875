"""Stage 2 of assistant training, shopping: pick the item the shopper bought.

Each example is one real purchase. The LM reads the shopper's recent items (the rest of
that basket first, then earlier purchases, newest first), a request written from the
bought item's attributes ("Do you have a black dress?") and N candidates labelled [1]..[N]:
the bought item among N - 1 hard negatives, drawn from the items whose text is nearest to
its text (so they share type, colour and style with it). The answer names the bought item's
label and gives a short reason. The loss is the LM's next-token loss on the answer plus a
cross-entropy over the choice head's N candidate scores, which is how chat and evaluation
read the choice.

Examples need the bought item's attributes: on H&M, only items with a text row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from tastegraph.assistant.choice import (
    ChoicePrompt,
    choice_prompt,
    head_scores,
    item_token_prompt,
    label_id,
    pad_id,
    padded,
    text_ids,
)
from tastegraph.assistant.lm import ItemLM, cached_default_lm, lm_hidden_size
from tastegraph.assistant.projector import (
    ItemProjector,
    ProjectorConfig,
    load_projector,
    save_projector,
)
from tastegraph.assistant.train import Schedule, TrainResult, fit
from tastegraph.config import Settings
from tastegraph.embeddings.job import prepare_features
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.embeddings.table import FeatureTable
from tastegraph.graph.job import ItemDetails, item_details
from tastegraph.store import Event, Store

REQUESTS = (
    "Do you have a {colour} {kind}?",
    "I'm looking for a {kind} in {colour}.",
    "Something {colour}, maybe a {kind}?",
    "Show me a {colour} {kind} that suits me.",
)


@dataclass(frozen=True)
class ExampleConfig:
    candidates: int = 8
    recent_items: int = 3
    negatives_from: int = 30  # hard negatives are drawn from this many nearest items
    colour_key: str = "colour_group"
    kind_key: str = "product_type"
    seed: int = 0


@dataclass(frozen=True)
class ShoppingConfig(Schedule):
    batch_size: int = 8
    lr: float = 1e-3
    holdout: int = 50
    checkpoint_every: int = 25
    lora_rank: int = 0  # 0: the LM stays frozen; else LoRA adapters of this rank learn too


@dataclass(frozen=True)
class ShoppingExample:
    user_id: str
    ts: float
    recent: tuple[str, ...]  # newest first
    request: str
    candidates: tuple[str, ...]  # label order
    answer: int  # position of the bought item among the candidates
    reason: str

    @property
    def bought(self) -> str:
        return self.candidates[self.answer]


def describe(details: ItemDetails | None, config: ExampleConfig) -> tuple[str, str] | None:
    """(colour, kind) of an item, lower case, or None if it lacks either."""
    if details is None:
        return None
    colour = str(details.attributes.get(config.colour_key) or "").strip().lower()
    kind = str(details.attributes.get(config.kind_key) or "").strip().lower()
    return (colour, kind) if colour and kind else None


class HardNegatives:
    """Items nearest to an item by their text features (unit rows), among the describable."""

    def __init__(self, item_ids: Sequence[str], features: np.ndarray) -> None:
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        self.unit = (features / np.maximum(norms, 1e-12)).astype(np.float32)
        self.ids = list(item_ids)
        self.row = {item_id: row for row, item_id in enumerate(self.ids)}

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.row

    def sample(
        self, item_id: str, n: int, pool: int, exclude: set[str], rng: np.random.Generator
    ) -> list[str]:
        """n of the `pool` items nearest to item_id, none of them excluded or item_id."""
        scores = self.unit @ self.unit[self.row[item_id]]
        wanted = min(pool + len(exclude) + 1, len(self.ids))
        nearest = np.argpartition(-scores, wanted - 1)[:wanted]
        nearest = nearest[np.argsort(-scores[nearest])]
        found = [self.ids[r] for r in nearest if self.ids[r] not in exclude][:pool]
        found = [i for i in found if i != item_id]
        if len(found) < n:
            raise ValueError(f"only {len(found)} hard negatives for {item_id}, need {n}")
        return [found[i] for i in sorted(rng.choice(len(found), n, replace=False))]


def hard_negatives(
    table: FeatureTable, details: dict[str, ItemDetails], config: ExampleConfig
) -> HardNegatives:
    """Candidates come from the items with text and attributes, so that whether an item has
    a text row never gives the bought one away."""
    rows = [
        r
        for r, item_id in enumerate(table.item_ids)
        if table.has_text[r] and describe(details.get(item_id), config) is not None
    ]
    return HardNegatives([table.item_ids[r] for r in rows], table.text[rows])


def build_examples(
    events: Iterable[Event],
    is_target: Callable[[Event], bool],
    details: dict[str, ItemDetails],
    negatives: HardNegatives,
    config: ExampleConfig,
    limit: int | None = None,
) -> list[ShoppingExample]:
    """One example per purchase that `is_target` keeps, whose item is describable and whose
    buyer has at least one recent item; `limit` draws that many at random (seeded)."""
    rng = np.random.default_rng(config.seed)
    timelines: dict[str, list[Event]] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e.ts, e.event_id)):
        if event.action == "purchase":
            timelines[event.user_id].append(event)
    examples = []
    for user in sorted(timelines):
        timeline = timelines[user]
        for event in timeline:
            looks = describe(details.get(event.item_id), config)
            if looks is None or event.item_id not in negatives or not is_target(event):
                continue
            recent = recent_items(timeline, event, config.recent_items)
            if recent:
                examples.append(make_example(event, recent, looks, details, negatives, config, rng))
    if limit is not None and len(examples) > limit:
        keep = sorted(rng.choice(len(examples), limit, replace=False))
        examples = [examples[i] for i in keep]
    return examples


def recent_items(timeline: Sequence[Event], target: Event, n: int) -> tuple[str, ...]:
    """Up to n distinct items bought with the target (same basket) or before it, newest
    first, never the target item itself."""
    same_basket = [
        e.item_id
        for e in timeline
        if target.collection_id is not None and e.collection_id == target.collection_id
    ]
    earlier = [e.item_id for e in reversed(timeline) if e.ts < target.ts]
    items = [i for i in dict.fromkeys(same_basket + earlier) if i != target.item_id]
    return tuple(items[:n])


def make_example(
    event: Event,
    recent: tuple[str, ...],
    looks: tuple[str, str],
    details: dict[str, ItemDetails],
    negatives: HardNegatives,
    config: ExampleConfig,
    rng: np.random.Generator,
) -> ShoppingExample:
    colour, kind = looks
    others = negatives.sample(
        event.item_id, config.candidates - 1, config.negatives_from, set(recent), rng
    )
    answer = int(rng.integers(config.candidates))
    candidates = (*others[:answer], event.item_id, *others[answer:])
    request = REQUESTS[int(rng.integers(len(REQUESTS)))].format(colour=colour, kind=kind)
    title = details[event.item_id].title or kind
    reason = f"{title}: a {colour} {kind}, in the style of what you bought."
    return ShoppingExample(event.user_id, event.ts, recent, request, candidates, answer, reason)


class ItemTokens:
    """Describes items to the LM as item tokens from an embedding matrix (N, d)."""

    def __init__(self, lm: ItemLM, item_ids: Sequence[str], vectors: np.ndarray) -> None:
        self.lm = lm
        self.row = {item_id: row for row, item_id in enumerate(item_ids)}
        self.vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))

    def prompt(self, example: ShoppingExample) -> tuple[ChoicePrompt, torch.Tensor]:
        """The example's prompt and its items' embeddings in prompt order."""
        n, recent = len(example.candidates), len(example.recent)
        rows = [self.row[i] for i in (*example.recent, *example.candidates)]
        return item_token_prompt(self.lm, n, recent, example.request), self.vectors[rows]

    def batch(self, examples: Sequence[ShoppingExample]) -> tuple[list[ChoicePrompt], torch.Tensor]:
        prompts, items = zip(*(self.prompt(e) for e in examples), strict=True)
        return list(prompts), torch.cat(items)


class ItemTexts:
    """Describes items to the LM as a line of text each: title, colour, type and product
    code; items without a text row only by their id and product code."""

    def __init__(self, lm: ItemLM, details: dict[str, ItemDetails], config: ExampleConfig) -> None:
        self.lm = lm
        self.details = details
        self.config = config

    def text(self, item_id: str) -> str:
        item = self.details.get(item_id)
        product = f"product {item.product}" if item and item.product else f"item {item_id}"
        looks = describe(item, self.config)
        if item is None or looks is None:
            return f"item {item_id}, {product}"
        return f"{item.title or 'untitled'} ({looks[0]} {looks[1]}), {product}"

    def texts(self, item_ids: Sequence[str]) -> list[str]:
        return [self.text(i) for i in item_ids]

    def batch(self, examples: Sequence[ShoppingExample]) -> tuple[list[ChoicePrompt], torch.Tensor]:
        prompts = [
            choice_prompt(self.lm, e.request, self.texts(e.candidates), self.texts(e.recent))
            for e in examples
        ]
        return prompts, torch.zeros((0, self.lm.projector.config.embed_dim))


class ItemReader(Protocol):
    """How a model is shown items: `batch` gives each example's choice prompt and the
    embeddings of its item tokens, in prompt order across the batch."""

    lm: ItemLM

    def batch(
        self, examples: Sequence[ShoppingExample]
    ) -> tuple[list[ChoicePrompt], torch.Tensor]: ...


def shopping_loss(reader: ItemReader, examples: Sequence[ShoppingExample]) -> torch.Tensor:
    """Next-token loss on the answers plus cross-entropy over the choice head's scores."""
    lm = reader.lm
    prompts, items = reader.batch(examples)
    end = lm.tokenizer.eos_token_id
    rows = [
        [*p.ids, label_id(lm, e.answer), *text_ids(lm, f"] {e.reason}"), end]
        for p, e in zip(prompts, examples, strict=True)
    ]
    ids, mask = padded(rows, pad_id(lm))
    targets = torch.full_like(ids, -100)
    for i, (p, row) in enumerate(zip(prompts, rows, strict=True)):
        targets[i, len(p.ids) : len(row)] = ids[i, len(p.ids) : len(row)]
    out = lm.forward(ids, items, attention_mask=mask, labels=targets, hidden_states=True)
    scores = head_scores(lm, out.hidden_states[-1], prompts)  # (B, n)
    choice = F.cross_entropy(scores, torch.tensor([e.answer for e in examples]))
    loss: torch.Tensor = out.loss + choice
    return loss


def train_shopping(
    reader: ItemReader,
    examples: Sequence[ShoppingExample],
    checkpoints: Path,
    config: ShoppingConfig | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train the projector (if the reader shows item tokens) and the choice head to pick the
    bought items, and LoRA adapters on the LM when config.lora_rank asks for them."""
    config = config or ShoppingConfig()
    if config.lora_rank and reader.lm.lora is None:
        reader.lm.add_lora(config.lora_rank)

    def loss(rows: Sequence[int]) -> torch.Tensor:
        return shopping_loss(reader, [examples[i] for i in rows])

    result = fit(reader.lm, len(examples), loss, checkpoints, config, "shopping", show_progress)
    reader.lm.head_trained = True
    return result


def shop_assistant(
    store: Store,
    settings: Settings,
    config: ShoppingConfig | None = None,
    max_examples: int = 800,
    tokens: int = 4,
) -> tuple[TrainResult, Path]:
    """Stage 2 on up to `max_examples` purchases from the store, for the default LM and the
    current embeddings. Starts from the stage-1 projector when one was trained for these
    embeddings; resumes from its last checkpoint and publishes the projector, with the
    choice head (and LoRA adapters) beside it."""
    config = config or ShoppingConfig()
    embeddings = EmbeddingStore.open(settings.workdir)
    table = prepare_features(store, settings).table
    embedded = set(embeddings.ids)
    details = {
        item_id: d
        for item_id, d in item_details(store, settings.variant_attribute).items()
        if item_id in embedded
    }
    looks = ExampleConfig(
        colour_key=settings.colour_attribute, kind_key=settings.kind_attribute, seed=config.seed
    )
    negatives = hard_negatives(table, details, looks)
    events = [e for e in store.iter_events() if e.item_id in embedded]
    examples = build_examples(events, lambda e: True, details, negatives, looks, max_examples)
    if len(examples) <= config.holdout:
        raise ValueError(
            f"only {len(examples)} purchases make shopping examples (items need the "
            f"{settings.colour_attribute!r} and {settings.kind_attribute!r} attributes and text, "
            f"buyers an earlier item); need more than {config.holdout}"
        )
    folder = cached_default_lm(settings.workdir)
    projector, stages = starting_projector(settings.workdir, embeddings.version)
    if projector is None:
        dim = int(embeddings.vectors.shape[1])
        projector = ItemProjector(ProjectorConfig(dim, lm_hidden_size(folder), tokens))
    stages.append("shopping")
    lm = ItemLM.load(folder, projector)
    checkpoints = settings.workdir / "models" / "shopping-training" / embeddings.version
    reader = ItemTokens(lm, list(embeddings.ids), np.asarray(embeddings.vectors))
    result = train_shopping(reader, examples, checkpoints, config)
    manifest = {
        "stage": "shopping",
        "stages": stages,
        "embeddings_version": embeddings.version,
        "lm": folder.name,
        "examples": result.examples,
        "steps": result.steps,
        "seconds": result.seconds,
        "heldout_loss_before": result.heldout_loss_before,
        "heldout_loss_after": result.heldout_loss_after,
        "lora": lm.lora,
        # Whose purchases made examples: evaluations on this projector leave them out.
        "shoppers": sorted({e.user_id for e in examples}),
    }
    adapters = {k: v for k, v in lm.trainable_state().items() if not k.startswith("projector.")}
    return result, save_projector(lm.projector, settings.workdir, manifest, adapters)


def starting_projector(
    workdir: Path, embeddings_version: str
) -> tuple[ItemProjector | None, list[str]]:
    """The current projector and the stages it went through, if it was trained for these
    embeddings; else (None, [])."""
    try:
        projector, manifest = load_projector(workdir)
    except FileNotFoundError:
        return None, []
    if manifest.get("embeddings_version") != embeddings_version:
        return None, []
    return projector, list(manifest.get("stages", [manifest.get("stage", "alignment")]))
