"""Does the assistant do what shoppers say, and is every reply true? Scripted conversations.

Each conversation belongs to a held-out shopper (none of their purchases made a stage-2
example) and is written from one of their real purchases that has a type, a colour and a
price (the target), in these turns:

  1. "I'm looking for a {type}"      every card is of that type
  2. "in {colour}"                   ... and of that colour (its base word: "blue")
  3. "under {price}"                 ... and at most the target's shown price + 20%, rounded up
  4. "cheaper"                       ... and cheaper than the previous pick
  5. "more like the second one"      the related items of [2] that meet all of the above
  6. "not that one"                  the pick never comes back in this conversation
  7. "show me more"                  no card was shown before

The script keeps its own account of what was said and checks every card against it, not
against the assistant's state. A turn applied the intent when its check holds with at least
one card shown, or when it shows none, says why, and truly no item meets what was said.
Faithfulness: the whole reply (the LM's reason included) to the first `faithful_turns` turns
of the first conversations, every attribute claim checked against the item it names.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from tastegraph.assistant.chat import Answer, Assistant, first_sentence
from tastegraph.assistant.conversation import ConversationState
from tastegraph.assistant.facts import Catalog, ItemFacts, words
from tastegraph.assistant.faithful import check, degenerate, uninformative
from tastegraph.evaluate.metrics import Estimate, clustered_bootstrap
from tastegraph.recommend import Filters
from tastegraph.store import Event

log = logging.getLogger(__name__)

INTENTS = ("type", "colour", "price", "cheaper", "more like", "not that one", "show me more")


@dataclass(frozen=True)
class Script:
    user_id: str
    target: str
    kind: str
    colour_word: str
    max_shown_price: int  # in display units

    def messages(self) -> list[str]:
        return [
            f"I'm looking for a {self.kind.lower()}",
            f"in {self.colour_word}",
            f"under {self.max_shown_price}",
            "cheaper",
            "more like the second one",
            "not that one",
            "show me more",
        ]


@dataclass
class Said:
    """What the shopper has said so far, as the script knows it."""

    kinds: set[str]
    colours: set[str] = field(default_factory=set)
    max_price: float | None = None  # stored scale, inclusive
    below: float | None = None  # strictly cheaper than this (stored scale)
    rejected: set[str] = field(default_factory=set)

    def holds(self, facts: ItemFacts | None) -> bool:
        if facts is None or (facts.kind not in self.kinds and facts.category not in self.kinds):
            return False
        if self.colours and facts.colour not in self.colours:
            return False
        if self.max_price is None and self.below is None:
            return True
        if facts.price is None:
            return False
        if self.max_price is not None and facts.price > self.max_price:
            return False
        return self.below is None or facts.price < self.below

    def allows(self, item_id: str, catalog: Catalog) -> bool:
        """The item meets what was said and was not turned down."""
        return item_id not in self.rejected and self.holds(catalog.get(item_id))


@dataclass
class TurnResult:
    conversation: int
    intent: str
    cards: int
    violations: int  # cards that break something said
    applied: bool
    no_match: bool  # nothing shown, with a reason, and truly nothing met what was said


def scripts(
    events: Sequence[Event],
    catalog: Catalog,
    held_out: Callable[[str], bool],
    count: int,
    seed: int = 0,
) -> list[Script]:
    """Up to `count` scripts: each held-out shopper's latest purchases with type, colour
    and price, one per shopper first, then further purchases; drawn with `seed`."""
    latest: dict[str, list[str]] = {}
    for event in sorted(events, key=lambda e: (-e.ts, e.event_id)):
        facts = catalog.get(event.item_id)
        # A type or colour the catalog's vocabulary leaves out ("Unknown") cannot be asked for.
        usable = (
            facts
            and facts.kind in catalog.kinds
            and facts.colour in catalog.colours
            and facts.price is not None
        )
        if event.action == "purchase" and usable and held_out(event.user_id):
            bought = latest.setdefault(event.user_id, [])
            if event.item_id not in bought:
                bought.append(event.item_id)
    rng = np.random.default_rng(seed)
    users = sorted(latest)
    rng.shuffle(users)
    chosen: list[Script] = []
    for depth in range(max((len(v) for v in latest.values()), default=0)):
        for user in users:
            if len(chosen) < count and depth < len(latest[user]):
                chosen.append(_script(user, latest[user][depth], catalog))
    return chosen


def _script(user: str, item_id: str, catalog: Catalog) -> Script:
    facts = catalog.facts[item_id]
    assert facts.kind and facts.colour and facts.price is not None
    colour = next(w for w in reversed(words(facts.colour)) if catalog.colour_values([w]))
    ceiling = math.ceil(catalog.display.shown(facts.price) * 1.2)
    return Script(user, item_id, facts.kind, colour, max(ceiling, 1))


def run_conversation(
    assistant: Assistant, number: int, script: Script, write_reasons: int = 0
) -> tuple[list[TurnResult], list[Answer], list[dict[str, Any]], list[tuple[int, int, bool, bool]]]:
    """Play a script; the first `write_reasons` turns' replies get the LM's reason. Returns
    the turns' results, their answers, the transcript, and for each reason the LM wrote,
    before the check, what `check_written` finds."""
    catalog = assistant.catalog
    kinds = {v for v, ws in catalog.kinds.items() if ws == words(script.kind)}
    said = Said(kinds)
    state: ConversationState | None = None
    seen: set[str] = set()
    results, answers, transcript = [], [], []
    raw: list[tuple[int, int, bool, bool]] = []
    previous: list[str] = []
    for turn, (intent, message) in enumerate(zip(INTENTS, script.messages(), strict=True)):
        said = _said_after(intent, said, script, previous, catalog)
        answer = assistant.answer(script.user_id, message, state)
        if turn < write_reasons and answer.picks:
            written = first_sentence("".join(assistant.lm_reason(script.user_id, message, answer)))
            raw.append(check_written(written, answer.picks[0].item_id, catalog))
            answer = assistant.with_lm_reason(answer, written)
        cards = answer.items
        bad = sum(1 for i in cards if not said.allows(i, catalog))
        ok = bad == 0 and intent_holds(intent, assistant, said, previous, seen, cards)
        # No card is right when the reply says why and truly nothing is left to show,
        # or when the turn points at a card and none was ever shown.
        nothing_left = not _anything_left(
            assistant, said, seen if intent == "show me more" else set()
        )
        pointless = not previous and intent in ("cheaper", "more like", "not that one")
        no_match = not cards and bool(answer.intro) and (nothing_left or pointless)
        results.append(TurnResult(number, intent, len(cards), bad, bool(cards) and ok, no_match))
        answers.append(answer)
        transcript.append({"shopper": message, "assistant": answer.text, "items": cards})
        seen |= set(cards)
        state = answer.state
        if cards:
            previous = cards
    return results, answers, transcript, raw


def check_written(text: str, item_id: str, catalog: Catalog) -> tuple[int, int, bool, bool]:
    """(claims, true claims, degenerate, uninformative) of a reason as the LM wrote it."""
    facts = catalog.get(item_id)
    found = check(text, facts, catalog)
    return (
        len(found),
        sum(c.true for c in found),
        degenerate(text, facts, catalog) is not None,
        uninformative(text, facts, catalog) is not None,
    )


def _said_after(
    intent: str, said: Said, script: Script, previous: list[str], catalog: Catalog
) -> Said:
    if intent == "colour":
        said.colours = set(catalog.colour_values([script.colour_word]))
    elif intent == "price":
        said.max_price = catalog.display.stored(script.max_shown_price)
    elif intent == "cheaper" and previous:
        price = catalog.facts[previous[0]].price
        said.below = price
    elif intent == "not that one" and previous:
        said.rejected.add(previous[0])
    return said


def intent_holds(
    intent: str,
    assistant: Assistant,
    said: Said,
    previous: list[str],
    seen: set[str],
    cards: list[str],
) -> bool:
    """The turn's own intent, beyond every card meeting what was said."""
    if intent == "more like":
        if len(previous) < 2 or not cards:
            return False
        # The items related to the second card among those that meet what was said. Asked
        # with that filter, as a re-ranker orders a pool drawn from the allowed items only.
        anchor = previous[1]
        ids = assistant.recommender.index.ids
        allowed = np.array([i != anchor and said.allows(i, assistant.catalog) for i in ids])
        related = assistant.recommender.related(anchor, len(cards), filters=Filters(within=allowed))
        return set(cards) == {r.item_id for r in related}
    if intent == "show me more":
        return not set(cards) & seen
    return True


def _anything_left(assistant: Assistant, said: Said, seen: set[str]) -> bool:
    index = assistant.recommender.index
    return any(i not in seen and said.allows(i, assistant.catalog) for i in index.ids)


@dataclass(frozen=True)
class ReplyCheck:
    reply: int
    claims: int
    true_claims: int
    lm_written: bool  # the pick's reason is the LM's (it passed the checks)
    degenerate: bool  # any line of the final reply loops or copies ids


def check_reply(number: int, answer: Answer, catalog: Catalog) -> ReplyCheck:
    claims = true = 0
    looping = False
    for pick in answer.picks:
        facts = catalog.get(pick.item_id)
        found = check(pick.reason, facts, catalog)
        claims += len(found)
        true += sum(c.true for c in found)
        looping = looping or degenerate(pick.reason, facts, catalog) is not None
    lm = bool(answer.picks) and answer.picks[0].written_by_lm
    return ReplyCheck(number, claims, true, lm, looping)


@dataclass
class ConversationReport:
    conversations: int
    turns: int
    cards: int
    violations: int
    applied: Estimate  # share of turns whose intent was applied (or truly nothing matched)
    by_intent: dict[str, float]
    no_match_turns: int
    replies: int
    claims: int
    true_claims: Estimate  # share of attribute claims true of the item named
    lm_written: float  # share of replies whose pick reason the LM wrote
    degenerate_replies: int
    # The pick's reason as the LM wrote it, before the check: what the check guards against.
    lm_alone_claims: int
    lm_alone_true: int
    lm_alone_degenerate: int  # reasons that loop, copy ids or echo the prompt
    lm_alone_uninformative: int  # true but empty: about the shopper, or nothing of the item
    seconds_per_turn: float
    transcript: list[dict[str, Any]]


def evaluate_conversations(
    assistant: Assistant,
    all_scripts: Sequence[Script],
    faithful_replies: int = 200,
    show_progress: bool = True,
) -> ConversationReport:
    """Play every script; the first turns' replies get the LM's reason, until
    `faithful_replies` replies (two per conversation) are written."""
    turns: list[TurnResult] = []
    checks: list[ReplyCheck] = []
    written: list[tuple[int, int, bool, bool]] = []
    transcripts = []
    start = time.perf_counter()
    for number, script in enumerate(tqdm(all_scripts, "conversations", disable=not show_progress)):
        wanted = min(2, max(0, faithful_replies - len(checks)))
        results, answers, transcript, raw = run_conversation(assistant, number, script, wanted)
        written += raw
        turns += results
        checks += [
            check_reply(len(checks) + k, a, assistant.catalog)
            for k, a in enumerate(answers[:wanted])
        ]
        transcripts.append(transcript)
    seconds = (time.perf_counter() - start) / max(len(turns), 1)
    return _report(turns, checks, written, transcripts, seconds, len(all_scripts))


def _report(
    turns: list[TurnResult],
    checks: list[ReplyCheck],
    written: list[tuple[int, int, bool, bool]],
    transcripts: list[list[dict[str, Any]]],
    seconds: float,
    conversations: int,
) -> ConversationReport:
    applied = np.array([t.applied or t.no_match for t in turns], dtype=np.float64)
    clusters = np.array([t.conversation for t in turns])
    by_intent = {
        intent: float(np.mean([t.applied or t.no_match for t in turns if t.intent == intent]))
        for intent in INTENTS
        if any(t.intent == intent for t in turns)
    }
    claim_values = np.array(
        [1.0] * sum(c.true_claims for c in checks)
        + [0.0] * sum(c.claims - c.true_claims for c in checks)
    )
    claim_clusters = np.array(
        [c.reply for c in checks for _ in range(c.true_claims)]
        + [c.reply for c in checks for _ in range(c.claims - c.true_claims)]
    )
    return ConversationReport(
        conversations=conversations,
        turns=len(turns),
        cards=sum(t.cards for t in turns),
        violations=sum(t.violations for t in turns),
        applied=clustered_bootstrap(applied, clusters),
        by_intent=by_intent,
        no_match_turns=sum(t.no_match for t in turns),
        replies=len(checks),
        claims=sum(c.claims for c in checks),
        true_claims=clustered_bootstrap(claim_values, claim_clusters),
        lm_written=float(np.mean([c.lm_written for c in checks])) if checks else float("nan"),
        degenerate_replies=sum(c.degenerate for c in checks),
        lm_alone_claims=sum(w[0] for w in written),
        lm_alone_true=sum(w[1] for w in written),
        lm_alone_degenerate=sum(w[2] for w in written),
        lm_alone_uninformative=sum(w[3] for w in written),
        seconds_per_turn=seconds,
        transcript=transcripts[0] if transcripts else [],
    )
