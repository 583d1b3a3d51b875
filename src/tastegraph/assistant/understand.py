"""Understand one chat message: what the shopper asks for, in rules a test can pin down.

A message may name a new need ("a dress for a summer party"), constraints (colours and
kinds the catalog knows, price bounds: "under 30", "between 10 and 20"), a reference to a
shown item ("[2]", "the second one", "that one"), and what to do with it: "more like it",
"not that one", "cheaper" (than the pick, or than the referenced item), "show me more".
Prices are read as the shopper sees them (the catalog's display scale).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tastegraph.assistant.facts import Catalog, words

ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "last": -1,
}
_NUMBER = r"(\d+(?:[.,]\d{1,2})?)"
_MONEY = rf"(?:€|\$|£)?\s*{_NUMBER}\s*(?:€|\$|£|euros?|eur|dollars?|pounds?)?"
_RANGE = re.compile(rf"\bbetween\s+{_MONEY}\s+(?:and|to)\s+{_MONEY}|{_MONEY}\s*(?:-|to)\s*{_MONEY}")
_MAX = re.compile(
    rf"(?:\bunder|\bbelow|\bless than|\bcheaper than|\bmax(?:imum)?|\bup to|\bat most|"
    rf"\bno more than|<)\s*{_MONEY}"
)
_MIN = re.compile(rf"(?:\bover|\babove|\bmore than|\bat least|\bmin(?:imum)?|>)\s*{_MONEY}")
_ORDINAL_WORDS = "|".join(ORDINALS)
_LABEL = re.compile(
    rf"\[(\d+)\]|#\s*(\d+)|\b(?:number|no\.?|item|option|card)\s*(\d+)\b|\b(\d+)(?:st|nd|rd|th)\b"
    rf"(?:\s+one)?|\b(?:the\s+)?({_ORDINAL_WORDS})(?:\s+one)?\b"
)
_THAT = re.compile(r"\b(?:that|this|the)\s+one\b|\bit\b")
_LIKE = re.compile(r"\b(?:more\s+)?like\b|\bsimilar\b|\bcloser to\b|\bin the style of\b")
_REJECT = re.compile(r"\bnot\b|\bno\b|\bdon'?t\b|\bnever\b|\bdrop\b|\bremove\b|\bhate\b")
_CHEAPER = re.compile(r"\bcheaper\b|\bless expensive\b|\blower price|\bmore affordable\b")
_MORE = re.compile(r"\bmore\b|\bothers?\b|\bother ones\b|\bsomething else\b|\banother\b")
STOPWORDS = set(
    words(
        "a an the i i'm im me my mine you your want wanted need needs looking look for show "
        "something some any anything please pls do does have has got in with and or but get "
        "what which should next can could would one ones that this it its is are be to of on "
        "maybe prefer now instead okay ok thanks thank yes no not hmm also too just find buy "
        "more cheaper price prices euro euros dollar like similar other others else another "
        "let see give them these those there here same again still only really very bit "
        "less expensive lower affordable under below over above between at most least than "
        "up max min number option item items card so well oh hi hello hey there how about "
        "style closer kind sort nice good great cool great"
    )
)


@dataclass(frozen=True)
class Intent:
    need: str = ""  # what to search for, in the shopper's words; "" when nothing new
    colours: tuple[str, ...] = ()  # catalog colour values named
    kinds: tuple[str, ...] = ()  # catalog kinds (types or categories) named
    min_price: float | None = None  # as shown (display scale)
    max_price: float | None = None
    reference: int | None = None  # 1-based label of a shown item (-1: the last one)
    like: bool = False  # more like the referenced item
    reject: bool = False  # not the referenced item
    cheaper: bool = False  # cheaper than the referenced item (default: the pick)
    more: bool = False  # more of the same, none shown before


def understand(message: str, catalog: Catalog) -> Intent:
    text = message.lower()
    min_price, max_price, text = _prices(text)
    cheaper = bool(_CHEAPER.search(text))
    reference, text = _reference(text)
    like = reference is not None and bool(_LIKE.search(text))
    reject = reference is not None and not like and bool(_REJECT.search(text))
    more = not like and bool(_MORE.search(text))
    said = words(text)
    colours, kinds, named = _named(said, catalog)
    content = [w for i, w in enumerate(said) if i not in named and w not in STOPWORDS]
    need = " ".join(text.split()) if (content or kinds) and not (like or reject) else ""
    return Intent(
        need=need,
        colours=tuple(colours),
        kinds=tuple(kinds),
        min_price=min_price,
        max_price=max_price,
        reference=reference,
        like=like,
        reject=reject,
        cheaper=cheaper,
        more=more and not cheaper,
    )


def _amount(text: str) -> float:
    return float(text.replace(",", "."))


def _prices(text: str) -> tuple[float | None, float | None, str]:
    """The price bounds the text states, and the text without them."""
    low = high = None
    if found := _RANGE.search(text):
        numbers = sorted(_amount(g) for g in found.groups() if g is not None)
        low, high = numbers[0], numbers[-1]
        text = text[: found.start()] + " " + text[found.end() :]
    if found := _MAX.search(text):
        high = _amount(found.group(1))
        text = text[: found.start()] + " " + text[found.end() :]
    if found := _MIN.search(text):
        low = _amount(found.group(1))
        text = text[: found.start()] + " " + text[found.end() :]
    return low, high, text


def _reference(text: str) -> tuple[int | None, str]:
    """The shown item the text points at (1-based; -1 for the last), and the text without
    the pointer. "that one" and "it" mean the pick, label 1."""
    if found := _LABEL.search(text):
        number = next(g for g in found.groups() if g is not None)
        label = ORDINALS[number] if number in ORDINALS else int(number)
        return label, text[: found.start()] + " " + text[found.end() :]
    if found := _THAT.search(text):
        return 1, text[: found.start()] + " " + text[found.end() :]
    return None, text


def _named(said: list[str], catalog: Catalog) -> tuple[list[str], list[str], set[int]]:
    """Catalog colours and kinds the words name (longest phrases first), and which word
    positions named them."""
    colours: list[str] = []
    kinds: list[str] = []
    used: set[int] = set()
    for size in (3, 2, 1):
        for start in range(len(said) - size + 1):
            span = set(range(start, start + size))
            if span & used:
                continue
            phrase = said[start : start + size]
            found_kinds = catalog.kind_values(phrase)
            found_colours = [] if found_kinds else catalog.colour_values(phrase)
            if found_kinds or found_colours:
                kinds += [k for k in found_kinds if k not in kinds]
                colours += [c for c in found_colours if c not in colours]
                used |= span
    return colours, kinds, used
