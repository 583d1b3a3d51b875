"""The choice prompt: the shopper's recent items, a request and numbered candidates.

Chat, stage-2 training and the assistant evaluation all ask the LM the same question in the
same words. Each item appears in the prompt as a description: k item tokens for a model that
reads embeddings, or a line of text for the text-only baseline. The LM's choice is read by
its choice head (assistant/head.py) from its hidden states at the prompt's end and at each
candidate's last token, and from the candidates' cosines to the shopper's items, to the
request and to the closest item of the shopper's history in the item space, so an answer
always names a candidate.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np
import torch

from tastegraph.assistant.facts import Catalog, ItemFacts
from tastegraph.assistant.head import AFFINITIES
from tastegraph.assistant.lm import ItemLM
from tastegraph.display import PriceDisplay
from tastegraph.recommend.explain import ACTION_VERBS

SYSTEM = (
    "You are a shopping assistant. The shopper sees numbered items. Recommend the one that "
    "fits their request and taste best and say why in one short sentence."
)
ANSWER_PREFIX = "Best match: ["
MAX_CANDIDATES = 20
REFERENCE = "{item}"  # where a request shows the item it points at ("like {item}, but blue")
Layout = Literal["tokens_text", "tokens", "text"]
SERVED_LAYOUT: Layout = "tokens_text"  # how stage 2 trains and chat shows items


@dataclass(frozen=True)
class ChoicePrompt:
    ids: list[int]  # the chat, up to and including the answer prefix
    candidate_ends: list[int]  # position of each candidate's last token, in label order
    affinity: np.ndarray | None = None  # (N, AFFINITIES); None: no item vectors to compare

    def affinities(self) -> np.ndarray:
        n = len(self.candidate_ends)
        return self.affinity if self.affinity is not None else np.zeros((n, AFFINITIES))


class ChoiceQuery(Protocol):
    """What one choice shows: the shopper's recent items, a request (holding REFERENCE
    where it points at an item), and the candidates in label order; and the shopper's
    longer history, newest first, which only the choice head's cosines read."""

    @property
    def recent(self) -> Sequence[str]: ...
    @property
    def history(self) -> Sequence[str]: ...
    @property
    def request(self) -> str: ...
    @property
    def candidates(self) -> Sequence[str]: ...
    @property
    def reference(self) -> str | None: ...


def item_line(facts: ItemFacts, display: PriceDisplay | None = None) -> str | None:
    """'Strap top (Black Vest top), €12.99': an item's text as the LM reads it; None for an
    item with neither a title nor a colour or type (a photo-only item)."""
    looks = " ".join(p for p in (facts.colour, facts.kind) if p)
    if not facts.title and not looks:
        return None
    line = " ".join(p for p in (facts.title, f"({looks})" if looks else "") if p)
    price = display.text(facts.price) if display is not None else None
    return f"{line}, {price}" if price else line


def has_text(facts: ItemFacts | None) -> bool:
    return facts is not None and item_line(facts) is not None


def recent_line(recent: Sequence[str], actions: Sequence[str] | None = None) -> str:
    """'I recently bought: a, b.' for the shopper's latest items (newest first), each with
    its action (default: all purchases); mixed actions read 'Recently I saved a; bought b.'"""
    verbs = [ACTION_VERBS.get(a, "liked") for a in actions or ["purchase"] * len(recent)]
    if len(set(verbs)) == 1:
        return f"I recently {verbs[0]}: {', '.join(recent)}."
    return "Recently I " + "; ".join(f"{v} {r}" for v, r in zip(verbs, recent, strict=True)) + "."


def choice_turn(
    request: str,
    candidates: Sequence[str],
    recent: Sequence[str] = (),
    history: Sequence[dict[str, str]] = (),
    recent_actions: Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """The chat messages: candidates and recent items (newest first, each with its action;
    default: purchases) given as their descriptions. The numbered candidates end the last
    message."""
    check_candidates(len(candidates))
    parts = [recent_line(recent, recent_actions)] if recent else []
    parts.append(request)
    parts.append("Items:\n" + "\n".join(candidate_lines(candidates)))
    return [
        {"role": "system", "content": SYSTEM},
        *history,
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def check_candidates(n: int) -> None:
    if not 1 <= n <= MAX_CANDIDATES:
        raise ValueError(f"candidates must be 1 to {MAX_CANDIDATES}, got {n}")


def candidate_lines(candidates: Sequence[str]) -> list[str]:
    return [f"[{n + 1}] {description}" for n, description in enumerate(candidates)]


def choice_prompt(
    lm: ItemLM,
    request: str,
    candidates: Sequence[str],
    recent: Sequence[str] = (),
    history: Sequence[dict[str, str]] = (),
    recent_actions: Sequence[str] | None = None,
) -> ChoicePrompt:
    """The choice turn in the LM's chat template, up to the answer prefix, with the
    position of every candidate's last token."""
    turn = choice_turn(request, candidates, recent, history, recent_actions)
    text = lm.tokenizer.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)
    text += ANSWER_PREFIX
    content = turn[-1]["content"]
    content_end = text.rindex(content) + len(content)
    lines = candidate_lines(candidates)
    # Character offsets where each candidate line ends; the lines close the message.
    ends, end = [], content_end
    for line in reversed(lines):
        ends.append(end)
        end -= len(line) + 1  # the line and the newline before it
    ends.reverse()
    encoded = lm.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    starts = [start for start, _ in encoded["offset_mapping"]]
    # A line's last token is the last one that starts before the line's end.
    positions = [bisect_left(starts, end) - 1 for end in ends]
    return ChoicePrompt(list(encoded["input_ids"]), positions)


VectorLookup = Callable[[Sequence[str]], np.ndarray]  # item ids -> (n, d) embeddings
TextLookup = Callable[[str], np.ndarray]  # a request -> (d,) unit vector in the item space


def matrix_lookup(item_ids: Sequence[str], vectors: np.ndarray) -> VectorLookup:
    """Looks items up in the rows of an (N, d) matrix, one row per item id."""
    row = {item_id: r for r, item_id in enumerate(item_ids)}
    return lambda ids: np.asarray(vectors[[row[i] for i in ids]], dtype=np.float32)


def plain_request(request: str) -> str:
    """The request as words for the text tower: its reference item read as "this"."""
    return request.replace(REFERENCE, "this")


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def affinity(
    mine: np.ndarray, history: np.ndarray, candidates: np.ndarray, request: np.ndarray | None
) -> np.ndarray:
    """(N, 3) each candidate's cosine to the mean direction of the shopper's items shown
    (m, d), to the request's vector, and to the closest item of the shopper's history (h,
    d); 0 where there is none. The closest item finds a shopper's several tastes, which the
    mean blurs; on the validation split's history-only requests it found the bought item
    more often from 10 items than from the 3 shown (no LM; 0.379 against 0.343)."""
    shown = unit_rows(candidates)
    out = np.zeros((len(shown), AFFINITIES), dtype=np.float32)
    if len(mine):
        taste = unit_rows(unit_rows(mine).mean(axis=0))
        out[:, 0] = shown @ taste
    if request is not None:
        out[:, 1] = shown @ request
    if len(history):
        out[:, 2] = (shown @ unit_rows(history).T).max(axis=1)
    return out


@dataclass(frozen=True)
class ItemView:
    """Shows items to the LM in one layout: "tokens_text" (k item tokens, then the item's
    text line when it has one), "tokens" or "text" (a photo-only item reads as its id and
    product there, all the text it has)."""

    lm: ItemLM
    layout: Layout
    catalog: Catalog
    vectors: VectorLookup | None = None  # unused by the "text" layout
    # Requests into the items' space (the text tower and fusion text head), for the choice
    # head's cosine to the request; None where the space has no text side (raw image
    # features) or the layout has no vectors.
    requests: TextLookup | None = None
    # Drop every item's text line, as if the catalog had none (a photo-only item): how the
    # evaluation asks what the LM makes of items where text cannot tell. The text stays in
    # fused embeddings: the caller gives `vectors` of the photos alone with it.
    hide_text: bool = False

    def __post_init__(self) -> None:
        if self.layout != "text" and self.vectors is None:
            raise ValueError(f"the {self.layout!r} layout needs item vectors")

    def describe(self, item_id: str) -> str:
        facts = None if self.hide_text else self.catalog.get(item_id)
        line = item_line(facts, self.catalog.display) if facts is not None else None
        if self.layout == "text":
            return line or photo_only_text(item_id, self.catalog)
        if self.layout == "tokens" or line is None:
            return self.lm.item_placeholder
        return f"{self.lm.item_placeholder} {line}"

    def prompt(
        self,
        request: str,
        candidates: Sequence[str],
        recent: Sequence[str] = (),
        reference: str | None = None,
        recent_actions: Sequence[str] | None = None,
        history: Sequence[str] = (),
    ) -> tuple[ChoicePrompt, torch.Tensor]:
        """The choice prompt and the embeddings of its item tokens in prompt order: the
        recent items, the reference, the candidates. `history` (newest first; the items
        shown when empty) reaches only the head's closest-item cosine."""
        shown = request
        if reference is not None:
            shown = request.replace(REFERENCE, self.describe(reference))
        prompt = choice_prompt(
            self.lm,
            shown,
            [self.describe(i) for i in candidates],
            [self.describe(i) for i in recent],
            recent_actions=recent_actions,
        )
        if self.vectors is None or self.layout == "text":
            return prompt, torch.zeros((0, self.lm.projector.config.embed_dim))
        mine = [*recent, *([reference] if reference else [])]
        vectors = self.vectors([*mine, *candidates])
        wanted = self.requests(plain_request(request)) if self.requests else None
        past = self.vectors(history) if history else vectors[: len(mine)]
        cosines = affinity(vectors[: len(mine)], past, vectors[len(mine) :], wanted)
        return replace(prompt, affinity=cosines), torch.from_numpy(vectors)

    def batch(self, queries: Sequence[ChoiceQuery]) -> tuple[list[ChoicePrompt], torch.Tensor]:
        """The prompts of several queries and their item embeddings, in prompt order."""
        pairs = [
            self.prompt(q.request, q.candidates, q.recent, q.reference, history=q.history)
            for q in queries
        ]
        prompts, items = zip(*pairs, strict=True)
        return list(prompts), torch.cat(items)


def photo_only_text(item_id: str, catalog: Catalog) -> str:
    facts = catalog.get(item_id)
    product = facts.product if facts is not None else None
    return f"item {item_id}, product {product}" if product else f"item {item_id}"


def text_ids(lm: ItemLM, text: str) -> list[int]:
    ids: list[int] = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def label_id(lm: ItemLM, position: int) -> int:
    """The token of the label of the candidate at `position` (label "1" for position 0)."""
    ids = text_ids(lm, str(position + 1))
    if len(ids) != 1:
        raise ValueError(f"the label {position + 1} is not one token for this tokenizer")
    return ids[0]


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


def choice_scores(lm: ItemLM, prompts: Sequence[ChoicePrompt], items: torch.Tensor) -> torch.Tensor:
    """(B, N) the choice head's score for every candidate of each prompt (all with N
    candidates). `items` holds the embeddings of every item token group, in prompt order
    across the batch."""
    ids, mask = padded([p.ids for p in prompts], pad_id(lm))
    # The head reads hidden states only: no vocabulary logits beyond one position.
    out = lm.forward(ids, items, attention_mask=mask, hidden_states=True, logits_to_keep=1)
    return head_scores(lm, out.hidden_states[-1], prompts)


def head_scores(lm: ItemLM, hidden: torch.Tensor, prompts: Sequence[ChoicePrompt]) -> torch.Tensor:
    """(B, N) the choice head's scores from the LM's last hidden states (B, T, H) over
    right-padded rows that start with the prompts, and from the prompts' affinities."""
    rows = torch.arange(len(prompts))
    ends = hidden[rows, torch.tensor([len(p.ids) - 1 for p in prompts])]  # (B, H)
    candidates = hidden[rows[:, None], torch.tensor([p.candidate_ends for p in prompts])]
    cosines = torch.from_numpy(np.stack([p.affinities() for p in prompts]))  # (B, N, 3)
    scores: torch.Tensor = lm.head(ends, candidates, cosines)
    return scores
