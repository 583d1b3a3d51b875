"""One assistant turn: candidates from the recommender, read by the LM as item tokens.

The candidates (items matching the message, then the user's feed) are labelled [1]..[N]
in the prompt, each as k item tokens. The LM's choice is read from its next-token scores
for the labels after "Best match: [", so a reply always names catalog items; the LM then
writes a short reason for its choice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
class Choice:
    candidates: list[str]  # what the LM saw, in label order
    order: list[int]  # candidate positions, the LM's preferred first
    prompt: torch.Tensor  # (1, T) token ids up to the label
    items: torch.Tensor  # (N, d) the candidates' embeddings

    @property
    def item_ids(self) -> list[str]:
        return [self.candidates[i] for i in self.order]


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
        choice = self.choose(user_id, message, history)
        reason = "".join(self.reason(choice)).strip()
        return Reply(self.answer(choice, reason), choice.item_ids, choice.candidates)

    def choose(self, user_id: str, message: str, history: Sequence[dict[str, str]] = ()) -> Choice:
        """Show the candidates to the LM and rank them by its scores for their labels."""
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
        return Choice(candidates, order, prompt, items)

    def reason(self, choice: Choice) -> Iterator[str]:
        """The LM's reason for its choice, piece by piece as it decodes."""
        best = choice.order[0]
        prompt = torch.cat([choice.prompt, self._ids(f"{best + 1}] ")], dim=1)
        return self.lm.stream(prompt, choice.items, self.max_new_tokens)

    def answer(self, choice: Choice, reason: str) -> str:
        """The reply text: the chosen item's label and title, then the reason."""
        best = choice.order[0]
        item_id = choice.candidates[best]
        title = self.recommender.titles.get(item_id, f"item {item_id}")
        return f"[{best + 1}] {title}: {reason}" if reason else f"[{best + 1}] {title}"

    def _ids(self, text: str) -> torch.Tensor:
        ids = self.lm.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        tensor: torch.Tensor = ids
        return tensor

    def _single_token(self, text: str) -> int:
        ids = self.lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"the label {text!r} is not one token for this tokenizer")
        return int(ids[0])
