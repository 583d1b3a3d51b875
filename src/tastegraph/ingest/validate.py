"""Turn raw row values into store records, or raise RowError naming the field at fault."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tastegraph.config import ACTIONS
from tastegraph.ingest.quarantine import RowError
from tastegraph.store import Event, Item
from tastegraph.store.base import id_problem

# Unix seconds between 1970 and 2200; larger numbers are most likely milliseconds.
MAX_UNIX_SECONDS = 7_258_118_400

ITEM_COLUMNS = ("id", "title", "description", "image", "price", "attributes")
EVENT_COLUMNS = (
    "event_id",
    "user",
    "item",
    "action",
    "rating",
    "weight",
    "timestamp",
    "collection",
)


def parse_id(values: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    value = values.get(field)
    if value is None:
        if required:
            raise RowError(field, f"missing {field}")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, str | int):
        raise RowError(field, f"{field} must be a string or an integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        if required:
            raise RowError(field, f"missing {field}")
        return None
    if problem := id_problem(text, field):  # the API's and the store's rule
        raise RowError(field, problem)
    return text


def parse_text(values: dict[str, Any], field: str) -> str | None:
    value = values.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError(field, f"{field} must be text, got {type(value).__name__}")
    return value.strip() or None


def parse_number(
    values: dict[str, Any], field: str, *, minimum: float | None = None
) -> float | None:
    value = values.get(field)
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise RowError(field, f"{field} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise RowError(field, f"{field} is not a finite number: {value!r}")
    if minimum is not None and number < minimum:
        raise RowError(field, f"{field} must be at least {minimum}, got {number}")
    return number


def parse_timestamp(values: dict[str, Any], field: str = "timestamp") -> float:
    """ISO 8601 (a date, or a date and time; no zone means UTC) or unix seconds."""
    value = values.get(field)
    if value is None:
        raise RowError(field, f"missing {field}")
    if isinstance(value, datetime | date):
        return _to_unix(value)
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        seconds = math.nan
    if math.isfinite(seconds):
        if not 0 <= seconds <= MAX_UNIX_SECONDS:
            raise RowError(field, f"{field} {value!r} is outside 1970..2200 in unix seconds")
        return seconds
    try:
        return _to_unix(datetime.fromisoformat(str(value).strip()))
    except ValueError:
        raise RowError(
            field, f"cannot parse {field} {value!r}; expected ISO 8601 or unix seconds"
        ) from None


def _to_unix(moment: datetime | date) -> float:
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_attributes(values: dict[str, Any], known_columns: tuple[str, ...]) -> dict[str, Any]:
    """Free-form attributes: an `attributes` JSON object plus every column not known."""
    raw = values.get("attributes")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RowError("attributes", f"attributes is not valid JSON: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise RowError("attributes", "attributes must be a JSON object")
    attributes = dict(raw or {})
    attributes.update((k, v) for k, v in values.items() if k not in known_columns and v is not None)
    return attributes


def parse_item(values: dict[str, Any], base_dir: Path) -> tuple[Item, Path | None]:
    """An item row and the path of its photo (relative paths are relative to the file)."""
    item_id = parse_id(values, "id")
    assert item_id is not None
    item = Item(
        id=item_id,
        title=parse_text(values, "title"),
        description=parse_text(values, "description"),
        attributes=parse_attributes(values, ITEM_COLUMNS),
        price=parse_number(values, "price", minimum=0.0),
    )
    image = parse_text(values, "image")
    image_path = None
    if image is not None:
        image_path = Path(image) if Path(image).is_absolute() else base_dir / image
    return item, image_path


def parse_action_and_weight(
    values: dict[str, Any], action_weights: dict[str, float], rating_max: float
) -> tuple[str, float]:
    """An explicit action (weight from the row or the default), or a rating in 0..rating_max.

    A rating maps to share = rating / rating_max and to an action: at least 0.7 of the
    scale is a save, at most 0.4 a hide, anything between a view. The weight is the share,
    or share - 1 for a hide, so dislikes weigh negative like a hide does.
    """
    weight = parse_number(values, "weight")
    action = parse_text(values, "action")
    if action is not None:
        action = action.lower()
        if action not in ACTIONS:
            raise RowError("action", f"unknown action {action!r}; expected one of {ACTIONS}")
        return action, weight if weight is not None else action_weights[action]
    rating = parse_number(values, "rating", minimum=0.0)
    if rating is None:
        raise RowError("action", "a row needs an action or a rating")
    if rating > rating_max:
        raise RowError("rating", f"rating {rating} is above the scale maximum {rating_max}")
    share = rating / rating_max
    action = "save" if share >= 0.7 else "hide" if share <= 0.4 else "view"
    default_weight = share - 1.0 if action == "hide" else share
    return action, weight if weight is not None else default_weight


class EventIdDeriver:
    """Stable ids for events that carry none: a hash of the row's content plus how many
    identical rows came before it in the same file, so re-reading the file gives the same
    ids and two genuinely repeated events (two units bought the same day) both survive."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._seen: Counter[str] = Counter()

    def __call__(self, *fields: object) -> str:
        digest = hashlib.sha256("\x1f".join(map(str, fields)).encode()).hexdigest()[:24]
        occurrence = self._seen[digest]
        self._seen[digest] += 1
        return f"{self.prefix}{digest}-{occurrence}"


# The HTTP API's names for event columns (POST /v1/events), accepted in files too.
EVENT_ALIASES = {
    "user_id": "user",
    "item_id": "item",
    "ts": "timestamp",
    "collection_id": "collection",
}


def _file_names(values: dict[str, Any]) -> dict[str, Any]:
    """The row with the API's column names read as the file's."""
    renamed = dict(values)
    for alias, name in EVENT_ALIASES.items():
        value = renamed.pop(alias, None)
        if value is None:
            continue
        if renamed.get(name) is not None:
            raise RowError(alias, f"both {name} and {alias} are given; they name one column")
        renamed[name] = value
    return renamed


def parse_event(
    values: dict[str, Any],
    derive_id: EventIdDeriver,
    action_weights: dict[str, float],
    rating_max: float,
) -> Event:
    values = _file_names(values)
    user = parse_id(values, "user")
    item = parse_id(values, "item")
    assert user is not None and item is not None
    action, weight = parse_action_and_weight(values, action_weights, rating_max)
    ts = parse_timestamp(values)
    collection = parse_id(values, "collection", required=False)
    context = {k: v for k, v in values.items() if k not in EVENT_COLUMNS and v is not None}
    event_id = parse_id(values, "event_id", required=False)
    if event_id is None:
        event_id = derive_id(user, item, action, weight, ts, collection)
    return Event(event_id, user, item, action, weight, ts, collection, context)
