"""One assistant turn: candidates from the recommender, read by the LM as item tokens.

The candidates (items matching the message, then the user's feed) are labelled [1]..[N]
in the choice prompt (assistant/choice.py), each as k item tokens, after the user's most
recent items. The LM's choice is read by its choice head, so a reply always names catalog
items; the LM then writes a short reason for its choice. Before stage 2 has trained the
head, the candidates keep the recommender's order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tastegraph.assistant.choice import (
    check_candidates,
    choice_scores,
    item_token_prompt,
    label_id,
    text_ids,
)
from tastegraph.assistant.lm import ItemLM
from tastegraph.recommend import Recommender
from tastegraph.recommend.search import QueryEncoder

RECENT_ITEMS = 3  # the user's latest items the LM sees, as in stage-2 training


@dataclass(frozen=True)
class Choice:
    candidates: list[str]  # what the LM saw, in label order
    order: list[int]  # candidate positions, the LM's preferred first
    prompt: torch.Tensor  # (1, T) token ids up to the label
    items: torch.Tensor  # (R + N, d) the recent items' and the candidates' embeddings

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
        check_candidates(candidates)
        self.lm = lm
        self.recommender = recommender
        self.encoder = encoder
        self.candidates = candidates
        self.max_new_tokens = max_new_tokens

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
        """Show the candidates to the LM and rank them by its choice head's scores (in the
        recommender's order while the head is untrained)."""
        if not message.strip():
            raise ValueError("the message is empty")
        candidates = self.candidates_for(user_id, message)
        if not candidates:
            raise ValueError("no candidate items: the catalog is empty")
        recent = self.recent_items(user_id)
        rows = [self.recommender.index.row(i) for i in (*recent, *candidates)]
        items = torch.from_numpy(np.ascontiguousarray(self.recommender.item_vectors[rows]))
        prompt = item_token_prompt(self.lm, len(candidates), len(recent), message, history)
        order = list(range(len(candidates)))
        if self.lm.head_trained:
            with torch.inference_mode():
                scores = choice_scores(self.lm, [prompt], items)[0]
            order = torch.argsort(scores, descending=True).tolist()
        return Choice(candidates, order, torch.tensor([prompt.ids]), items)

    def recent_items(self, user_id: str) -> list[str]:
        """The user's latest engaged items that the index holds, newest first."""
        profile = self.recommender.profiles.get(user_id)
        engaged = list(profile.engaged) if profile is not None else []
        return [i for i in reversed(engaged) if i in self.recommender.index][:RECENT_ITEMS]

    def reason(self, choice: Choice) -> Iterator[str]:
        """The LM's reason for its choice, piece by piece as it decodes."""
        best = choice.order[0]
        # As stage 2 trained it: the label's token, then "]" and the reason.
        answer = [label_id(self.lm, best), *text_ids(self.lm, "]")]
        prompt = torch.cat([choice.prompt, torch.tensor([answer])], dim=1)
        return self.lm.stream(prompt, choice.items, self.max_new_tokens)

    def answer(self, choice: Choice, reason: str) -> str:
        """The reply text: the chosen item's label and title, then the reason."""
        best = choice.order[0]
        item_id = choice.candidates[best]
        title = self.recommender.titles.get(item_id, f"item {item_id}")
        return f"[{best + 1}] {title}: {reason}" if reason else f"[{best + 1}] {title}"
