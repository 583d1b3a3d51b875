"""One assistant turn: understand the message, follow the conversation, let the LM choose,
and reply with what is true of the items.

1. `understand` reads the message (assistant/understand.py) and `next_turn` applies it to
   the conversation's state (assistant/conversation.py): a new need, constraints,
   "cheaper", "more like [2]", "not that one", "show me more".
2. Candidates come from the state's source: text search for a need, the shopper's feed
   for taste, the related items of the referenced item for "more like". Every candidate
   satisfies every constraint in force (catalog facts, assistant/facts.py) and none was
   rejected or hidden. When nothing does, the reply says so and names the nearest item.
3. The LM reads the shopper's latest items and the candidates as item tokens followed by
   their text line where they have one (the choice prompt, assistant/choice.py), as in
   stage-2 training, and its choice head orders them (with their cosines to those items
   and to the message): [1] is the pick.
4. The reply names the top picks with a reason each. The LM writes the pick's reason from
   the item's tokens and facts; it is kept only if every claim in it is true of the item
   and it is no loop (assistant/faithful.py), else the reason is built from the facts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from tastegraph.assistant.choice import (
    SERVED_LAYOUT,
    ItemView,
    check_candidates,
    choice_scores,
)
from tastegraph.assistant.conversation import ConversationState, Turn, TurnError, next_turn
from tastegraph.assistant.facts import Catalog, Constraints
from tastegraph.assistant.faithful import (
    faithful,
    reason_opening,
    template_reason,
    uninformative,
)
from tastegraph.assistant.lm import ItemLM
from tastegraph.assistant.understand import understand
from tastegraph.lru import LruMap
from tastegraph.recommend import Recommender
from tastegraph.recommend.explain import ACTION_VERBS
from tastegraph.recommend.items import Filters
from tastegraph.recommend.search import QueryEncoder

NEED_CACHE = 1024  # needs whose embedding is kept
RECENT_ITEMS = 3  # the user's latest items the LM sees, as in stage-2 training
HISTORY_ITEMS = 10  # the latest items the choice head's closest-item cosine reads, as there
REASON_SYSTEM = (
    "You are a shopping assistant. In one short sentence, tell the shopper, as 'you', why "
    "this item suits what they asked for. Use only the facts given about the item."
)


@dataclass(frozen=True)
class Pick:
    label: int  # as the shopper sees it: [1] is the first card
    item_id: str
    name: str  # title, or what its facts say it is
    reason: str
    written_by_lm: bool = False

    @property
    def line(self) -> str:
        return f"[{self.label}] {self.name}: {self.reason}"


@dataclass(frozen=True)
class Answer:
    items: list[str]  # the cards, label order: [1] is the pick
    state: ConversationState  # to send back with the next message
    intro: str  # what the turn applied, or why nothing is shown
    picks: list[Pick]  # the items the reply names, reasons from the facts

    @property
    def text(self) -> str:
        return "\n".join([self.intro, *(p.line for p in self.picks)]).strip()


@dataclass(frozen=True)
class Choice:
    candidates: list[str]  # what the LM saw, in its prompt's order
    order: list[int]  # candidate positions, the LM's preferred first

    @property
    def item_ids(self) -> list[str]:
        return [self.candidates[i] for i in self.order]


class Assistant:
    def __init__(
        self,
        lm: ItemLM,
        recommender: Recommender,
        catalog: Catalog,
        encoder: QueryEncoder | None = None,
        candidates: int = 8,
        picks: int = 3,
        max_new_tokens: int = 32,
    ) -> None:
        check_candidates(candidates)
        self.lm = lm
        self.recommender = recommender
        self.catalog = catalog
        self.encoder = encoder
        self.candidates = candidates
        self.picks = picks
        self.max_new_tokens = max_new_tokens
        # A refinement ("cheaper", "in blue") searches for the same need again: its
        # embedding is kept, so only a new need runs the text tower.
        self._need_vectors: LruMap[str, np.ndarray] = LruMap(NEED_CACHE)

    # -- a turn ----------------------------------------------------------------------------

    def answer(self, user_id: str, message: str, state: ConversationState | None = None) -> Answer:
        """The cards and the reply's picks for one message; the state goes back to the
        client. A message the assistant cannot act on gets a reply saying why, no cards."""
        if not message.strip():
            raise ValueError("the message is empty")
        state = state or ConversationState()
        try:
            turn = next_turn(state, understand(message, self.catalog), self.catalog)
        except TurnError as exc:
            return Answer([], state, str(exc), [])
        candidates = self.candidates_for(user_id, turn)
        if not candidates:
            return Answer([], turn.state, self.nothing_matches(turn), [])
        ordered = self.choose(user_id, message, candidates).item_ids
        intro = f"Here you are, {turn.applied}." if turn.applied else "Here is what I found."
        return Answer(ordered, turn.state.showing(ordered), intro, self.named(user_id, ordered))

    def reply(self, user_id: str, message: str, state: ConversationState | None = None) -> Answer:
        """The whole answer, with the pick's reason written by the LM where it is faithful."""
        answer = self.answer(user_id, message, state)
        if answer.picks:
            answer = self.with_lm_reason(answer, "".join(self.lm_reason(user_id, message, answer)))
        return answer

    # -- candidates ------------------------------------------------------------------------

    def candidates_for(self, user_id: str, turn: Turn) -> list[str]:
        """Up to `candidates` items from the turn's source that pass its constraints."""
        allowed = self.allowed(user_id, turn.state.constraints, turn.exclude)
        if not allowed.any():
            return []
        state, n = turn.state, self.candidates
        within = Filters(within=allowed)
        if state.source == "search" and state.need and self.encoder is not None:
            found = self.recommender.search(self.need_vector(state.need), n, filters=within)
        elif state.source == "related" and state.anchor in self.recommender.index:
            assert state.anchor is not None
            found = self.recommender.related(state.anchor, n, filters=within)
        else:
            found = self.recommender.feed(user_id, n, explore=0.0, filters=within)
        return [r.item_id for r in found]

    def need_vector(self, need: str) -> np.ndarray:
        assert self.encoder is not None
        kept = self._need_vectors.get_many([need])
        if need in kept:
            return kept[need]
        vector = self.encoder.encode(need)
        self._need_vectors.put_many({need: vector})
        return vector

    def allowed(
        self, user_id: str, constraints: Constraints, exclude: frozenset[str]
    ) -> np.ndarray:
        """(N,) bool over index rows: items that pass the constraints, not excluded and not
        hidden by the shopper."""
        index = self.recommender.index
        allowed = self.catalog.allowed(index.ids, constraints)
        profile = self.recommender.profiles.get(user_id)
        hidden = set(profile.hidden) if profile is not None else set()
        rows = [index.row(i) for i in exclude | hidden if i in index]
        allowed[rows] = False
        return allowed

    def nothing_matches(self, turn: Turn) -> str:
        """Why nothing is shown: all of it was seen or turned down, or nothing meets the
        constraints, then with the nearest item when only the price is in the way."""
        constraints = turn.state.constraints
        asked = self.catalog.describe(constraints) or "your request"
        matching = sum(
            1
            for item_id, f in self.catalog.facts.items()
            if item_id in self.recommender.index and constraints.holds(f)
        )
        if matching:
            return (
                f"You have seen all {matching} items I have for {asked}, or turned them "
                "down: ask for something else."
            )
        relaxed = constraints.without_price()
        priced = [
            (f.price, item_id)
            for item_id, f in self.catalog.facts.items()
            if item_id in self.recommender.index and relaxed.holds(f) and f.price is not None
        ]
        if relaxed == constraints or not priced:
            return f"I have nothing for {asked}."
        cheapest = constraints.max_price is not None
        price, _ = min(priced) if cheapest else max(priced)
        what = self.catalog.describe(relaxed) or "item"
        word = "cheapest" if cheapest else "dearest"
        return (
            f"I have nothing for {asked}. The {word} {what} is {self.catalog.display.text(price)}."
        )

    # -- the LM's choice -------------------------------------------------------------------

    def choose(self, user_id: str, message: str, candidates: Sequence[str]) -> Choice:
        """Show the candidates to the LM and rank them by its choice head's scores (in the
        given order while the head is untrained)."""
        history = self.recent_items(user_id, HISTORY_ITEMS)
        recent = history[:RECENT_ITEMS]
        requests = self.need_vector if self.encoder is not None else None
        view = ItemView(self.lm, SERVED_LAYOUT, self.catalog, self.vectors_of, requests)
        prompt, items = view.prompt(
            message,
            candidates,
            [i for i, _ in recent],
            recent_actions=[a for _, a in recent],
            history=[i for i, _ in history],
        )
        order = list(range(len(candidates)))
        if self.lm.head_trained:
            with torch.inference_mode():
                scores = choice_scores(self.lm, [prompt], items)[0]
            order = torch.argsort(scores, descending=True).tolist()
        return Choice(list(candidates), order)

    def vectors_of(self, item_ids: Sequence[str]) -> np.ndarray:
        rows = [self.recommender.index.row(i) for i in item_ids]
        return np.ascontiguousarray(self.recommender.item_vectors[rows], dtype=np.float32)

    def recent_items(self, user_id: str, n: int = RECENT_ITEMS) -> list[tuple[str, str]]:
        """The shopper's n latest engagements by time, newest first, one per item, as
        (item, action): what the prompt calls bought, saved or viewed."""
        profile = self.recommender.profiles.get(user_id)
        events = reversed(profile.recent) if profile is not None else []
        latest: dict[str, str] = {}
        for item_id, action, _ in events:
            if len(latest) == n:
                break
            if item_id in self.recommender.index and item_id not in latest:
                latest[item_id] = action
        return list(latest.items())

    # -- the reply -------------------------------------------------------------------------

    def named(self, user_id: str, items: Sequence[str]) -> list[Pick]:
        """The top picks with reasons built from their facts and the shopper's history."""
        recent = self.recent_items(user_id)
        picks = []
        for label, item_id in enumerate(items[: self.picks], start=1):
            facts = self.catalog.get(item_id)
            # Taste explains the pick, and the items that have no facts to tell.
            wanted = label == 1 or facts is None or not facts.label
            taste = self.taste_clause(item_id, recent) if wanted else None
            reason = template_reason(facts, self.catalog, taste)
            picks.append(Pick(label, item_id, self.name(item_id), reason))
        return picks

    def name(self, item_id: str) -> str:
        return self.known_name(item_id) or "an item with a photo only"

    def known_name(self, item_id: str) -> str | None:
        """The item's title, else its own colour and type; None when it has neither."""
        facts = self.catalog.get(item_id)
        return None if facts is None else facts.title or facts.label

    def taste_clause(self, item_id: str, recent: Sequence[tuple[str, str]]) -> str | None:
        """'close to “Strap top” you bought': the recent item nearest to this one."""
        named = [(i, a) for i, a in recent if i != item_id and self.known_name(i)]
        if not named:
            return None
        index = self.recommender.index
        vector = index.vector(item_id)
        scores = [float(index.vector(i) @ vector) for i, _ in named]
        item, action = named[int(np.argmax(scores))]
        name = self.name(item).rstrip(" .")  # “V-neck Strap Top”, not “V-neck Strap Top.”
        return f"close to “{name}” you {ACTION_VERBS.get(action, 'liked')}"

    def lm_reason(self, user_id: str, message: str, answer: Answer) -> Iterator[str]:
        """The LM's reason for the pick, piece by piece as it decodes (unchecked)."""
        pick = answer.picks[0]
        facts = self.catalog.get(pick.item_id)
        request = answer.state.need or self.catalog.describe(answer.state.constraints)
        lines = [f"The shopper asked for: {request or message.strip()}"]
        lines.append(f"Item: {self.lm.item_placeholder}")
        if facts is not None:
            known = {
                "Name": facts.title,
                "Colour": facts.colour,
                "Type": facts.kind,
                "Pattern": facts.pattern,
                "Price": self.catalog.display.text(facts.price),
            }
            lines += [f"{key}: {value}" for key, value in known.items() if value]
        messages = [
            {"role": "system", "content": REASON_SYSTEM},
            {"role": "user", "content": "\n".join(lines)},
        ]
        ids = self.lm.chat_ids(messages)
        # The reply starts with the item's look, so it is about the item and true of it.
        opening = reason_opening(facts)
        if opening:
            said = self.lm.tokenizer(opening, add_special_tokens=False, return_tensors="pt")
            ids = torch.cat([ids, said["input_ids"]], dim=1)
        row = self.recommender.index.row(pick.item_id)
        items = torch.from_numpy(np.ascontiguousarray(self.recommender.item_vectors[[row]]))
        return itertools.chain([opening], self.lm.stream(ids, items, self.max_new_tokens))

    def with_lm_reason(self, answer: Answer, written: str) -> Answer:
        """The answer with the pick's reason replaced by the LM's first sentence, if that is
        faithful to the item and says something of it; else unchanged."""
        sentence = first_sentence(written)
        pick = answer.picks[0]
        facts = self.catalog.get(pick.item_id)
        if not faithful(sentence, facts, self.catalog) or uninformative(
            sentence, facts, self.catalog
        ):
            return answer
        better = replace(pick, reason=sentence, written_by_lm=True)
        return replace(answer, picks=[better, *answer.picks[1:]])


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    for end in (". ", "! ", "? "):
        if end in text:
            text = text.split(end)[0] + end.strip()
            break
    return text.strip()
