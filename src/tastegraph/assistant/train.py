"""Stage 1 of assistant training, alignment: the LM learns to read an item from its tokens.

Each example is a chat turn "Describe this item: <k item tokens>" whose answer is the item's
own text (title, attributes, description); only the projector learns, the LM stays frozen.
Training checkpoints the projector every `checkpoint_every` steps (safetensors plus a JSON
position); a re-run resumes from the last checkpoint (the optimizer's moments restart).
"""

from __future__ import annotations

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
from tastegraph.assistant.describe import PROMPT
from tastegraph.assistant.lm import ItemLM, lm_hidden_size
from tastegraph.assistant.models import cached_lm
from tastegraph.assistant.projector import ItemProjector, ProjectorConfig, save_projector
from tastegraph.config import Settings
from tastegraph.embeddings.store import EmbeddingStore
from tastegraph.encoders import item_text
from tastegraph.progress import Progress
from tastegraph.store import Store

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
    # Answer tokens kept per item: the title and first attributes. The cost of a step grows
    # with them (the frozen LM still runs backward to reach the item tokens).
    max_text_tokens: int = 32


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


def align_assistant(
    store: Store,
    settings: Settings,
    config: AlignConfig | None = None,
    max_items: int = 2000,
    tokens: int = 4,
) -> tuple[TrainResult, Path]:
    """Stage 1 on the first `max_items` embedded items with text, for the default LM;
    resumes from its last checkpoint and publishes the projector."""
    config = config or AlignConfig()
    embeddings = EmbeddingStore.open(settings.workdir)
    texts = {item.id: item_text(item) for item in store.iter_items()}
    ids = [i for i in embeddings.ids if texts.get(i)][:max_items]
    folder = cached_lm(settings.workdir, settings.language_model)
    hidden = lm_hidden_size(folder)
    projector = ItemProjector(
        ProjectorConfig(
            embed_dim=int(embeddings.vectors.shape[1]), hidden_size=hidden, tokens=tokens
        )
    )
    lm = ItemLM.load(folder, projector)
    vectors = np.stack([embeddings.vector(i) for i in ids])
    config = replace(config, holdout=min(config.holdout, len(ids) // 5))
    checkpoints = settings.workdir / "models" / "projector-training" / embeddings.version
    result = train_alignment(lm, vectors, [texts[i] for i in ids], checkpoints, config)
    manifest = {
        "stage": "alignment",
        "embeddings_version": embeddings.version,
        "lm": settings.language_model,
        "items": result.examples,
        "steps": result.steps,
        "seconds": result.seconds,
        "heldout_loss_before": result.heldout_loss_before,
        "heldout_loss_after": result.heldout_loss_after,
    }
    return result, save_projector(lm.projector, settings.workdir, manifest)
