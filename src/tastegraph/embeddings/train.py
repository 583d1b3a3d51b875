"""Train the fusion model in two stages, towers frozen (as in LiT).

1. Content: an item's photo and its text are a positive pair; other items in the batch
   are negatives. A structure term keeps the text tower's neighbourhoods: the fused
   embeddings' similarity distribution over the batch follows the raw text cosine's (soft
   targets), so two items described alike stay alike even where their photos differ.
2. Taste: items engaged together are a positive pair, so the space reflects taste and not
   only look. The content loss stays on, weighted, so the text side keeps its meaning.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from tastegraph import registry
from tastegraph.artifacts import publish_version
from tastegraph.embeddings.fusion import FusionConfig, FusionModel
from tastegraph.embeddings.pairs import TastePairs, engagement_groups, taste_pairs, variant_groups
from tastegraph.embeddings.table import FeatureTable
from tastegraph.progress import Progress
from tastegraph.store import Event

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    content_epochs: int = 30  # passes over the items that have both a photo and text
    # Taste batches: this many times (distinct co-engaged pairs / batch size), each batch
    # drawn by weight (see owner_power), not enumerated.
    taste_epochs: int = 10
    # The budget: at most this many batches per stage, whatever the size of the catalog or
    # the log (the H&M sample takes 720 and 1,980; a denser log stops early).
    max_content_steps: int = 1000
    max_taste_steps: int = 2500
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 0.01
    content_weight: float = 0.5  # weight of the content loss during the taste stage
    cutoff: float | None = None  # unix seconds; only events before it are used
    session_window_s: float = 3600.0  # same user within this window = engaged together
    variant_pairs: bool = True  # variants of one product are positives in the taste stage too
    # A user (or collection) with n pairs weighs n ** owner_power in the taste batches: 1
    # weighs every pair alike, so dense users dominate; 0 weighs every user alike.
    owner_power: float = 0.5
    # Keep the text tower's neighbourhoods: items whose texts are alike stay alike in the
    # fused space (soft targets from raw text cosine), weighted into the content loss.
    text_structure_weight: float = 1.0
    text_structure_temperature: float = 0.05
    seed: int = 0


@dataclass
class TrainResult:
    model: FusionModel
    content_items: int
    taste_pairs: int
    # (stage, mean loss) per epoch trained
    losses: list[tuple[str, float]] = field(default_factory=list)
    steps: dict[str, int] = field(default_factory=dict)  # batches trained per stage


def _epochs_of_batches(
    n: int, epochs: int, batch_size: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Each epoch a fresh order of the n rows, in batches (a batch of one has no negatives)."""
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n - 1, batch_size):
            yield order[start : start + batch_size]


def _content_loss(
    model: FusionModel, table: FeatureTable, rows: np.ndarray, config: TrainConfig
) -> torch.Tensor:
    image, text, has_image, has_text = table.tensors(rows)
    image_side, text_side = model.embed_images(image), model.embed_texts(text)
    loss = model.contrastive_loss(image_side, text_side)
    if config.text_structure_weight > 0:
        fused = model.combine(image_side, text_side, has_image, has_text)
        loss = loss + config.text_structure_weight * _structure_loss(
            fused, text, config.text_structure_temperature
        )
    return loss


def _structure_loss(fused: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    raw = torch.nn.functional.normalize(text, dim=-1)
    off_diagonal = ~torch.eye(len(raw), dtype=torch.bool)
    target = (raw @ raw.T / temperature).masked_fill(~off_diagonal, -torch.inf).softmax(-1)
    logits = (fused @ fused.T / temperature).masked_fill(~off_diagonal, -torch.inf)
    log_p = logits.log_softmax(-1).masked_fill(~off_diagonal, 0.0)
    return -(target * log_p).sum(-1).mean()


def _taste_loss(
    model: FusionModel,
    table: FeatureTable,
    pairs: np.ndarray,  # (B, 2) rows engaged together
    content_rows: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Co-engaged items close, plus the content loss on a random batch so text keeps meaning."""
    rows, inverse = np.unique(pairs, return_inverse=True)  # each item through the heads once
    fused = model.fuse(*table.tensors(rows))[torch.from_numpy(inverse.reshape(pairs.shape))]
    loss = model.contrastive_loss(fused[:, 0], fused[:, 1])
    if len(content_rows) > 1:
        sample = rng.choice(content_rows, min(config.batch_size, len(content_rows)), replace=False)
        loss = loss + config.content_weight * _content_loss(model, table, sample, config)
    return loss


def _taste_batches(
    pairs: TastePairs, steps: int, batch_size: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    for _ in range(steps):
        yield pairs.sample(batch_size, rng)


def train_fusion(
    table: FeatureTable,
    events: Iterable[Event],
    config: TrainConfig,
    *,
    holdout: frozenset[str] = frozenset(),
    show_progress: bool = True,
) -> TrainResult:
    """Train a fusion model; items in `holdout` are never seen in training."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = FusionModel(FusionConfig(image_dim=table.image.shape[1], text_dim=table.text.shape[1]))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    trainable = np.array([item not in holdout for item in table.item_ids])
    content_rows = np.flatnonzero(table.has_image & table.has_text & trainable)
    pairs = _taste_pairs(table, events, trainable, config)
    log.info(
        "training on %d items with photo and text, %d co-engaged pairs",
        len(content_rows),
        len(pairs),
    )
    result = TrainResult(model, len(content_rows), len(pairs))
    per_epoch = {
        "content": -(-len(content_rows) // config.batch_size),
        "taste": -(-len(pairs) // config.batch_size) if len(pairs) > 1 else 0,
    }
    wanted = {
        "content": config.content_epochs * per_epoch["content"],
        "taste": config.taste_epochs * per_epoch["taste"],
    }
    budget = {"content": config.max_content_steps, "taste": config.max_taste_steps}
    planned = {stage: min(wanted[stage], budget[stage]) for stage in wanted}
    for stage in wanted:
        if wanted[stage] > budget[stage]:
            log.info("%s stage: stops at its budget of %d batches", stage, budget[stage])
    content_batches = _epochs_of_batches(
        len(content_rows), config.content_epochs, config.batch_size, rng
    )
    progress = Progress(sum(planned.values()), "training fusion", "batches", show=show_progress)
    model.train()
    for stage, batches, loss_of in (
        (
            "content",
            content_batches,
            lambda rows: _content_loss(model, table, content_rows[rows], config),
        ),
        (
            "taste",
            _taste_batches(pairs, planned["taste"], config.batch_size, rng),
            lambda batch: _taste_loss(model, table, batch, content_rows, config, rng),
        ),
    ):
        losses = _train_stage(
            stage, itertools.islice(batches, planned[stage]), loss_of, optimizer, progress
        )
        result.steps[stage] = len(losses)
        epoch = max(per_epoch[stage], 1)  # the manifest keeps each epoch's worth's mean loss
        result.losses += [
            (stage, float(np.mean(losses[i : i + epoch]))) for i in range(0, len(losses), epoch)
        ]
    progress.close()
    model.eval()
    return result


def _train_stage(
    stage: str,
    batches: Iterable[np.ndarray],
    loss_of: Callable[[np.ndarray], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    progress: Progress,
) -> list[float]:
    """One optimiser step per batch; the losses, in order."""
    losses = []
    for batch in batches:
        loss = loss_of(batch)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(loss.item())
        progress.update(stage=stage, loss=f"{loss.item():.3f}")
    return losses


def _taste_pairs(
    table: FeatureTable, events: Iterable[Event], trainable: np.ndarray, config: TrainConfig
) -> TastePairs:
    index = {item: row for row, item in enumerate(table.item_ids) if trainable[row]}
    groups = engagement_groups(
        events, index, cutoff=config.cutoff, session_window_s=config.session_window_s
    )
    if config.variant_pairs:
        groups |= variant_groups(table.variant_of, trainable)
    return taste_pairs(groups, config.owner_power, config.seed)


def save_fusion(
    result: TrainResult, root: Path, towers: dict[str, str], config: TrainConfig
) -> Path:
    """Publish the model as a new version: model.safetensors and manifest.json."""
    manifest = {
        "model_config": result.model.config.to_dict(),
        "train_config": asdict(config),
        "towers": towers,
        "content_items": result.content_items,
        "taste_pairs": result.taste_pairs,
        "losses": result.losses,
        "steps": result.steps,
    }

    def write(folder: Path) -> None:
        save_file(result.model.state_dict(), str(folder / "model.safetensors"))
        registry.write_manifest(folder, "fusion", manifest)

    return publish_version(root, write)
