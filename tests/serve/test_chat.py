"""The assistant through the HTTP API: a multi-turn conversation whose state the client
sends back, with every stated constraint holding for every card shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving import serve_settings, service_of

from tastegraph.assistant.facts import Constraints
from tastegraph.assistant.faithful import faithful
from tastegraph.recommend import Filters
from tastegraph.serve.app import create_app


@pytest.fixture(scope="module")
def client(workdir: Path) -> Iterator[TestClient]:
    """A server whose chat rate limit leaves room for whole conversations."""
    settings = serve_settings(workdir).model_copy(
        update={"chat_burst": 100, "chat_per_minute": 1000.0}
    )
    with TestClient(create_app(settings)) as client:
        yield client


def turn(
    client: TestClient, user: str, message: str, state: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], str, dict[str, Any], list[str]]:
    """(cards, reply text, state, the event names in order) of one chat turn."""
    body = {"user_id": user, "message": message, "state": state}
    with client.stream("POST", "/v1/assistant/chat", json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ")[1]))
            for block in response.read().decode().strip().split("\n\n")
        ]
    names = [name for name, _ in events]
    assert names[0] == "items" and names[-1] == "done", names
    streamed = "".join(data["text"] for name, data in events if name == "token")
    done = events[-1][1]
    assert streamed.strip() == done["text"]
    return events[0][1]["items"], done["text"], done["state"], names


def a_user(client: TestClient) -> str:
    user: str = client.get("/v1/users").json()["users"][0]["id"]
    return user


def test_a_conversation_follows_cheaper_more_like_and_not_that_one(client: TestClient) -> None:
    user = a_user(client)
    service = service_of(client)
    catalog, recommender = service.catalog, service.current()

    cards, text, state, names = turn(client, user, "a dress or a top")
    assert cards and "token" in names and text.startswith("Here")
    assert all(c["id"] in recommender.index for c in cards)
    assert f"[1] {cards[0]['title'] or cards[0]['label']}" in text
    pick = cards[0]
    assert all(c["label"] == (catalog.get(c["id"]).label) for c in cards)  # type: ignore[union-attr]

    # "cheaper": every card is cheaper than the pick it reacts to.
    cards, text, state, _ = turn(client, user, "cheaper", state)
    assert cards, text
    assert all(c["price"] is not None and c["price"] < pick["price"] for c in cards)
    assert pick["price_text"] in text

    # "more like the second one": items related to the second card, still cheaper.
    second = cards[1]["id"]
    in_force = Constraints(
        tuple(state["colours"]), tuple(state["kinds"]), state["min_price"], state["max_price"]
    )
    cards, _, state, _ = turn(client, user, "more like the second one", state)
    # the re-ranker orders the best related items among those the constraints allow
    allowed = np.array([in_force.holds(catalog.get(i)) for i in recommender.index.ids])
    related = recommender.related(second, len(cards), filters=Filters(within=allowed))
    expected = [r.item_id for r in related]
    assert cards and {c["id"] for c in cards} == set(expected)
    assert all(c["price"] < pick["price"] for c in cards)

    # "not that one": the pick goes, and stays gone for the rest of the conversation.
    rejected = cards[0]["id"]
    cards, _, state, _ = turn(client, user, "not that one", state)
    assert rejected not in {c["id"] for c in cards}
    assert rejected in state["rejected"]
    cards, _, state, _ = turn(client, user, "show me more", state)
    assert rejected not in {c["id"] for c in cards}


def test_every_reply_line_is_true_of_its_item(client: TestClient) -> None:
    user = a_user(client)
    catalog = service_of(client).catalog
    cards, text, _, _ = turn(client, user, "something black")
    lines = [line for line in text.split("\n") if line.startswith("[")]
    assert lines and len(lines) <= 3
    for line, card in zip(lines, cards, strict=False):
        reason = line.split(": ", 1)[1]
        assert faithful(reason, catalog.get(card["id"]), catalog), line


def test_a_constraint_nothing_meets_gets_a_clear_reply(client: TestClient) -> None:
    user = a_user(client)
    cards, text, state, _ = turn(client, user, "a dress under 0.01")
    assert cards == [] and text.startswith("I have nothing")
    assert "cheapest" in text and state["shown"] == []
    cards, text, _, _ = turn(client, user, "the ninth one", state)
    assert cards == [] and "haven't shown" in text


def test_bad_chat_input_is_refused_with_422(client: TestClient) -> None:
    user = a_user(client)
    _, _, state, _ = turn(client, user, "a top")
    for body in (
        {"user_id": user, "message": ""},
        {"user_id": user, "message": "x" * 501},
        {"user_id": user, "message": "hi", "history": []},  # the state replaced history
        {"user_id": user, "message": "cheaper", "state": {**state, "shown": ["no-such-item"]}},
        {"user_id": user, "message": "cheaper", "state": {**state, "colours": ["Plaid"]}},
        {"user_id": user, "message": "cheaper", "state": {**state, "source": "magic"}},
    ):
        response = client.post("/v1/assistant/chat", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["status"] == 422


def test_a_photo_only_item_gets_a_generated_description(client: TestClient) -> None:
    service = service_of(client)
    index = service.current().index
    photo_only = [i for i, f in service.catalog.facts.items() if not f.title and i in index]
    with_text = next(i for i, f in service.catalog.facts.items() if f.title and i in index)
    assert photo_only
    item = client.get(f"/v1/items/{photo_only[0]}").json()
    assert item["label"] is None and item["generated_description"].strip()
    assert client.get(f"/v1/items/{with_text}").json()["generated_description"] is None
