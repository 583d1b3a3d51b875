"""The choice prompt: the shopper's recent items, a request and numbered candidates.

Chat, stage-2 training and the assistant evaluation all ask the LM the same question in the
same words. Each item appears in the prompt as a description: k item tokens for a model that
reads embeddings, or a line of text for the text-only baseline. The LM's choice is read from
its next-token scores for the labels "1".."N" after "Best match: [", so an answer always
names a candidate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tastegraph.assistant.lm import ItemLM

SYSTEM = (
    "You are a shopping assistant. The shopper sees numbered items. Recommend the one that "
    "fits their request and taste best and say why in one short sentence."
)
ANSWER_PREFIX = "Best match: ["
MAX_CANDIDATES = 9  # labels are single digits


def choice_turn(
    request: str,
    candidates: Sequence[str],
    recent: Sequence[str] = (),
    history: Sequence[dict[str, str]] = (),
) -> list[dict[str, str]]:
    """The chat messages: candidates and recent items given as their descriptions."""
    parts = [f"I recently bought: {', '.join(recent)}."] if recent else []
    parts.append(request)
    parts.append("Items:\n" + "\n".join(f"[{n + 1}] {d}" for n, d in enumerate(candidates)))
    return [
        {"role": "system", "content": SYSTEM},
        *history,
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def prompt_ids(lm: ItemLM, turn: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of the turn in the chat template, up to and including the answer prefix."""
    ids: list[int] = lm.chat_ids(turn)[0].tolist()
    return ids + text_ids(lm, ANSWER_PREFIX)


def text_ids(lm: ItemLM, text: str) -> list[int]:
    ids: list[int] = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def label_ids(lm: ItemLM, n: int) -> list[int]:
    """The token of each label "1".."n"."""
    if not 1 <= n <= MAX_CANDIDATES:
        raise ValueError(f"candidates must be 1 to {MAX_CANDIDATES}, got {n}")
    labels = []
    for label in range(1, n + 1):
        ids = text_ids(lm, str(label))
        if len(ids) != 1:
            raise ValueError(f"the label {label} is not one token for this tokenizer")
        labels.append(ids[0])
    return labels


def padded(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) right-padded ids and their attention mask."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def pad_id(lm: ItemLM) -> int:
    pad = lm.tokenizer.pad_token_id
    return int(pad if pad is not None else lm.tokenizer.eos_token_id)


def label_logits(
    lm: ItemLM, prompts: Sequence[Sequence[int]], items: torch.Tensor, n: int
) -> torch.Tensor:
    """(B, n) the LM's scores for each label at the end of each prompt. `items` holds the
    embeddings of every item token group, in prompt order across the batch."""
    ids, mask = padded(prompts, pad_id(lm))
    logits = lm.forward(ids, items, attention_mask=mask).logits  # (B, T, vocab)
    return scores_after(logits, prompts, label_ids(lm, n))


def scores_after(
    logits: torch.Tensor, prompts: Sequence[Sequence[int]], labels: list[int]
) -> torch.Tensor:
    """(B, n) the scores of the label tokens at each prompt's last position; `logits` is
    (B, T, vocab) over right-padded rows that start with the prompts."""
    last = torch.tensor([len(p) - 1 for p in prompts])
    scores: torch.Tensor = logits[torch.arange(len(prompts)), last][:, labels]
    return scores
