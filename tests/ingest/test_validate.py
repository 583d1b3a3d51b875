"""Field parsers: timestamps, ids, actions and weights, and derived event ids."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tastegraph.config import ACTIONS, Settings
from tastegraph.ingest.quarantine import RowError
from tastegraph.ingest.validate import (
    EventIdDeriver,
    parse_action_and_weight,
    parse_event,
    parse_id,
    parse_number,
    parse_timestamp,
)
from tastegraph.store.base import MAX_ID_LENGTH

WEIGHTS = Settings().action_weights
JAN_1_2024 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def timestamp_of(value: object) -> float:
    return parse_timestamp({"timestamp": value})


def action_and_weight(**values: object) -> tuple[str, float]:
    return parse_action_and_weight(values, WEIGHTS, 5.0)


def row_error(call: Callable[..., object], *args: object) -> RowError:
    with pytest.raises(RowError) as caught:
        call(*args)
    return caught.value


# -- parse_timestamp ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01", JAN_1_2024),
        ("2024-01-01T00:00:00Z", JAN_1_2024),
        ("2024-01-01T02:30:00+02:30", JAN_1_2024),
        ("2023-12-31T19:00:00-05:00", JAN_1_2024),
        ("2024-01-01T00:00:00", JAN_1_2024),  # no zone means UTC
        ("2024-01-01 00:00:00", JAN_1_2024),
        (" 2024-01-01T00:00:00Z ", JAN_1_2024),
        (int(JAN_1_2024), JAN_1_2024),
        (str(int(JAN_1_2024)), JAN_1_2024),
        ("1704067200.5", JAN_1_2024 + 0.5),
        (0, 0.0),
        (date(2024, 1, 1), JAN_1_2024),
        (datetime(2024, 1, 1), JAN_1_2024),
        (datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), JAN_1_2024),
    ],
)
def test_parse_timestamp_accepts_iso_and_unix_seconds(value: object, expected: float) -> None:
    assert timestamp_of(value) == expected


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "01/02/2024", "nan", "inf", ""])
def test_parse_timestamp_refuses_garbage(value: str) -> None:
    error = row_error(timestamp_of, value)
    assert error.field == "timestamp"


def test_parse_timestamp_missing() -> None:
    error = row_error(parse_timestamp, {})
    assert (error.field, error.reason) == ("timestamp", "missing timestamp")


@pytest.mark.parametrize("value", [1_704_067_200_000, "1704067200000", -1, 7_258_118_401])
def test_parse_timestamp_refuses_milliseconds_and_numbers_out_of_range(value: object) -> None:
    error = row_error(timestamp_of, value)
    assert error.field == "timestamp"
    assert "outside 1970..2200" in error.reason


def test_parse_timestamp_refuses_an_integer_beyond_the_float_range() -> None:
    error = row_error(timestamp_of, 10**400)
    assert error.field == "timestamp"


def test_parse_number_refuses_an_integer_beyond_the_float_range() -> None:
    error = row_error(parse_number, {"weight": 10**400}, "weight")
    assert error.field == "weight"


@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2199, 12, 30)),
    offset_minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_parse_timestamp_round_trips_any_aware_isoformat(
    moment: datetime, offset_minutes: int
) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert timestamp_of(aware.isoformat()) == aware.timestamp()


@given(st.integers(min_value=0, max_value=7_258_118_400))
def test_parse_timestamp_takes_integer_strings_as_unix_seconds(seconds: int) -> None:
    assert timestamp_of(str(seconds)) == seconds


# -- parse_id -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), ("  abc \t", "abc"), (42, "42"), (42.0, "42"), ("0042", "0042")],
)
def test_parse_id_accepts_text_and_integers(value: object, expected: str) -> None:
    assert parse_id({"id": value}, "id") == expected


@pytest.mark.parametrize("values", [{}, {"id": None}, {"id": "   "}])
def test_parse_id_missing(values: dict[str, object]) -> None:
    error = row_error(parse_id, values, "id")
    assert (error.field, error.reason) == ("id", "missing id")


def test_parse_id_missing_is_none_when_optional() -> None:
    assert parse_id({}, "collection", required=False) is None
    assert parse_id({"collection": None}, "collection", required=False) is None


def test_parse_id_blank_is_none_when_optional() -> None:
    assert parse_id({"collection": "  "}, "collection", required=False) is None


def test_parse_id_length_limit() -> None:
    assert parse_id({"id": "x" * MAX_ID_LENGTH}, "id") == "x" * MAX_ID_LENGTH
    error = row_error(parse_id, {"id": "x" * (MAX_ID_LENGTH + 1)}, "id")
    assert error.reason == f"id is {MAX_ID_LENGTH + 1} characters long; at most {MAX_ID_LENGTH}"


@pytest.mark.parametrize("value", ["../../etc/passwd", "a b", ".hidden", "-x", "a/b", "ü"])
def test_parse_id_holds_ids_to_the_api_s_rule(value: str) -> None:
    error = row_error(parse_id, {"id": value}, "id")
    assert error.field == "id" and "is not an id: letters, digits and _.:@- only" in error.reason


@pytest.mark.parametrize("value", ["a\x00b", "a\nb", "a\tb", "a\x1bb", "a\x7fb"])
def test_parse_id_refuses_control_characters(value: str) -> None:
    error = row_error(parse_id, {"item": value}, "item")
    assert (error.field, error.reason) == ("item", "item contains control characters")


@pytest.mark.parametrize("value", [1.5, float("nan"), [1], {"a": 1}])
def test_parse_id_refuses_other_types(value: object) -> None:
    error = row_error(parse_id, {"id": value}, "id")
    assert "must be a string or an integer" in error.reason


@given(
    before=st.text(min_size=1).filter(lambda s: s.strip() == s and s != ""),
    control=st.sampled_from([chr(c) for c in [*range(32), 0x7F]]),
    after=st.text(min_size=1).filter(lambda s: s.strip() == s and s != ""),
)
def test_parse_id_never_accepts_a_control_character_inside(
    before: str, control: str, after: str
) -> None:
    with pytest.raises(RowError):
        parse_id({"id": before + control + after}, "id")


@given(st.text())
def test_parse_id_result_never_holds_a_c0_control_character(text: str) -> None:
    try:
        result = parse_id({"id": text}, "id")
    except RowError:
        return
    assert result is not None and result == result.strip()
    assert 0 < len(result) <= MAX_ID_LENGTH
    assert not any(ord(ch) < 32 or ch == "\x7f" for ch in result)


@pytest.mark.parametrize("value", ["a\x85b", "a\x9bb"])
def test_parse_id_refuses_c1_control_characters(value: str) -> None:
    row_error(parse_id, {"id": value}, "id")


# -- parse_action_and_weight --------------------------------------------------------------


def test_explicit_action_and_weight() -> None:
    assert action_and_weight(action="purchase", weight="2.5") == ("purchase", 2.5)


@pytest.mark.parametrize("action", ACTIONS)
def test_explicit_action_takes_the_default_weight_from_settings(action: str) -> None:
    assert action_and_weight(action=action) == (action, WEIGHTS[action])


def test_custom_action_weights_are_used() -> None:
    weights = {**WEIGHTS, "click": 0.42}
    assert parse_action_and_weight({"action": "click"}, weights, 5.0) == ("click", 0.42)


def test_action_is_case_insensitive_and_beats_a_rating() -> None:
    assert action_and_weight(action=" SAVE ", rating="1") == ("save", WEIGHTS["save"])


def test_unknown_action_names_the_action() -> None:
    with pytest.raises(RowError, match="unknown action 'like'") as caught:
        action_and_weight(action="like")
    assert caught.value.field == "action"


@pytest.mark.parametrize(
    ("rating", "expected"),
    [
        ("5", ("save", 1.0)),
        ("3.5", ("save", 0.7)),
        ("3", ("view", 0.6)),
        ("2.5", ("view", 0.5)),
        ("2", ("hide", -0.6)),  # a dislike weighs negative, like a hide
        ("0", ("hide", -1.0)),
    ],
)
def test_rating_maps_to_an_action_and_a_weight(rating: str, expected: tuple[str, float]) -> None:
    action, weight = action_and_weight(rating=rating)
    assert action == expected[0]
    assert weight == pytest.approx(expected[1])


def test_rating_on_another_scale() -> None:
    assert parse_action_and_weight({"rating": 8}, WEIGHTS, 10.0) == ("save", 0.8)


def test_rating_with_an_explicit_weight_keeps_the_weight() -> None:
    assert action_and_weight(rating="5", weight="3") == ("save", 3.0)


def test_rating_above_the_scale_is_refused() -> None:
    with pytest.raises(RowError, match=r"above the scale maximum 5\.0") as caught:
        action_and_weight(rating="6")
    assert caught.value.field == "rating"


def test_negative_rating_is_refused() -> None:
    with pytest.raises(RowError) as caught:
        action_and_weight(rating="-1")
    assert caught.value.field == "rating"


def test_row_without_action_or_rating_is_refused() -> None:
    with pytest.raises(RowError, match="needs an action or a rating") as caught:
        action_and_weight(weight="1")
    assert caught.value.field == "action"


@pytest.mark.parametrize("weight", ["heavy", "nan", "inf"])
def test_weight_that_is_not_a_finite_number_is_refused(weight: str) -> None:
    with pytest.raises(RowError) as caught:
        action_and_weight(action="view", weight=weight)
    assert caught.value.field == "weight"


# -- EventIdDeriver -----------------------------------------------------------------------

ROWS: list[dict[str, object]] = [
    {"user": "u1", "item": "i1", "action": "view", "timestamp": "2024-01-01"},
    {"user": "u1", "item": "i2", "action": "view", "timestamp": "2024-01-01"},
    {"user": "u1", "item": "i1", "action": "view", "timestamp": "2024-01-01"},
    {"user": "u2", "item": "i1", "action": "save", "timestamp": "2024-01-02T10:00:00Z"},
]


def derived_ids(rows: list[dict[str, object]]) -> list[str]:
    derive = EventIdDeriver("row-")
    return [parse_event(row, derive, WEIGHTS, 5.0).event_id for row in rows]


def test_derived_ids_are_stable_across_derivers() -> None:
    assert derived_ids(ROWS) == derived_ids(ROWS)


def test_identical_rows_get_distinct_ids_and_others_differ() -> None:
    ids = derived_ids(ROWS)
    assert len(set(ids)) == len(ids)
    assert all(event_id.startswith("row-") for event_id in ids)
    assert ids[0].endswith("-0") and ids[2].endswith("-1")
    assert ids[0].rsplit("-", 1)[0] == ids[2].rsplit("-", 1)[0]


def test_derived_id_ignores_how_the_timestamp_was_written() -> None:
    iso = derived_ids([{**ROWS[0], "timestamp": "2024-01-01T00:00:00Z"}])
    unix = derived_ids([{**ROWS[0], "timestamp": str(int(JAN_1_2024))}])
    assert iso == unix == derived_ids(ROWS[:1])


def test_event_columns_may_carry_the_api_s_names() -> None:
    api_names = {"user_id": "u1", "item_id": "i1", "action": "view", "ts": JAN_1_2024}
    derive = EventIdDeriver("row-")
    event = parse_event(api_names | {"collection_id": "b1"}, derive, WEIGHTS, 5.0)
    assert (event.user_id, event.item_id, event.ts, event.collection_id) == (
        "u1",
        "i1",
        JAN_1_2024,
        "b1",
    )
    assert event.context == {}  # the aliases are columns, not context
    assert derived_ids([api_names]) == derived_ids(ROWS[:1])
    error = row_error(parse_event, api_names | {"user": "u2"}, derive, WEIGHTS, 5.0)
    assert error.field == "user_id" and "both user and user_id" in error.reason


def test_explicit_event_id_is_kept() -> None:
    derive = EventIdDeriver("row-")
    event = parse_event({**ROWS[0], "event_id": "e-7"}, derive, WEIGHTS, 5.0)
    assert event.event_id == "e-7"


@given(st.lists(st.sampled_from(ROWS), max_size=20))
def test_derived_ids_are_unique_and_repeatable_for_any_sequence(
    rows: list[dict[str, object]],
) -> None:
    ids = derived_ids(rows)
    assert len(set(ids)) == len(ids)
    assert ids == derived_ids(rows)
