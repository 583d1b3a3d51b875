"""A conversation's state, and how each understood turn changes it.

The state is what the shopper has seen and said so far: the items shown last (in label
order: [1] is the pick), every item shown, the rejected ones, the current need and the
constraints in force. The client sends it back with the next message; `ConversationState.
parse` validates it against the catalog (never trusted). `next_turn` applies an intent:

- a new need replaces the need and the constraints with what the message states;
- constraints alone ("in blue", "under 30") replace those of their kind and keep the need;
- "cheaper" bounds the price below the pick's (or the referenced item's);
- "more like [2]" takes the related items of [2]; "not that one" rejects the pick for the
  rest of the conversation; "show me more" keeps everything and skips what was shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tastegraph.assistant.facts import Catalog, Constraints
from tastegraph.assistant.understand import Intent

MAX_SEEN = 200  # items remembered as shown; "show me more" skips them
Source = Literal["taste", "search", "related"]


class TurnError(ValueError):
    """A message the assistant cannot act on; the text is the reply to show the shopper."""


@dataclass(frozen=True)
class ConversationState:
    shown: tuple[str, ...] = ()  # the latest cards, label order
    seen: tuple[str, ...] = ()  # every item shown, oldest first
    rejected: tuple[str, ...] = ()
    source: Source = "taste"  # where candidates come from
    need: str = ""  # the search text, for source "search"
    anchor: str | None = None  # the item whose related items are shown, for "related"
    constraints: Constraints = field(default_factory=Constraints)

    def to_json(self) -> dict[str, Any]:
        c = self.constraints
        return {
            "shown": list(self.shown),
            "seen": list(self.seen),
            "rejected": list(self.rejected),
            "source": self.source,
            "need": self.need,
            "anchor": self.anchor,
            "colours": list(c.colours),
            "kinds": list(c.kinds),
            "min_price": c.min_price,
            "max_price": c.max_price,
        }

    @classmethod
    def parse(cls, data: dict[str, Any], catalog: Catalog) -> ConversationState:
        """A state sent back by a client; ValueError names what is wrong in it."""
        items = [*data.get("shown", []), *data.get("seen", []), *data.get("rejected", [])]
        if data.get("anchor") is not None:
            items.append(data["anchor"])
        unknown = sorted({i for i in items if i not in catalog})
        if unknown:
            raise ValueError(
                f"the conversation state names items not in the catalog: {unknown[:3]}"
            )
        for key, vocabulary in (("colours", catalog.colours), ("kinds", catalog.kinds)):
            wrong = [v for v in data.get(key, []) if v not in vocabulary]
            if wrong:
                raise ValueError(f"the conversation state has unknown {key}: {wrong[:3]}")
        source = data.get("source", "taste")
        if source not in ("taste", "search", "related"):
            raise ValueError(f"unknown source {source!r} in the conversation state")
        if source == "related" and data.get("anchor") is None:
            raise ValueError("a related conversation state needs its anchor item")
        constraints = Constraints(
            tuple(data.get("colours", [])),
            tuple(data.get("kinds", [])),
            data.get("min_price"),
            data.get("max_price"),
        )
        return cls(
            tuple(data.get("shown", [])),
            tuple(data.get("seen", []))[-MAX_SEEN:],
            tuple(data.get("rejected", [])),
            source,
            str(data.get("need", "")),
            data.get("anchor"),
            constraints,
        )

    def showing(self, items: list[str]) -> ConversationState:
        """The state once `items` are the cards shown."""
        seen = tuple(dict.fromkeys([*self.seen, *items]))[-MAX_SEEN:]
        return replace(self, shown=tuple(items), seen=seen)


@dataclass(frozen=True)
class Turn:
    state: ConversationState  # before the answer's items are shown
    exclude: frozenset[str]  # never shown this turn
    applied: str  # what changed, for the reply: "cheaper than €24.99"


def next_turn(state: ConversationState, intent: Intent, catalog: Catalog) -> Turn:
    referenced = _referenced(state, intent)
    exclude = set(state.rejected)
    applied = []
    constraints = _stated(intent, catalog)
    if intent.need:
        state = replace(state, source="search", need=intent.need, anchor=None)
        state = replace(state, constraints=constraints)
    else:
        state = replace(state, constraints=_merged(state.constraints, constraints))
        if constraints:
            applied.append(catalog.describe(constraints))
    if intent.reject and referenced is not None:
        state = replace(state, rejected=(*state.rejected, referenced))
        exclude.add(referenced)
        applied.append(f"without {_name(catalog, referenced)}")
    if intent.like and referenced is not None:
        state = replace(state, source="related", anchor=referenced, need="")
        exclude.add(referenced)
        applied.append(f"more like {_name(catalog, referenced)}")
    if intent.cheaper:
        state, note = _cheaper(state, referenced, catalog)
        applied.append(note)
    if intent.more:
        exclude |= set(state.seen)
        applied.append("more you haven't seen")
    return Turn(state, frozenset(exclude), "; ".join(applied))


def _referenced(state: ConversationState, intent: Intent) -> str | None:
    """The shown item the message points at; the pick when it says "cheaper" or "not that
    one" without a label. TurnError when the label was never shown."""
    wants = intent.like or intent.reject or intent.cheaper
    if intent.reference is None and not wants:
        return None
    if not state.shown:
        if intent.reference is None and intent.cheaper and not intent.need:
            raise TurnError("Cheaper than what? Ask for something first and I'll show you items.")
        if intent.reference is not None or intent.like or intent.reject:
            raise TurnError("I haven't shown you anything yet: tell me what you're looking for.")
        return None
    label = intent.reference or 1
    if label == -1:
        label = len(state.shown)
    if not 1 <= label <= len(state.shown):
        shown = len(state.shown)
        raise TurnError(
            f"I showed you {shown} item{'s' if shown > 1 else ''}, so there is no number "
            f"{label}: pick one of [1] to [{shown}]."
        )
    return state.shown[label - 1]


def _stated(intent: Intent, catalog: Catalog) -> Constraints:
    display = catalog.display
    low = None if intent.min_price is None else display.stored(intent.min_price)
    high = None if intent.max_price is None else display.stored(intent.max_price)
    return Constraints(intent.colours, intent.kinds, low, high)


def _merged(old: Constraints, new: Constraints) -> Constraints:
    """The old constraints with each kind the new ones state replaced."""
    price_said = new.min_price is not None or new.max_price is not None
    return Constraints(
        new.colours or old.colours,
        new.kinds or old.kinds,
        new.min_price if price_said else old.min_price,
        new.max_price if price_said else old.max_price,
    )


def _cheaper(
    state: ConversationState, referenced: str | None, catalog: Catalog
) -> tuple[ConversationState, str]:
    """Bound the price strictly below the referenced item's (else the pick's, else the
    cheapest shown item with a price)."""
    priced = [
        i for i in ([referenced] if referenced else []) + list(state.shown) if _price(catalog, i)
    ]
    if not priced:
        raise TurnError("None of the items I showed has a price, so I can't find cheaper ones.")
    item = priced[0]
    price = _price(catalog, item)
    assert price is not None
    # A cent below on the shown scale, so "cheaper" never shows the same price again.
    bound = price - catalog.display.stored(0.01)
    constraints = replace(state.constraints, max_price=bound)
    if constraints.min_price is not None and constraints.min_price > bound:
        constraints = replace(constraints, min_price=None)
    shown = catalog.display.text(price)
    return replace(state, constraints=constraints), f"cheaper than {shown}"


def _price(catalog: Catalog, item_id: str) -> float | None:
    facts = catalog.get(item_id)
    return None if facts is None else facts.price


def _name(catalog: Catalog, item_id: str) -> str:
    facts = catalog.get(item_id)
    return (facts.title or facts.label or item_id) if facts else item_id
