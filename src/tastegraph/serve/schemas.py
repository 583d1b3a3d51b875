"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tastegraph.config import ACTIONS

# Ids travel in URLs and name files nowhere: letters, digits and a few separators only,
# so no path separator, "..", NUL or control character ever gets through.
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$"
Id = Field(pattern=ID_PATTERN, min_length=1, max_length=128)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(
        pattern=ID_PATTERN, description="Unique per event: re-sending it changes nothing."
    )
    user_id: str = Field(pattern=ID_PATTERN)
    item_id: str = Field(pattern=ID_PATTERN)
    action: Literal["view", "click", "save", "purchase", "hide"] = Field(
        description=f"One of {', '.join(ACTIONS)}."
    )
    ts: float | None = Field(
        default=None, ge=0, lt=1e11, description="Unix seconds; default: when it arrives."
    )
    weight: float | None = Field(
        default=None, ge=-100, le=100, description="Default: the action's configured weight."
    )
    collection_id: str | None = Field(default=None, pattern=ID_PATTERN)


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


class EventsOut(BaseModel):
    stored: int = Field(description="New events, durable and applied to live profiles.")
    duplicates: int = Field(description="Event ids stored before: ignored.")


class Card(BaseModel):
    id: str
    title: str | None
    price: float | None
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


class ItemCreated(BaseModel):
    id: str
    status: Literal["embedding"]


class UserOut(BaseModel):
    id: str
    events: int


class Users(BaseModel):
    users: list[UserOut]


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=2000)


# The LM reads the whole conversation on every turn: a bound on its length keeps one turn
# from taking minutes of CPU.
MAX_CONVERSATION_CHARS = 4000


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=ID_PATTERN)
    message: str = Field(min_length=1, max_length=500)
    history: list[ChatTurn] = Field(
        default_factory=list,
        max_length=20,
        description=f"Earlier turns; with the message at most {MAX_CONVERSATION_CHARS} characters.",
    )

    @model_validator(mode="after")
    def fits(self) -> ChatIn:
        length = len(self.message) + sum(len(turn.content) for turn in self.history)
        if length > MAX_CONVERSATION_CHARS:
            raise ValueError(
                f"the conversation is {length} characters; send the latest turns, up to "
                f"{MAX_CONVERSATION_CHARS}"
            )
        return self


class ErrorOut(BaseModel):
    error: str
    status: int
