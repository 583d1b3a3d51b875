"""Item embeddings to soft tokens: the language model reads an item as k input embeddings.

The shape follows Qwen3-VL's patch merger (LayerNorm -> Linear -> GELU -> Linear to the
LM's hidden size); here the input is one precomputed item embedding instead of a group of
vision-tower patches, and the output is k tokens instead of one per merged patch group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tastegraph import registry
from tastegraph.artifacts import publish_version
from tastegraph.assistant.look import LookHead

ADAPTERS_FILE = "adapters.safetensors"  # the choice head and any LoRA weights


@dataclass(frozen=True)
class ProjectorConfig:
    embed_dim: int = 256  # item embedding width (the fusion model's output)
    hidden_size: int = 576  # the LM's input embedding width (SmolLM2-135M: 576)
    tokens: int = 4  # soft tokens per item (k)
    inner_dim: int = 1024  # width of the hidden layer

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")


class ItemProjector(nn.Module):
    def __init__(self, config: ProjectorConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(config.embed_dim)
        self.up = nn.Linear(config.embed_dim, config.inner_dim)
        self.act = nn.GELU()
        self.down = nn.Linear(config.inner_dim, config.tokens * config.hidden_size)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim) item embeddings -> (B, tokens, hidden_size) soft tokens."""
        if items.ndim != 2 or items.shape[1] != self.config.embed_dim:
            raise ValueError(
                f"expected (B, {self.config.embed_dim}) item embeddings, got {tuple(items.shape)}"
            )
        out: torch.Tensor = self.down(self.act(self.up(self.norm(items))))  # (B, tokens * hidden)
        return out.view(len(items), self.config.tokens, self.config.hidden_size)


def projector_root(workdir: Path) -> Path:
    return registry.root(workdir, "projector")


def save_projector(
    projector: ItemProjector,
    workdir: Path,
    manifest: dict[str, Any],
    adapters: dict[str, torch.Tensor] | None = None,
    look_head: LookHead | None = None,
) -> Path:
    """Publish a new version: model.safetensors and a manifest that should name the
    embedding store version and the LM it was trained for (and, where the LM was adapted,
    its LoRA settings); the choice head and LoRA weights trained with the projector go to
    adapters.safetensors, and stage 1's look head to its own file."""

    def write(folder: Path) -> None:
        save_file(projector.state_dict(), str(folder / "model.safetensors"))
        if adapters:
            save_file(adapters, str(folder / ADAPTERS_FILE))
        if look_head is not None:
            look_head.save(folder)
        registry.write_manifest(
            folder, "projector", manifest | {"config": asdict(projector.config)}
        )

    return publish_version(projector_root(workdir), write)


def load_projector(workdir: Path) -> tuple[ItemProjector, dict[str, Any]]:
    missing = f"no item projector in {workdir}; run `tastegraph train assistant` first"
    folder, manifest = registry.current_manifest(projector_root(workdir), "projector", missing)
    projector = ItemProjector(ProjectorConfig(**manifest["config"]))
    projector.load_state_dict(load_file(str(folder / "model.safetensors")))
    projector.eval()
    return projector, manifest
