"""Replies that say only what is true: claims checked against an item's facts.

A reason may state the item's colour, type, pattern, material and price. `check` finds
each such claim and whether the item's facts (assistant/facts.py) bear it out: the
attribute itself, or the item's own title and description. Text in “curly quotes” names
another item (“Strap top”, which you bought) and is not a claim about this one. `degenerate`
catches what a small LM falls into: repetition loops and digits copied from nowhere;
`uninformative` what is true but empty: a sentence about "the shopper", or one that states
nothing of the item. An LM's reason that fails any check is replaced by `template_reason`,
built from the facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tastegraph.assistant.facts import Catalog, ItemFacts, words

MATERIALS = set(
    words(
        "cotton denim linen wool woollen silk leather lace jersey knit knitted satin velvet "
        "chiffon polyester viscose suede cashmere fleece corduroy mesh tulle sequin sequins "
        "faux fur down nylon rib ribbed crochet canvas"
    )
)
# Colour words beyond a catalog's own vocabulary that a reply may still use.
COLOURS = set(
    words(
        "black white grey gray blue red green yellow pink purple orange brown beige navy "
        "cream khaki turquoise lilac gold silver burgundy mole"
    )
)
_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")
_MONEY = re.compile(r"(?:€|\$|£)\s*(\d+(?:[.,]\d{1,2})?)|(\d+(?:[.,]\d{1,2})?)\s*(?:€|eur|euros?)")
_DIGITS = re.compile(r"\d")


@dataclass(frozen=True)
class Claim:
    what: str  # colour | kind | pattern | material | price
    said: str  # the word or amount as written
    true: bool


def check(text: str, facts: ItemFacts | None, catalog: Catalog) -> list[Claim]:
    """Every attribute claim the text makes about the item, each marked true or false."""
    plain = _QUOTED.sub(" ", text)
    known = _known_words(facts)
    said = words(plain)
    claims = []
    colour_words = COLOURS | {w for ws in catalog.colours.values() for w in ws[-1:]}
    kind_words = {w for ws in catalog.kinds.values() for w in ws[-1:]}
    pattern_words = {w for ws in catalog.patterns.values() for w in ws} - {"solid", "other"}
    for word in dict.fromkeys(said):
        for what, vocabulary in (
            ("colour", colour_words),
            ("kind", kind_words),
            ("pattern", pattern_words),
            ("material", MATERIALS),
        ):
            if word in vocabulary:
                claims.append(Claim(what, word, word in known))
                break
    for match in _MONEY.finditer(plain):
        amount = float((match.group(1) or match.group(2)).replace(",", "."))
        price = facts.price if facts is not None else None
        true = price is not None and abs(catalog.display.shown(price) - amount) < 0.011
        claims.append(Claim("price", match.group(0).strip(), true))
    return claims


def _known_words(facts: ItemFacts | None) -> set[str]:
    if facts is None:
        return set()
    values = (facts.colour, facts.kind, facts.category, facts.pattern, facts.text)
    return {w for value in values if value for w in words(value)}


def degenerate(text: str, facts: ItemFacts | None, catalog: Catalog) -> str | None:
    """Why the text is not a sentence to show, or None: a loop, digits that are not the
    item's price, or too little text."""
    said = _WORDS.findall(text.lower())
    if len(said) < 3:
        return "too short"
    grams = [tuple(said[i : i + 3]) for i in range(len(said) - 2)]
    if len(set(grams)) < len(grams):
        return "repeats itself"
    if any(said[i] == said[i + 1] for i in range(len(said) - 1)):
        return "repeats a word"
    rest = _MONEY.sub(" ", _QUOTED.sub(" ", text))
    own_price = catalog.display.text(facts.price if facts else None)
    if own_price:
        rest = rest.replace(own_price, " ")
    if _DIGITS.search(rest):
        return "copies numbers or ids"
    if "[" in text or "<|" in text or _FIELD.search(text):
        return "copies prompt markup"
    return None


_WORDS = re.compile(r"[a-z']+|\d+")
# The labels of the facts the LM is given: a reply that repeats them echoes its prompt.
_FIELD = re.compile(r"\b(?:asked|item|name|colour|type|pattern|price)\s*:", re.IGNORECASE)


def faithful(text: str, facts: ItemFacts | None, catalog: Catalog) -> bool:
    """True when the text is a proper sentence whose every claim is true of the item."""
    if degenerate(text, facts, catalog):
        return False
    return all(claim.true for claim in check(text, facts, catalog))


_SPOKEN_OF = re.compile(r"\bthe (?:shopper|customer|user|buyer)s?\b", re.IGNORECASE)


def uninformative(text: str, facts: ItemFacts | None, catalog: Catalog) -> str | None:
    """Why a true sentence still tells the shopper nothing, or None: it speaks of them
    rather than to them ("The shopper is looking for..."), or states nothing true of the
    item ("a classic and popular style")."""
    if _SPOKEN_OF.search(text):
        return "speaks of the shopper"
    if not any(claim.true for claim in check(text, facts, catalog)):
        return "says nothing about the item"
    return None


def spoken_look(facts: ItemFacts) -> str:
    """'black dress', 'dress', 'black item': the item's colour and type as a reply says them."""
    kind = (facts.kind or "item").lower()
    colour = facts.colour.lower().removeprefix("other ") + " " if facts.colour else ""
    return f"{colour}{kind}"


def reason_opening(facts: ItemFacts | None) -> str:
    """'This black dress', 'These blue shorts': the first words of the LM's reason, so
    that it is about the item and true of it; empty when the item has no type."""
    if facts is None or not facts.kind:
        return ""
    look = spoken_look(facts)
    return f"{'These' if plural(look) else 'This'} {look}"


def plural(look: str) -> bool:
    """Whether a look names a plural: shorts, trousers, leggings/tights; not dress."""
    return look.endswith("s") and not look.endswith("ss")


def template_reason(facts: ItemFacts | None, catalog: Catalog, taste: str | None) -> str:
    """A reason from the facts alone: 'A black dress in stripes, €24.99, close to “Strap
    top” you bought.' `taste` is a clause about the shopper's history, or None."""
    parts = []
    if facts is not None and facts.label:
        pattern = ""
        if facts.pattern and facts.pattern.lower() not in ("solid", "other", "unknown"):
            pattern = f" ({facts.pattern.lower()})"
        look = spoken_look(facts)
        described = f"{look}{pattern}"
        if plural(look):
            parts.append(described)  # "black trousers", not "a black trousers"
        else:
            parts.append(("an " if described[0] in "aeiou" else "a ") + described)
    price = catalog.display.text(facts.price if facts else None)
    if price:
        parts.append(price)
    if taste:
        parts.append(taste)
    if not parts:
        return "Picked for you from what shoppers like you bought."
    text = ", ".join(parts)
    return text[0].upper() + text[1:] + "."
