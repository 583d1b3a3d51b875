"""Stage 1 of assistant training, alignment: the LM learns to read an item from its tokens.

Each example is a chat turn "Describe this item: <k item tokens>" whose answer is the item's
look ("Black Dress", from the colour and kind attributes) and then its own text (title,
attributes, description); only the projector learns, the LM stays frozen. It runs in two
parts:
- a warm start without the LM: each item's k soft tokens are regressed onto the LM's own
  input embeddings of the first k tokens of its answer (about a minute for 8,000 items);
- optionally the LM in the loop: the answer's next-token loss, backpropagated through the
  frozen LM (seconds per step of 16 items on 2 cores). Off by default: on H&M it made the
  descriptions worse (`AlignConfig.lm_items`).
Half of the items are read as a photo-only item would be, by the embedding of their photo
alone: describing photo-only items is what the skill is for, and their embeddings lie
elsewhere than those of items whose text was fused in. Stage 1 also fits the look head
(`assistant/look.py`) that chooses how a description opens.
Training checkpoints the projector every `checkpoint_every` steps (safetensors plus a JSON
position); a re-run resumes from the last checkpoint (the optimizer's moments restart).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tastegraph.artifacts import current_version, publish_version
from tastegraph.assistant.describe import PROMPT, look_phrase
from tastegraph.assistant.lm import ItemLM, lm_hidden_size
from tastegraph.assistant.look import LookHead
from tastegraph.assistant.models import cached_lm
from tastegraph.assistant.projector import ItemProjector, ProjectorConfig, save_projector
from tastegraph.config import Settings
from tastegraph.embeddings.job import photo_embeddings, prepare_features
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.encoders import item_text
from tastegraph.progress import Progress
from tastegraph.store import Store
from tastegraph.store.base import Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-3
    holdout: int = 200  # examples kept out of training, for the held-out loss
    checkpoint_every: int = 100  # steps
    seed: int = 0


@dataclass(frozen=True)
class AlignConfig(Schedule):
    # Answer tokens kept per item: the look, the title and first attributes. The cost of a
    # step grows with them (the frozen LM still runs backward to reach the item tokens).
    max_text_tokens: int = 32
    # Items the LM in the loop reads after the warm start (the first of the warm start's);
    # 0: the warm start alone. On H&M the loop (1,000 items, 5 minutes) made descriptions
    # worse: the type named 0.16 of the time after it, 0.44 after the warm start alone.
    lm_items: int = 0
    # The warm start's passes over its items.
    warm_start_epochs: int = 20
    warm_start_batch_size: int = 256
    warm_start_lr: float = 1e-3


@dataclass
class TrainResult:
    examples: int
    steps: int
    seconds: float
    heldout_loss_before: float
    heldout_loss_after: float
    losses: list[float] = field(default_factory=list)


def encode_examples(
    lm: ItemLM, texts: Sequence[str], max_text_tokens: int
) -> list[tuple[list[int], int]]:
    """Per text: (token ids of the whole turn, length of its prompt part)."""
    prompt = [{"role": "user", "content": PROMPT + lm.item_placeholder}]
    prompt_ids = lm.chat_ids(prompt)[0].tolist()
    end = lm.tokenizer.eos_token_id
    examples = []
    for text in texts:
        answer = lm.tokenizer(text, add_special_tokens=False)["input_ids"][:max_text_tokens]
        examples.append(([*prompt_ids, *answer, end], len(prompt_ids)))
    return examples


def batch_loss(
    lm: ItemLM, examples: Sequence[tuple[list[int], int]], items: torch.Tensor
) -> torch.Tensor:
    """Mean next-token loss on the answer tokens of a batch (right-padded)."""
    width = max(len(ids) for ids, _ in examples)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for row, (tokens, prompt) in enumerate(examples):
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, prompt : len(tokens)] = ids[row, prompt : len(tokens)]
        mask[row, : len(tokens)] = 1
    loss: torch.Tensor = lm.forward(ids, items, attention_mask=mask, labels=labels).loss
    return loss


def train_alignment(
    lm: ItemLM,
    vectors: np.ndarray,
    texts: Sequence[str],
    checkpoints: Path,
    config: AlignConfig | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train lm.projector on (item embedding (N, d), item text) pairs."""
    config = config or AlignConfig()
    if len(vectors) != len(texts) or len(texts) <= config.holdout:
        raise ValueError(f"need more than {config.holdout} items with text, one vector each")
    encoded = encode_examples(lm, texts, config.max_text_tokens)
    items = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))

    def loss(rows: Sequence[int]) -> torch.Tensor:
        return batch_loss(lm, [encoded[i] for i in rows], items[list(rows)])

    return fit(lm, len(texts), loss, checkpoints, config, "aligning projector", show_progress)


def describe_answer(item: Item, settings: Settings) -> str:
    """What stage 1 teaches the LM to say of an item: its look ("Black Dress", the settings'
    colour and kind attributes, where it has them) and then its text. The look comes first
    so that the answer's token budget keeps it and decoding says it first."""
    look = look_phrase(*(item.attributes.get(key) for key in look_keys(settings)))
    return look_then_text(look, item_text(item))


def look_then_text(look: str, text: str) -> str:
    """ "Black Dress. Tilly dress. ...": the answer stage 1 trains on; the text alone where
    the item has no look, and "" where it has no text."""
    return f"{look}. {text}" if look and text else text


def look_keys(settings: Settings) -> tuple[str, str]:
    return settings.colour_attribute, settings.kind_attribute


def warm_start(
    lm: ItemLM,
    vectors: np.ndarray,
    texts: Sequence[str],
    config: AlignConfig,
    show_progress: bool = True,
) -> tuple[float, float]:
    """Regress the projector's k soft tokens for each item onto the LM's own input
    embeddings of the first k tokens of its answer, without running the LM; returns the
    mean squared error (relative to the embeddings' mean square) before and after."""
    k = lm.projector.config.tokens
    table = lm.model.get_input_embeddings().weight.detach()
    first = []
    for text in texts:
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"][:k]
        first.append(ids + [ids[-1]] * (k - len(ids)))
    targets = table[torch.tensor(first)].float()  # (N, k, H)
    scale = targets.pow(2).mean()
    inputs = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))

    def relative_error(rows: torch.Tensor) -> torch.Tensor:
        error: torch.Tensor = (lm.projector(inputs[rows]) - targets[rows]).pow(2).mean() / scale
        return error

    every = torch.arange(len(inputs))
    with torch.no_grad():
        before = float(relative_error(every))
    optimizer = torch.optim.AdamW(lm.projector.parameters(), lr=config.warm_start_lr)
    generator = torch.Generator().manual_seed(config.seed)
    batches = -(-len(inputs) // config.warm_start_batch_size)
    total = config.warm_start_epochs * batches
    with Progress(total, "warm-starting projector", show=show_progress) as progress:
        for _ in range(config.warm_start_epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(order), config.warm_start_batch_size):
                rows = order[start : start + config.warm_start_batch_size]
                loss = relative_error(rows)
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                progress.update(loss=f"{loss.item():.3f}")
    with torch.no_grad():
        after = float(relative_error(every))
    return before, after


Loss = Callable[[Sequence[int]], torch.Tensor]  # the mean loss of the examples at these rows


def heldout_loss(loss: Loss, rows: np.ndarray, batch: int) -> float:
    with torch.inference_mode():
        losses = [float(loss(rows[i : i + batch].tolist())) for i in range(0, len(rows), batch)]
    return float(np.mean(losses)) if losses else float("nan")


def fit(
    lm: ItemLM,
    examples: int,
    loss: Loss,
    checkpoints: Path,
    schedule: Schedule,
    description: str,
    show_progress: bool = True,
) -> TrainResult:
    """Train the LM's trainable weights (projector, choice head and any LoRA adapters) on
    `examples` examples, `schedule.holdout` of them kept out for the held-out loss; resumes
    from `checkpoints`."""
    order = np.random.default_rng(schedule.seed).permutation(examples)
    held, train = order[: schedule.holdout], order[schedule.holdout :]
    if len(train) == 0:
        raise ValueError(f"{examples} examples leave none to train on after the hold-out")
    before = heldout_loss(loss, held, schedule.batch_size)
    start_step = resume(lm, checkpoints)
    optimizer = torch.optim.AdamW(lm.parameter_groups(schedule.lr))
    per_epoch = -(-len(train) // schedule.batch_size)
    total = schedule.epochs * per_epoch
    result = TrainResult(examples, start_step, 0.0, before, float("nan"))
    started = time.perf_counter()
    lm.train()
    progress = Progress(total, description, done=start_step, show=show_progress)
    for step in range(start_step, total):
        epoch, offset = divmod(step, per_epoch)
        shuffled = np.random.default_rng(schedule.seed + epoch).permutation(train)
        rows = shuffled[offset * schedule.batch_size : (offset + 1) * schedule.batch_size]
        value = loss(rows.tolist())
        optimizer.zero_grad()
        value.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        result.losses.append(value.item())
        progress.update(loss=f"{value.item():.3f}")
        if (step + 1) % schedule.checkpoint_every == 0 or step + 1 == total:
            save_checkpoint(lm, checkpoints, step + 1)
        result.steps = step + 1
    progress.close()
    lm.eval()
    result.seconds = time.perf_counter() - started
    result.heldout_loss_after = heldout_loss(loss, held, schedule.batch_size)
    return result


def save_checkpoint(lm: ItemLM, folder: Path, step: int) -> None:
    """Publish the trainable weights and the step reached as the current checkpoint, then
    drop older checkpoints."""

    def write(tmp: Path) -> None:
        save_file(lm.trainable_state(), str(tmp / "trainable.safetensors"))
        (tmp / "position.json").write_text(json.dumps({"step": step}))

    current = publish_version(folder, write)
    for old in folder.iterdir():
        if old.is_dir() and old.name.startswith("v") and old != current:
            shutil.rmtree(old)


def resume(lm: ItemLM, folder: Path) -> int:
    """Load the last checkpoint into the LM's trainable weights; returns the step to go on
    from (0 if there is none, or if it lacks some of them: another version wrote it)."""
    checkpoint = current_version(folder)
    if checkpoint is None:
        return 0
    state = load_file(str(checkpoint / "trainable.safetensors"))
    missing = set(lm.trainable_state()) - set(state)
    if missing:
        log.warning(
            "%s lacks %d trainable weights; training from scratch", checkpoint, len(missing)
        )
        return 0
    lm.load_trainable_state(state)
    step = int(json.loads((checkpoint / "position.json").read_text())["step"])
    log.info("resuming training from step %d in %s", step, checkpoint)
    return step


def stage1_vectors(vectors: np.ndarray, photo: np.ndarray, seed: int) -> np.ndarray:
    """(N, d): each item's embedding, or on every other item (a seeded draw) the embedding
    of its photo alone, as a photo-only item would be read. `photo` holds NaN rows for
    items without a photo; they keep their embedding."""
    alone = (np.random.default_rng(seed).random(len(vectors)) < 0.5) & ~np.isnan(photo[:, 0])
    return np.where(alone[:, None], photo, vectors).astype(np.float32)


@dataclass
class AlignResult:
    items: int  # items with text the warm start read
    seconds: float  # the warm start's
    error_before: float  # the warm start's relative error, before and after
    error_after: float
    lm: TrainResult | None  # the LM in the loop, where it ran


def align_projector(
    lm: ItemLM,
    vectors: np.ndarray,
    texts: Sequence[str],
    checkpoints: Path,
    config: AlignConfig,
    show_progress: bool = True,
) -> AlignResult:
    """Stage 1 on (item vector, answer) pairs: the warm start, then, where
    `config.lm_items` > 0, the LM in the loop on the first of them (resuming from
    `checkpoints`)."""
    started = time.perf_counter()
    before, after = warm_start(lm, vectors, texts, config, show_progress)
    result = AlignResult(len(texts), time.perf_counter() - started, before, after, None)
    lm_items = min(config.lm_items, len(texts))
    if lm_items > 0:
        looped = replace(config, holdout=min(config.holdout, lm_items // 5))
        result.lm = train_alignment(
            lm, vectors[:lm_items], texts[:lm_items], checkpoints, looped, show_progress
        )
    return result


def align_assistant(
    store: Store,
    settings: Settings,
    config: AlignConfig | None = None,
    max_items: int = 8000,
    tokens: int = 4,
) -> tuple[AlignResult, Path]:
    """Stage 1 for the default LM: the warm start on the first `max_items` embedded items
    with text, then, where `config.lm_items` > 0, the LM in the loop on the first of them
    (resuming from its last checkpoint); publishes the projector with the look head fitted
    on the same items' photo embeddings and colour signatures (`assistant/look.py`)."""
    config = config or AlignConfig()
    embeddings = EmbeddingStore.open(settings.workdir)
    answers: dict[str, str] = {}
    looks: dict[str, list[str]] = {}  # item id -> [colour, kind], "" where it has none
    for item in store.iter_items():
        answers[item.id] = describe_answer(item, settings)
        looks[item.id] = [str(item.attributes.get(k) or "").strip() for k in look_keys(settings)]
    ids = [i for i in embeddings.ids if answers.get(i)][:max_items]
    table = prepare_features(store, settings).table
    photo_ids, photo_matrix = photo_embeddings(table, settings.workdir, embeddings)
    photo = dict(zip(photo_ids, photo_matrix, strict=True))
    fused = np.stack([embeddings.vector(i) for i in ids])
    alone = np.stack([photo.get(i, np.full(fused.shape[1], np.nan)) for i in ids])
    vectors = stage1_vectors(fused, alone, config.seed)
    folder = cached_lm(settings.workdir, settings.language_model)
    hidden = lm_hidden_size(folder)
    projector = ItemProjector(
        ProjectorConfig(
            embed_dim=int(embeddings.vectors.shape[1]), hidden_size=hidden, tokens=tokens
        )
    )
    lm = ItemLM.load(folder, projector)
    # A run resumes only a run of the same command: another's checkpoint would replace this
    # run's warm start with a projector trained otherwise.
    run = f"{settings.language_model}|{len(ids)}|{config.lm_items}|{tokens}|{config.seed}"
    key = hashlib.sha256(run.encode()).hexdigest()[:12]
    checkpoints = settings.workdir / "models" / "projector-training" / embeddings.version / key
    result = align_projector(lm, vectors, [answers[i] for i in ids], checkpoints, config)
    with_photo = [row for row, item_id in enumerate(ids) if item_id in photo]
    signatures, signature = None, embeddings.colour_signature
    if signature:
        signatures = embeddings.colour_rows([ids[row] for row in with_photo])
        signed = np.flatnonzero(signatures.any(axis=1))  # zeros: none when it was embedded
        signatures = signatures[signed]
        with_photo = [with_photo[i] for i in signed]
    colours = [looks[ids[row]][0] for row in with_photo]
    kinds = [looks[ids[row]][1] for row in with_photo]
    look_head = LookHead.fit(
        alone[with_photo], colours, kinds, signatures=signatures, signature=signature
    )
    manifest = {
        "stage": "alignment",
        "embeddings_version": embeddings.version,
        "lm": settings.language_model,
        "items": len(ids),  # the items stage 1 read: `evaluate descriptions` holds out the rest
        "warm_start_seconds": result.seconds,
        "warm_start_error_before": result.error_before,
        "warm_start_error_after": result.error_after,
    }
    if result.lm is not None:
        manifest |= {
            "lm_items": result.lm.examples,
            "steps": result.lm.steps,
            "seconds": result.lm.seconds,
            "heldout_loss_before": result.lm.heldout_loss_before,
            "heldout_loss_after": result.lm.heldout_loss_after,
        }
    if look_head is not None:
        manifest["look_head_items"] = sum(1 for c, k in zip(colours, kinds, strict=True) if c and k)
    return result, save_projector(lm.projector, settings.workdir, manifest, look_head=look_head)
