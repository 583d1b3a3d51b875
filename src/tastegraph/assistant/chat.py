"""One assistant turn: candidates from the recommender, read by the LM as item tokens.

The candidates (items matching the message, then the user's feed) are labelled [1]..[N]
in the prompt, each as k item tokens. The LM's choice is read from its next-token scores
for the labels after "Best match: [", so a reply always names catalog items; the LM then
writes a short reason for its choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tastegraph.assistant.lm import ItemLM
from tastegraph.recommend import Recommender
from tastegraph.recommend.search import QueryEncoder

SYSTEM = (
    "You are a shopping assistant. The user sees numbered items. Recommend the one that "
    "fits the request best and say why in one short sentence."
)
ANSWER_PREFIX = "Best match: ["
MAX_CANDIDATES = 9  # labels are single digits


@dataclass(frozen=True)
class Reply:
    text: str
    item_ids: list[str]  # every candidate, the LM's preferred first
    candidates: list[str]  # what the LM saw, in label order


class Assistant:
    def __init__(
        self,
        lm: ItemLM,
        recommender: Recommender,
        encoder: QueryEncoder | None = None,
        candidates: int = 8,
        max_new_tokens: int = 32,
    ) -> None:
        if not 1 <= candidates <= MAX_CANDIDATES:
            raise ValueError(f"candidates must be 1 to {MAX_CANDIDATES}, got {candidates}")
        self.lm = lm
        self.recommender = recommender
        self.encoder = encoder
        self.candidates = candidates
        self.max_new_tokens = max_new_tokens
        self._labels = [self._single_token(str(i + 1)) for i in range(candidates)]

    def candidates_for(self, user_id: str, message: str) -> list[str]:
        """Items matching the message (text search), then the user's feed, without repeats."""
        found = []
        if self.encoder is not None and message.strip():
            vector = self.encoder.encode(message)
            found += [r.item_id for r in self.recommender.search(vector, self.candidates)]
        found += [r.item_id for r in self.recommender.feed(user_id, self.candidates, explore=0.0)]
        return list(dict.fromkeys(found))[: self.candidates]

    def reply(self, user_id: str, message: str, history: Sequence[dict[str, str]] = ()) -> Reply:
        """Answer `message`; `history` holds earlier turns as {"role", "content"} dicts."""
        if not message.strip():
            raise ValueError("the message is empty")
        candidates = self.candidates_for(user_id, message)
        if not candidates:
            raise ValueError("no candidate items: the catalog is empty")
        rows = [self.recommender.index.row(i) for i in candidates]
        items = torch.from_numpy(np.ascontiguousarray(self.recommender.item_vectors[rows]))
        listing = "\n".join(f"[{n + 1}] {self.lm.item_placeholder}" for n in range(len(rows)))
        turn = [
            {"role": "system", "content": SYSTEM},
            *history,
            {"role": "user", "content": f"{message}\n\nItems:\n{listing}"},
        ]
        prompt = torch.cat([self.lm.chat_ids(turn), self._ids(ANSWER_PREFIX)], dim=1)
        with torch.inference_mode():
            scores = self.lm.forward(prompt, items).logits[0, -1, self._labels[: len(rows)]]
        order = torch.argsort(scores, descending=True).tolist()
        best = order[0]
        reason = self.lm.generate(
            torch.cat([prompt, self._ids(f"{best + 1}] ")], dim=1), items, self.max_new_tokens
        ).strip()
        title = self.recommender.titles.get(candidates[best], f"item {candidates[best]}")
        text = f"[{best + 1}] {title}: {reason}" if reason else f"[{best + 1}] {title}"
        return Reply(text, [candidates[i] for i in order], candidates)

    def _ids(self, text: str) -> torch.Tensor:
        ids = self.lm.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        tensor: torch.Tensor = ids
        return tensor

    def _single_token(self, text: str) -> int:
        ids = self.lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"the label {text!r} is not one token for this tokenizer")
        return int(ids[0])
