"""Understanding a message, carrying the conversation, and checking replies against facts:
rules over a hand-made catalog, no language model."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tastegraph.assistant.conversation import ConversationState, TurnError, next_turn
from tastegraph.assistant.facts import Catalog, Constraints
from tastegraph.assistant.faithful import (
    check,
    degenerate,
    faithful,
    reason_opening,
    template_reason,
    uninformative,
)
from tastegraph.assistant.understand import understand
from tastegraph.display import PriceDisplay
from tastegraph.graph.taste import ItemDetails


def details(title: str | None, colour: str, kind: str, price: float | None) -> ItemDetails:
    attributes = {"colour_group": colour, "product_type": kind, "product_group": "Garment"}
    return ItemDetails(title, None, attributes if colour else {}, price, f"{title} in cotton")


@pytest.fixture
def catalog() -> Catalog:
    items = {
        "d1": details("Party dress", "Black", "Dress", 0.030),
        "d2": details("Wrap dress", "Dark Blue", "Dress", 0.020),
        "d3": details("Slip dress", "Light Blue", "Dress", 0.010),
        "t1": details("Vest", "Black", "Vest top", 0.008),
        "t2": details("Strap top", "Red", "Top", 0.012),
        "p1": ItemDetails(None, None, {}, 0.015),  # photo-only: no attributes
    }
    return Catalog(items, PriceDisplay("€", 1000.0))


def test_a_message_names_constraints_from_the_catalog_vocabulary(catalog: Catalog) -> None:
    intent = understand("A blue dress under €25, please", catalog)
    assert intent.need and set(intent.colours) == {"Dark Blue", "Light Blue"}
    assert intent.kinds == ("Dress",) and intent.max_price == 25.0
    assert understand("tops between 5 and 10 euros", catalog).kinds == ("Top",)  # spelled out
    assert understand("a vest top", catalog).kinds == ("Vest top",)
    assert understand("a dress with a top", catalog).kinds == ("Dress", "Top")
    ranged = understand("between 5 and 10 euros", catalog)
    assert (ranged.min_price, ranged.max_price, ranged.need) == (5.0, 10.0, "")
    assert understand("in dark blue", catalog).colours == ("Dark Blue",)
    assert understand("something light", catalog).colours == ()  # a qualifier names no colour


@pytest.mark.parametrize(
    ("message", "reference", "flag"),
    [
        ("more like the second one", 2, "like"),
        ("something similar to [3]", 3, "like"),
        ("more like it", 1, "like"),
        ("not that one", 1, "reject"),
        ("no, not #2", 2, "reject"),
        ("cheaper than the third one", 3, "cheaper"),
        ("cheaper", None, "cheaper"),
        ("show me more", None, "more"),
        ("the last one, but cheaper", -1, "cheaper"),
    ],
)
def test_references_and_what_to_do_with_them(
    catalog: Catalog, message: str, reference: int | None, flag: str
) -> None:
    intent = understand(message, catalog)
    assert intent.reference == reference and getattr(intent, flag)
    assert intent.need == ""


def test_a_new_need_replaces_the_constraints_and_a_refinement_keeps_them(catalog: Catalog) -> None:
    turn = next_turn(ConversationState(), understand("a black dress", catalog), catalog)
    assert turn.state.source == "search" and turn.state.constraints.colours == ("Black",)
    state = turn.state.showing(["d1", "d2"])
    refined = next_turn(state, understand("under 25", catalog), catalog).state
    assert refined.constraints == Constraints(("Black",), ("Dress",), None, 0.025)
    assert refined.need == "a black dress"
    fresh = next_turn(refined, understand("a red top", catalog), catalog).state
    assert fresh.constraints.colours == ("Red",) and fresh.constraints.max_price is None


def test_cheaper_bounds_below_the_pick_or_the_referenced_item(catalog: Catalog) -> None:
    state = ConversationState(shown=("d1", "d2", "d3"), source="search", need="dress")
    pick = next_turn(state, understand("cheaper", catalog), catalog)
    assert pick.state.constraints.max_price is not None
    assert pick.state.constraints.max_price < 0.030
    assert catalog.display.text(0.030) in pick.applied
    second = next_turn(state, understand("cheaper than the second one", catalog), catalog)
    assert second.state.constraints.max_price is not None
    assert 0.019 < second.state.constraints.max_price < 0.020
    allowed = catalog.allowed(["d1", "d2", "d3"], second.state.constraints)
    assert allowed.tolist() == [False, False, True]


def test_rejected_items_stay_out_and_more_skips_what_was_seen(catalog: Catalog) -> None:
    state = ConversationState(shown=("d1", "d2"), seen=("d1", "d2"), source="search", need="x")
    turn = next_turn(state, understand("not that one", catalog), catalog)
    assert turn.state.rejected == ("d1",) and "d1" in turn.exclude
    later = next_turn(turn.state.showing(["d2", "d3"]), understand("in blue", catalog), catalog)
    assert "d1" in later.exclude
    more = next_turn(turn.state, understand("show me more", catalog), catalog)
    assert {"d1", "d2"} <= more.exclude
    like = next_turn(state, understand("more like [2]", catalog), catalog)
    assert like.state.source == "related" and like.state.anchor == "d2"


def test_labels_that_were_never_shown_get_a_reply_not_a_crash(catalog: Catalog) -> None:
    state = ConversationState(shown=("d1", "d2"))
    with pytest.raises(TurnError, match="no number 9"):
        next_turn(state, understand("the ninth one", catalog), catalog)
    with pytest.raises(TurnError, match="haven't shown"):
        next_turn(ConversationState(), understand("not that one", catalog), catalog)


def test_a_state_from_the_client_is_validated(catalog: Catalog) -> None:
    good = ConversationState(shown=("d1",), rejected=("d2",), constraints=Constraints(("Black",)))
    assert ConversationState.parse(good.to_json(), catalog) == good
    with pytest.raises(ValueError, match="not in the catalog"):
        ConversationState.parse({**good.to_json(), "shown": ["nope"]}, catalog)
    with pytest.raises(ValueError, match="unknown colours"):
        ConversationState.parse({**good.to_json(), "colours": ["Plaid"]}, catalog)


def test_constraints_never_pass_an_item_that_lacks_the_attribute(catalog: Catalog) -> None:
    ids = list(catalog.facts)
    assert catalog.allowed(ids, Constraints(("Black",))).tolist() == [
        True, False, False, True, False, False
    ]  # fmt: skip
    priced = catalog.allowed(ids, Constraints(max_price=0.0155))
    assert [i for i, ok in zip(ids, priced, strict=True) if ok] == ["d3", "t1", "t2", "p1"]


def test_the_checker_catches_a_false_colour_type_material_or_price(catalog: Catalog) -> None:
    dress = catalog.get("d1")
    assert faithful("A black party dress in cotton, €30.00, for the evening.", dress, catalog)
    planted = check("A red dress for the evening.", dress, catalog)
    assert [(c.what, c.said, c.true) for c in planted] == [
        ("colour", "red", False),
        ("kind", "dress", True),
    ]
    assert not faithful("A lovely black dress in silk.", dress, catalog)
    assert not faithful("A black dress for just €12.00.", dress, catalog)
    # Another item named in quotes is not a claim about this one.
    assert faithful("A black dress, close to “Strap top” you bought.", dress, catalog)
    assert not faithful("A black dress.", catalog.get("p1"), catalog)  # nothing known


def test_degenerate_replies_are_caught(catalog: Catalog) -> None:
    dress = catalog.get("d1")
    assert degenerate("Citrus: 2018-1100mm, 2018-1100mm, 2018-1100mm", dress, catalog)
    assert degenerate("a black dress a black dress a black dress", dress, catalog)
    assert degenerate("dress", dress, catalog) == "too short"
    assert degenerate("A black dress for €30.00, made for parties.", dress, catalog) is None


def test_true_but_empty_reasons_are_caught(catalog: Catalog) -> None:
    dress = catalog.get("d1")
    spoken_of = "The shopper is looking for a dress in the style of a classic."
    assert faithful(spoken_of, dress, catalog)
    assert uninformative(spoken_of, dress, catalog) == "speaks of the shopper"
    empty = "It is a classic and popular style of the time."
    assert uninformative(empty, dress, catalog) == "says nothing about the item"
    assert uninformative("This black dress suits your evening out.", dress, catalog) is None


def test_the_lm_reason_opens_with_the_items_look(catalog: Catalog) -> None:
    assert reason_opening(catalog.get("d2")) == "This dark blue dress"
    assert reason_opening(replace(catalog.get("d2"), kind="Shorts")) == "These dark blue shorts"
    assert reason_opening(replace(catalog.get("d2"), kind="")) == ""


def test_template_reasons_are_true_of_their_item(catalog: Catalog) -> None:
    for item_id, facts in catalog.facts.items():
        reason = template_reason(facts, catalog, "close to “Vest” you bought")
        assert faithful(reason, facts, catalog), (item_id, reason)
    assert template_reason(catalog.get("d2"), catalog, None) == "A dark blue dress, €20.00."
    shorts = replace(catalog.get("d2"), kind="Shorts")
    assert template_reason(shorts, catalog, None) == "Dark blue shorts, €20.00."
