"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from tastegraph.config import ACTIONS
from tastegraph.ingest.quarantine import RowError
from tastegraph.ingest.validate import parse_timestamp
from tastegraph.store.base import ID_PATTERN, MAX_ID_LENGTH

# Ids travel in URLs and name files nowhere: the store's one id rule (store/base.py).
Id = Field(pattern=ID_PATTERN, min_length=1, max_length=MAX_ID_LENGTH)


class EventIn(BaseModel):
    """An event, named as in event files: `user`, `item`, `timestamp` and `collection` are
    accepted for `user_id`, `item_id`, `ts` and `collection_id` (one spelling per event)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        pattern=ID_PATTERN, description="Unique per event: re-sending it changes nothing."
    )
    user_id: str = Field(pattern=ID_PATTERN, validation_alias=AliasChoices("user_id", "user"))
    item_id: str = Field(pattern=ID_PATTERN, validation_alias=AliasChoices("item_id", "item"))
    action: Literal["view", "click", "save", "purchase", "hide"] = Field(
        description=f"One of {', '.join(ACTIONS)}."
    )
    ts: float | None = Field(
        default=None,
        validation_alias=AliasChoices("ts", "timestamp"),
        description="Unix seconds or ISO 8601 (no zone: UTC), as in event files; "
        "default: when it arrives.",
    )
    weight: float | None = Field(
        default=None, ge=-100, le=100, description="Default: the action's configured weight."
    )
    collection_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        validation_alias=AliasChoices("collection_id", "collection"),
    )

    @field_validator("ts", mode="before")
    @classmethod
    def _one_timestamp_rule(cls, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("a timestamp is unix seconds or ISO 8601 text, not true/false")
        try:
            return parse_timestamp({"ts": value}, "ts")
        except RowError as error:
            raise ValueError(error.reason) from None


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


class EventsOut(BaseModel):
    stored: int = Field(description="New events, durable and applied to live profiles.")
    duplicates: int = Field(description="Event ids stored before: ignored.")
    log_position: int = Field(
        description="The event log position reached. Pass it as `after` to a feed request, "
        "on this server process or any other over the same store, to read these events."
    )


class Card(BaseModel):
    id: str
    title: str | None
    price: float | None = Field(description="On the catalog's stored scale.")
    price_text: str | None = Field(
        default=None, description="The price as shoppers read it: currency and display factor."
    )
    label: str | None = Field(
        default=None, description="The item's own colour and type; none when it has neither."
    )
    image_url: str | None
    reason: str | None = None
    interest: str | None = None
    source: str | None = None
    score: float | None = None


class Cards(BaseModel):
    items: list[Card]


class ItemOut(Card):
    description: str | None
    attributes: dict[str, Any]
    recommendable: bool = Field(description="False while a new item is being embedded.")
    embedding_error: str | None = Field(
        default=None, description="Why a new item could not be embedded, if it failed."
    )
    generated_description: str | None = Field(
        default=None,
        description="For an item with no text: its look (colour and type) read off its "
        "embedding and its photo's colour signature by stage 1's look head, or, without a "
        "head, the assistant's LM's "
        "description. Generated, and a guess; null for items with text.",
    )


class ItemCreated(BaseModel):
    id: str
    status: Literal["embedding"]


class UserOut(BaseModel):
    id: str
    events: int


class Users(BaseModel):
    users: list[UserOut]


class ChatState(BaseModel):
    """The conversation so far, as the last `done` event gave it: send it back unchanged."""

    model_config = ConfigDict(extra="forbid")

    shown: list[Annotated[str, Id]] = Field(default_factory=list, max_length=20)
    seen: list[Annotated[str, Id]] = Field(default_factory=list, max_length=200)
    rejected: list[Annotated[str, Id]] = Field(default_factory=list, max_length=200)
    source: Literal["taste", "search", "related"] = "taste"
    need: str = Field(default="", max_length=500)
    anchor: Annotated[str, Id] | None = None
    colours: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    kinds: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=50)
    min_price: float | None = Field(default=None, ge=0)
    max_price: float | None = Field(default=None, ge=0)


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=ID_PATTERN)
    message: str = Field(min_length=1, max_length=500)
    state: ChatState | None = Field(
        default=None, description="The conversation state from the previous turn's `done`."
    )


class ErrorOut(BaseModel):
    error: str
    status: int
