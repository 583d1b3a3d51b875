"""Train the fusion model in two stages, towers frozen (as in LiT).

1. Content: an item's photo and its text are a positive pair; other items in the batch
   are negatives. A structure term keeps the text tower's neighbourhoods: the fused
   embeddings' similarity distribution over the batch follows the raw text cosine's (soft
   targets), so two items described alike stay alike even where their photos differ.
2. Taste: items engaged together are a positive pair, so the space reflects taste and not
   only look. The content loss stays on, weighted, so the text side keeps its meaning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from tastegraph import registry
from tastegraph.artifacts import publish_version
from tastegraph.embeddings.fusion import FusionConfig, FusionModel
from tastegraph.embeddings.pairs import co_engaged_pairs, variant_pairs
from tastegraph.embeddings.table import FeatureTable
from tastegraph.progress import Progress
from tastegraph.store import Event

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    content_epochs: int = 30  # passes over the items that have both a photo and text
    taste_epochs: int = 10  # passes over the co-engaged pairs
    # The budget: at most this many batches per stage, whatever the size of the catalog or
    # the log (the H&M sample takes 720 and 1,980; a denser log stops early, mid-epoch).
    max_content_steps: int = 1000
    max_taste_steps: int = 2500
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 0.01
    content_weight: float = 0.5  # weight of the content loss during the taste stage
    cutoff: float | None = None  # unix seconds; only events before it are used
    session_window_s: float = 3600.0  # same user within this window = engaged together
    variant_pairs: bool = True  # variants of one product are positives in the taste stage too
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


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    order = rng.permutation(n)
    for start in range(0, n - 1, batch_size):  # a batch of one has no negatives
        yield order[start : start + batch_size]


def _content_loss(
    model: FusionModel, table: FeatureTable, rows: np.ndarray, config: TrainConfig
) -> torch.Tensor:
    image, text, has_image, has_text = table.tensors(rows)
    loss = model.contrastive_loss(model.embed_images(image), model.embed_texts(text))
    if config.text_structure_weight > 0:
        fused = model.fuse(image, text, has_image, has_text)
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


def _fused(model: FusionModel, table: FeatureTable, rows: np.ndarray) -> torch.Tensor:
    return model.fuse(*table.tensors(rows))


def _taste_loss(
    model: FusionModel,
    table: FeatureTable,
    pairs: np.ndarray,  # (B, 2) rows engaged together
    content_rows: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
) -> torch.Tensor:
    """Co-engaged items close, plus the content loss on a random batch so text keeps meaning."""
    loss = model.contrastive_loss(
        _fused(model, table, pairs[:, 0]), _fused(model, table, pairs[:, 1])
    )
    if len(content_rows) > 1:
        sample = rng.choice(content_rows, min(config.batch_size, len(content_rows)), replace=False)
        loss = loss + config.content_weight * _content_loss(model, table, sample, config)
    return loss


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
    index = {item: row for row, item in enumerate(table.item_ids) if trainable[row]}
    pairs = co_engaged_pairs(
        events,
        index,
        cutoff=config.cutoff,
        session_window_s=config.session_window_s,
        seed=config.seed,
    )
    if config.variant_pairs:
        variants = variant_pairs(table.variant_of, trainable, config.seed)
        pairs = np.unique(np.concatenate([pairs, variants]), axis=0)
    log.info(
        "training on %d items with photo and text, %d co-engaged pairs",
        len(content_rows),
        len(pairs),
    )
    result = TrainResult(model, len(content_rows), len(pairs))
    model.train()
    steps = result.steps = {"content": 0, "taste": 0}
    budget = {"content": config.max_content_steps, "taste": config.max_taste_steps}
    per_epoch = {
        "content": -(-len(content_rows) // config.batch_size),
        "taste": -(-len(pairs) // config.batch_size),
    }
    total = min(config.content_epochs * per_epoch["content"], budget["content"]) + min(
        config.taste_epochs * per_epoch["taste"], budget["taste"]
    )
    progress = Progress(total, "training fusion", "batches", show=show_progress)
    for epoch in range(config.content_epochs + config.taste_epochs):
        stage = "taste" if epoch >= config.content_epochs else "content"
        if steps[stage] >= budget[stage]:
            continue  # this stage's budget is spent
        n = len(pairs) if stage == "taste" else len(content_rows)
        batch_losses = []
        for batch in _batches(n, config.batch_size, rng):
            if stage == "taste":
                loss = _taste_loss(model, table, pairs[batch], content_rows, config, rng)
            else:
                loss = _content_loss(model, table, content_rows[batch], config)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            batch_losses.append(loss.item())
            steps[stage] += 1
            progress.update(stage=stage, loss=f"{loss.item():.3f}")
            if steps[stage] >= budget[stage]:
                log.info("%s stage: its budget of %d batches is spent", stage, budget[stage])
                break
        mean_loss = float(np.mean(batch_losses)) if batch_losses else float("nan")
        result.losses.append((stage, mean_loss))
    progress.close()
    model.eval()
    return result


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
