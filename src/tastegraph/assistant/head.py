"""The choice head: which of the candidates in a prompt does the LM pick?

After reading the whole choice prompt, the LM's last hidden state at the prompt's end has
seen the shopper's recent items, the request and every candidate; the hidden state at each
candidate's last token has seen that candidate in the context before it. The head scores a
candidate by a scaled dot product between the two (as one attention query over the
candidates), so a choice is read from what the LM computed at the items themselves rather
than from its next-token scores for the digits "1".."N", which a small frozen LM cannot
learn to tie to the right item.

The head also reads the geometry of the item embeddings: each candidate's cosine to the
mean of the shopper's items shown, to the request, and to the closest of the shopper's
longer history (`affinity`, assistant/choice.py), each weighted by a learned scale. A
model that reads embeddings can use where they lie, not only what its few stage-2
examples teach the LM to make of them; the LM's term learns what the geometry misses.
The scales start where the cosines alone rank the candidates and learn faster than the
rest (AFFINITY_LR_SCALE): they are three numbers among thousands.

A gate per cosine set by the LM's state at the prompt's end (so that "What should I get
next?", which names nothing, would not count the request's cosine) was tried on the
validation split and lost attribute requests to the plain cosines (0.408 against 0.492
hit@1): 44 steps do not teach it which requests name something.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# 2: reads two affinities; 3: three. A stage-2 manifest records it.
HEAD_FORMAT = 3
# A candidate's cosine to the mean of the shopper's items shown, to the request, and to
# the closest item of the shopper's history. Older heads read a prefix of these.
AFFINITIES = 3
AFFINITY_INIT = 10.0  # a logit per unit of cosine: cosines of candidates differ by ~0.1 to 0.3
AFFINITY_LR_SCALE = 50.0


class ChoiceHead(nn.Module):
    def __init__(self, hidden_size: int, dim: int = 64) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.query = nn.Linear(hidden_size, dim)
        self.key = nn.Linear(hidden_size, dim)
        self.scale = 1.0 / math.sqrt(dim)
        self.affinity = nn.Parameter(torch.full((AFFINITIES,), AFFINITY_INIT))

    def forward(
        self, prompt_end: torch.Tensor, candidates: torch.Tensor, affinity: torch.Tensor
    ) -> torch.Tensor:
        """(B, H) hidden states at the prompt ends, (B, N, H) at the candidates and (B, N,
        AFFINITIES) the candidates' cosines -> (B, N) scores."""
        query = self.query(self.norm(prompt_end))  # (B, dim)
        keys = self.key(self.norm(candidates))  # (B, N, dim)
        scores: torch.Tensor = torch.einsum("bd,bnd->bn", query, keys) * self.scale
        return scores + affinity.to(scores.dtype) @ self.affinity.to(scores.dtype)

    def upgraded_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A saved head's weights in this format: one that read fewer cosines (or none)
        weighs the missing ones at zero, so it scores as it was trained."""
        saved = state.get("affinity", self.affinity.new_zeros(0))
        return state | {"affinity": torch.cat([saved, saved.new_zeros(AFFINITIES - len(saved))])}
