"""Every endpoint of the real app over the small real catalog, error cases included."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serving import AUTH, service_of

from tastegraph.store import SQLiteStore


def first_user(client: TestClient) -> str:
    users = client.get("/v1/users").json()["users"]
    assert users and all(u["events"] > 0 for u in users)
    user: str = users[0]["id"]
    return user


def feed_ids(client: TestClient, user: str, **params: Any) -> list[str]:
    response = client.get(f"/v1/users/{user}/feed", params={"n": 6, **params})
    assert response.status_code == 200, response.text
    return [card["id"] for card in response.json()["items"]]


def save(client: TestClient, event_id: str, user: str, item: str) -> dict[str, Any]:
    event = {"event_id": event_id, "user_id": user, "item_id": item, "action": "save"}
    response = client.post("/v1/events", json=event, headers=AUTH)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_health_docs_and_metrics(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["items"] > 20
    assert all(health["versions"][name] for name in ("embeddings", "index", "graph", "profiles"))
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/users/{user_id}/feed", "/v1/items/{item_id}/image"} <= set(paths)
    assert client.get("/docs").status_code == 200
    client.get("/v1/users/nobody/feed")
    metrics = client.get("/metrics").text
    assert 'tastegraph_requests_total{method="GET",route="/healthz",status="200"}' in metrics
    assert 'route="/v1/users/{user_id}/feed",status="404"' in metrics
    assert "tastegraph_request_seconds_bucket" in metrics


def test_feed_cards_carry_photo_title_and_reason(client: TestClient) -> None:
    user = first_user(client)
    cards = client.get(f"/v1/users/{user}/feed", params={"n": 5}).json()["items"]
    assert len(cards) == 5
    for card in cards:
        assert card["reason"] and card["interest"] and card["source"]
        assert card["image_url"] == f"/v1/items/{card['id']}/image"
    photo = client.get(cards[0]["image_url"])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert photo.content[:2] == b"\xff\xd8"  # a real JPEG


def test_feed_errors_and_new_users(client: TestClient) -> None:
    unknown = client.get("/v1/users/nobody-at-all/feed")
    assert unknown.status_code == 404 and "nobody-at-all" in unknown.json()["error"]
    assert len(feed_ids(client, "nobody-at-all", new_user=True)) == 6
    user = first_user(client)
    reversed_range = client.get(f"/v1/users/{user}/feed", params={"min_price": 5, "max_price": 1})
    assert reversed_range.status_code == 422 and "above high" in reversed_range.json()["error"]
    for bad in ({"n": 0}, {"n": 101}, {"explore": 1.5}, {"min_price": -1}, {"n": "many"}):
        response = client.get(f"/v1/users/{user}/feed", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["status"] == 422 and "invalid request" in response.json()["error"]


def test_feed_filters(client: TestClient) -> None:
    user = first_user(client)
    engaged = service_of(client).current().profiles.get(user).engaged  # type: ignore[union-attr]
    assert set(feed_ids(client, user, n=20)) & set(engaged)  # past purchases come back...
    fresh = feed_ids(client, user, n=20, exclude_engaged=True)
    assert fresh and not set(fresh) & set(engaged)  # ...unless left out
    details = service_of(client).details
    cheap = feed_ids(client, user, n=20, max_price=0.02)
    assert cheap and all((details[i].price or 1.0) <= 0.02 for i in cheap)
    assert feed_ids(client, user, max_price=0.00001) == []  # nothing is that cheap


def test_events_need_the_token(client: TestClient) -> None:
    user = first_user(client)
    event = {"event_id": "t-1", "user_id": user, "item_id": "x", "action": "save"}
    missing = client.post("/v1/events", json=event)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/v1/events", json=event, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "wrong bearer token"
    basic = client.post("/v1/events", json=event, headers={"Authorization": "Basic abc"})
    assert basic.status_code == 403


def test_a_save_changes_the_next_feed_and_is_durable(client: TestClient, workdir: Path) -> None:
    newcomer = "shopper-new-1"
    before = feed_ids(client, newcomer, new_user=True, explore=0)
    service = service_of(client)
    item = next(i for i in service.current().index.ids if i not in before)
    saved = save(client, "save-new-1", newcomer, item)
    assert saved == {"stored": 1, "duplicates": 0, "log_position": service.log_position}
    after = client.get(f"/v1/users/{newcomer}/feed", params={"n": 6, "explore": 0}).json()
    assert [c["id"] for c in after["items"]] != before
    title = service.details[item].title or item
    assert any(c["reason"] == f"Because you saved {title}" for c in after["items"])
    # Acknowledged means committed: another connection sees it.
    with SQLiteStore(workdir / "store.db") as other:
        assert "save-new-1" in other.known_event_ids(["save-new-1"])
    # Re-sending is a no-op; the user is known now.
    again = save(client, "save-new-1", newcomer, item)
    assert again == {"stored": 0, "duplicates": 1, "log_position": saved["log_position"]}
    assert client.get(f"/v1/users/{newcomer}/feed").status_code == 200


def test_event_batches_and_bad_events(client: TestClient) -> None:
    user = first_user(client)
    items = service_of(client).current().index.ids[:3]
    batch = [
        {"event_id": f"batch-{n}", "user_id": user, "item_id": i, "action": "view", "ts": 1.7e9}
        for n, i in enumerate(items)
    ]
    position = service_of(client).log_position
    response = client.post("/v1/events", json={"events": batch + batch[:1]}, headers=AUTH)
    assert response.json() == {"stored": 3, "duplicates": 1, "log_position": position + 3}

    def post(body: Any) -> tuple[int, str]:
        response = client.post("/v1/events", json=body, headers=AUTH)
        return response.status_code, response.json()["error"]

    good = batch[0] | {"event_id": "another"}
    assert post(good | {"item_id": "no-such-item"}) == (422, "unknown item ids: no-such-item")
    assert post(good | {"action": "buy"})[0] == 422
    assert post(good | {"user_id": "../etc/passwd"})[0] == 422
    assert post(good | {"user_id": "a\x00b"})[0] == 422
    assert post(good | {"event_id": "e" * 200})[0] == 422
    assert post(good | {"surprise": 1})[0] == 422
    assert post({"events": []})[0] == 422
    status, error = post({"events": [good | {"event_id": f"m{n}"} for n in range(21)]})
    assert status == 422 and "at most 20" in error
    raw = client.post("/v1/events", content=b"{not json", headers=AUTH | {"content-type": "x"})
    assert raw.status_code == 422

    # An event as event files name it: user, item, timestamp (ISO 8601 or unix seconds).
    as_in_files = {"event_id": "file-names", "user": user, "item": items[0], "action": "save"}
    stored = client.post(
        "/v1/events", json=as_in_files | {"timestamp": "2020-09-01T10:00:00Z"}, headers=AUTH
    )
    assert stored.json()["stored"] == 1 and stored.json()["duplicates"] == 0
    with SQLiteStore(service_of(client).workdir / "store.db") as store:
        saved = next(e for e in store.iter_events() if e.event_id == "file-names")
    assert (saved.user_id, saved.item_id, saved.ts) == (user, items[0], 1598954400.0)
    iso = client.post(
        "/v1/events", json=good | {"event_id": "iso", "ts": "2020-09-01"}, headers=AUTH
    )
    assert iso.status_code == 200, iso.text
    assert "ISO 8601" in post(good | {"event_id": "bad-ts", "ts": "yesterday"})[1]
    assert post(good | {"event_id": "both", "user": user})[0] == 422  # one spelling each


def test_too_large_bodies_get_413(client: TestClient) -> None:
    huge = json.dumps({"events": [], "padding": "x" * 2_100_000})
    response = client.post(
        "/v1/events", content=huge, headers=AUTH | {"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["status"] == 413

    def chunks() -> Any:  # no Content-Length: counted as it arrives
        for _ in range(30):
            yield b"x" * 100_000

    streamed = client.post("/v1/events", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413


def test_items_related_and_images(client: TestClient) -> None:
    service = service_of(client)
    item = service.current().index.ids[0]
    found = client.get(f"/v1/items/{item}").json()
    assert found["id"] == item and found["recommendable"] is True
    assert isinstance(found["attributes"], dict)
    related = client.get(f"/v1/items/{item}/related", params={"n": 4}).json()["items"]
    assert len(related) == 4 and item not in {c["id"] for c in related}
    assert all(c["reason"] for c in related)
    for path in (
        "/v1/items/nope",
        "/v1/items/nope/related",
        "/v1/items/nope/image",
        "/v1/items/..%2F..%2Fetc%2Fpasswd/image",
        "/v1/items/../../etc/passwd",
    ):
        assert client.get(path).status_code == 404, path
    for path in ("/v1/items/a%00b", "/v1/items/.hidden/image", f"/v1/items/{'9' * 200}"):
        response = client.get(path)
        assert response.status_code == 422 and "item_id" in response.json()["error"], path


def test_search(client: TestClient) -> None:
    found = client.get("/v1/search", params={"q": "black dress", "n": 3}).json()["items"]
    assert len(found) == 3 and all(c["reason"] == "Matches “black dress”" for c in found)
    assert client.get("/v1/search", params={"q": ""}).status_code == 422
    assert client.get("/v1/search", params={"q": "   "}).json()["error"] == (
        "the search query is empty"
    )
    assert client.get("/v1/search", params={"q": "x" * 501}).status_code == 422
    assert client.get("/v1/search").status_code == 422


def test_new_item_becomes_recommendable(client: TestClient, hm_data: Path) -> None:
    photo = next((hm_data / "images").rglob("*.jpg")).read_bytes()
    form = {"id": "new-item-1", "title": "Linen summer dress", "price": "5.0"}
    files = {"photo": ("dress.jpg", photo, "image/jpeg")}
    assert client.post("/v1/items", data=form, files=files).status_code == 401
    created = client.post("/v1/items", data=form, files=files, headers=AUTH)
    assert created.status_code == 202, created.text
    assert created.json() == {"id": "new-item-1", "status": "embedding"}
    service_of(client).wait_for_items()
    item = client.get("/v1/items/new-item-1").json()
    assert item["recommendable"] and item["title"] == "Linen summer dress"
    assert client.get("/v1/items/new-item-1/image").content == photo
    related = client.get("/v1/items/new-item-1/related", params={"n": 3}).json()["items"]
    assert len(related) == 3
    found = client.get("/v1/search", params={"q": "Linen summer dress", "n": 50}).json()
    assert "new-item-1" in [c["id"] for c in found["items"]]
    priced = {"new_user": True, "min_price": 4.0, "max_price": 6.0}  # above any H&M price
    assert feed_ids(client, "someone", **priced) == ["new-item-1"]

    again = client.post("/v1/items", data=form, files=files, headers=AUTH)
    assert again.status_code == 409
    not_a_photo = {"photo": ("x.jpg", b"GIF89a not really", "image/jpeg")}
    bad = client.post("/v1/items", data={"id": "bad-1"}, files=not_a_photo, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["error"].startswith("photo: image does not")
    assert client.get("/v1/items/bad-1").status_code == 404  # nothing stored
    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, "PNG")  # 81 M pixels in a few kB
    files = {"photo": ("bomb.png", bomb.getvalue(), "image/png")}
    refused = client.post("/v1/items", data={"id": "bomb-1"}, files=files, headers=AUTH)
    assert refused.status_code == 422 and "decompression bomb" in refused.json()["error"]
    empty = client.post("/v1/items", data={"id": "bare"}, headers=AUTH)
    assert empty.status_code == 422 and "photo or some text" in empty.json()["error"]
    slash = client.post("/v1/items", data={"id": "a/b", "title": "t"}, headers=AUTH)
    assert slash.status_code == 422


def test_new_versions_swap_in_while_serving(client: TestClient, workdir: Path) -> None:
    from tastegraph.graph.job import build_and_publish
    from tastegraph.profiles.batch import publish_profiles

    service = service_of(client)
    user = first_user(client)
    items = service.current().index.ids
    save(client, "swap-1", user, items[1])
    with SQLiteStore(workdir / "store.db") as store:
        build_and_publish(store, workdir, service.settings)
        publish_profiles(store, service.current().index, service.settings)
    save(client, "swap-2", user, items[2])  # after the batch profiles: replayed on load

    failures: list[int] = []
    stop = threading.Event()

    def read_feeds() -> None:
        while not stop.is_set():
            status = client.get(f"/v1/users/{user}/feed", params={"n": 4}).status_code
            if status != 200:
                failures.append(status)

    reader = threading.Thread(target=read_feeds)
    reader.start()
    before = dict(service.versions)
    try:
        assert service.refresh() is True
    finally:
        stop.set()
        reader.join()
    assert failures == []
    assert service.versions["graph"] != before["graph"]
    assert service.versions["profiles"] != before["profiles"]
    assert service.refresh() is False
    engaged = service.current().profiles.get(user).engaged  # type: ignore[union-attr]
    assert items[1] in engaged and items[2] in engaged


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css"])
def test_the_page_and_its_files_are_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200
