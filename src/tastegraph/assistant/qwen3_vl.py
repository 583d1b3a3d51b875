"""Qwen3-VL reading item soft tokens in place of images; its vision tower is dropped.

A prompt holds each item as `<|vision_start|>` + k x `<|image_pad|>` + `<|vision_end|>`, as
Qwen3-VL's processor writes an image whose merged grid has k cells. The k soft tokens of
each item (from `ItemProjector`) are written over its pad embeddings, and every position gets
the 3D mRoPE index the original model would give a real image of that grid, computed by the
model's own `get_rope_index`. No pixels and no vision tower are involved, so DeepStack (which
adds vision-tower features to the first decoder layers) has nothing to add and is skipped.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tastegraph.encoders.text import quiet_transformers_progress

if TYPE_CHECKING:
    from transformers import Qwen3VLForConditionalGeneration

logger = logging.getLogger(__name__)


def merged_grid(tokens: int) -> tuple[int, int]:
    """(h, w) with h * w == tokens and h <= w, as close to square as possible: 4 -> (2, 2),
    6 -> (2, 3), a prime p -> (1, p)."""
    if tokens < 1:
        raise ValueError(f"an item needs at least 1 token, got {tokens}")
    h = max(d for d in range(1, math.isqrt(tokens) + 1) if tokens % d == 0)
    return h, tokens // h


class Qwen3VLItemReader(nn.Module):
    """Qwen3-VL's language model and LM head, reading items as soft tokens.

    Takes ownership of `model`: its vision tower is deleted in place, so the tower's weights
    are freed once nothing else holds them.
    """

    def __init__(self, model: Qwen3VLForConditionalGeneration) -> None:
        super().__init__()
        if hasattr(model.model, "visual"):
            del model.model.visual
        self.config = model.config
        # Qwen3VLModel without `visual`: the text model, embeddings and get_rope_index.
        self.model = model.model
        self.lm_head = model.lm_head
        self.hidden_size: int = model.lm_head.in_features
        self.image_token_id: int = self.config.image_token_id
        vision_config: Any = self.config.vision_config  # a Qwen3VLVisionConfig once built
        self.spatial_merge_size: int = vision_config.spatial_merge_size

    def placeholder_ids(self, tokens: int) -> list[int]:
        """The token ids standing for one item of `tokens` soft tokens in a prompt."""
        config = self.config
        return [
            config.vision_start_token_id,
            *[self.image_token_id] * tokens,
            config.vision_end_token_id,
        ]

    def grid_thw(self, tokens: int) -> list[int]:
        """The image grid (t, h, w in patches, before the spatial merge) that Qwen3-VL would
        turn into exactly `tokens` language-model tokens: 4 -> [1, 4, 4] for merge size 2."""
        h, w = merged_grid(tokens)
        return [1, h * self.spatial_merge_size, w * self.spatial_merge_size]

    def position_ids(
        self, input_ids: torch.Tensor, tokens: int, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, T) ids -> (3, B, T) mRoPE positions (temporal, height, width), each run of image
        pads placed as an image of grid `grid_thw(tokens)`; padding (mask 0) gets position 0."""
        runs = _placeholder_runs(input_ids, self.image_token_id)
        if any(length != tokens for length in runs):
            raise ValueError(
                f"every item needs exactly {tokens} consecutive image-pad tokens "
                f"(id {self.image_token_id}) between vision start/end tokens; found runs of "
                f"{runs}"
            )
        image_grid_thw = None
        if runs:
            grid = torch.tensor([self.grid_thw(tokens)], device=input_ids.device)
            image_grid_thw = grid.expand(len(runs), 3)
        mm_token_type_ids = (input_ids == self.image_token_id).int()  # text 0, image 1
        positions: torch.Tensor
        positions, _ = self.model.get_rope_index(
            input_ids,
            mm_token_type_ids,
            image_grid_thw=image_grid_thw,
            attention_mask=attention_mask,
        )
        return positions

    def prepare(
        self,
        input_ids: torch.Tensor,
        item_tokens: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) ids and (N, k, hidden) item tokens -> (B, T, hidden) input embeddings with
        the N items written over the image pads in reading order, and (3, B, T) positions."""
        hidden = self.hidden_size
        if input_ids.ndim != 2:
            raise ValueError(f"expected (B, T) input_ids, got {tuple(input_ids.shape)}")
        if item_tokens is None:
            item_tokens = input_ids.new_zeros((0, 1, hidden), dtype=torch.float32)
        if item_tokens.ndim != 3 or item_tokens.shape[2] != hidden:
            raise ValueError(
                f"expected (N, k, {hidden}) item tokens, got {tuple(item_tokens.shape)}"
            )
        n_items, tokens = item_tokens.shape[:2]
        is_pad = input_ids == self.image_token_id  # (B, T)
        if int(is_pad.sum()) != n_items * tokens:
            raise ValueError(
                f"{n_items} items of {tokens} tokens need {n_items * tokens} image-pad tokens "
                f"(id {self.image_token_id}) in input_ids, found {int(is_pad.sum())}"
            )
        positions = self.position_ids(input_ids, tokens, attention_mask)  # (3, B, T)
        embeds = self.model.get_input_embeddings()(input_ids)  # (B, T, hidden)
        mask = is_pad.unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(mask, item_tokens.to(embeds.dtype))
        return embeds, positions

    def forward(
        self,
        input_ids: torch.Tensor,
        item_tokens: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T) ids with N * k image pads, (N, k, hidden) item tokens -> (B, T, vocab) logits.

        Differentiable in `item_tokens`, so a projector can be trained through a frozen LM."""
        embeds, positions = self.prepare(input_ids, item_tokens, attention_mask)
        # No visual_pos_masks / deepstack_visual_embeds: the text model then skips DeepStack.
        output = self.model.language_model(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=False,
        )
        logits: torch.Tensor = self.lm_head(output.last_hidden_state)
        return logits

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        item_tokens: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 16,
        eos_token_id: int | None = None,
    ) -> torch.Tensor:
        """Greedy decoding with a KV cache -> (B, n) new token ids, n <= max_new_tokens.

        A hand-written loop rather than `GenerationMixin.generate`, whose position handling
        expects pixel inputs (image_grid_thw, mm_token_type_ids) to rebuild the 3D positions.
        Each new token is text, so all three mRoPE axes continue at the row's largest position
        so far + 1, as `get_rope_index` would place it. Rows that emit `eos_token_id` keep
        emitting it; decoding stops early when every row has. Pad batches on the left."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        embeds, positions = self.prepare(input_ids, item_tokens, attention_mask)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        next_position = positions.amax(dim=(0, 2)) + 1  # (B,)
        finished = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
        cache: Any = None
        new_tokens: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            output = self.model.language_model(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
            )
            cache = output.cache
            token = self.lm_head(output.last_hidden_state[:, -1]).argmax(-1)  # (B,)
            if eos_token_id is not None:
                token = token.masked_fill(finished, eos_token_id)
                finished |= token == eos_token_id
            new_tokens.append(token)
            if bool(finished.all()):
                break
            embeds = self.model.get_input_embeddings()(token[:, None])  # (B, 1, hidden)
            positions = next_position.view(1, -1, 1).expand(3, -1, 1)  # (3, B, 1)
            next_position = next_position + 1
            attention_mask = torch.cat(
                [attention_mask, attention_mask.new_ones((len(token), 1))], 1
            )
        return torch.stack(new_tokens, dim=1)


def load_qwen3_vl_without_vision(
    source: str | Path | Qwen3VLForConditionalGeneration,
) -> Qwen3VLItemReader:
    """A Qwen3-VL checkpoint directory (local files only) or a built model, without its
    vision tower. A built model is changed in place (its tower is deleted).

    Loading a directory still reads the tower's weights once before dropping them."""
    from transformers import Qwen3VLForConditionalGeneration

    if isinstance(source, Qwen3VLForConditionalGeneration):
        return Qwen3VLItemReader(source)
    if not isinstance(source, str | Path):
        raise TypeError(
            "expected a Qwen3-VL checkpoint directory or a Qwen3VLForConditionalGeneration, "
            f"got {type(source).__name__}"
        )
    path = Path(source).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no Qwen3-VL checkpoint in {path}: config.json is missing")
    with quiet_transformers_progress():
        model = Qwen3VLForConditionalGeneration.from_pretrained(path, local_files_only=True)
    logger.info("loaded Qwen3-VL from %s without its vision tower", path)
    return Qwen3VLItemReader(model)


def _placeholder_runs(input_ids: torch.Tensor, token_id: int) -> list[int]:
    """The lengths of the runs of `token_id` in each row, rows in order."""
    runs: list[int] = []
    for row in (input_ids == token_id).tolist():
        runs.extend(len(list(group)) for is_pad, group in itertools.groupby(row) if is_pad)
    return runs
