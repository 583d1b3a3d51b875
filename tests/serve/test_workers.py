"""Several server processes over one store: an event acknowledged by one reaches the live
profiles of every other (it follows the store's event log), and a feed asked with the
acknowledged log position reflects it at once (read your writes). Two apps in one test
process stand for two server processes: they share nothing but the store."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient
from serving import AUTH, TOKEN, serve_settings, service_of
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tastegraph.bench.serve import running_server
from tastegraph.serve.app import create_app
from tastegraph.serve.workers import Rebalance
from tastegraph.store import SQLiteStore, open_store

if TYPE_CHECKING:
    from conftest import PostgresServer


@contextmanager
def two_servers(workdir: Path, store_url: str = "") -> Iterator[tuple[TestClient, TestClient]]:
    settings = serve_settings(workdir).model_copy(
        update={"store_url": store_url, "read_your_writes_seconds": 0.2}
    )
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(TestClient(create_app(settings, assistant=False))) for _ in range(2)
        )
        yield first, second


def post_purchase(client: TestClient, event_id: str, user: str, item: str) -> int:
    event = {"event_id": event_id, "user_id": user, "item_id": item, "action": "purchase"}
    response = client.post("/v1/events", json=event, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    position: int = response.json()["log_position"]
    return position


def feed_ids(client: TestClient, user: str, **params: object) -> tuple[list[str], dict]:
    response = client.get(f"/v1/users/{user}/feed", params={"n": 12, **params})
    assert response.status_code == 200, response.text
    return [card["id"] for card in response.json()["items"]], dict(response.headers)


def check_events_reach_the_other_process(first: TestClient, second: TestClient, run: str) -> None:
    item = service_of(first).current().index.ids[7]
    position = post_purchase(first, f"{run}-1", f"{run}-shopper", item)
    assert service_of(first).log_position == position
    # Asked with the position: the other process reads the log before it answers. A
    # shopper's own purchase leads their feed (it may be bought again).
    ids, headers = feed_ids(second, f"{run}-shopper", after=position)
    assert item in ids and int(headers["x-log-position"]) >= position
    assert "x-log-stale" not in headers

    # A position the log never reached: the feed answers anyway, and says so.
    _, headers = feed_ids(second, f"{run}-shopper", after=position + 1000)
    assert "reflects events up to" in headers["x-log-stale"]

    # Without asking: the other process follows the log by itself, within seconds.
    later_item = service_of(first).current().index.ids[11]
    position = post_purchase(first, f"{run}-2", f"{run}-follower", later_item)
    deadline = time.monotonic() + 30
    while service_of(second).log_position < position:
        assert time.monotonic() < deadline, "the second process never followed the log"
        time.sleep(0.05)
    assert later_item in feed_ids(second, f"{run}-follower")[0]


def test_an_event_one_process_stores_reaches_the_other_over_sqlite(workdir: Path) -> None:
    with two_servers(workdir) as (first, second):
        check_events_reach_the_other_process(first, second, "sqlite")


def test_an_item_added_through_one_process_is_served_by_the_other(
    workdir: Path, hm_data: Path
) -> None:
    """The other process learns the item from the first event on it, embeds it, then
    applies that event: nothing waits on a restart or a batch job."""
    photo = next((hm_data / "images").rglob("*.jpg")).read_bytes()
    form = {"id": "added-on-first", "title": "Linen summer dress", "price": "5.0"}
    with two_servers(workdir) as (first, second):
        files = {"photo": ("dress.jpg", photo, "image/jpeg")}
        created = first.post("/v1/items", data=form, files=files, headers=AUTH)
        assert created.status_code == 202, created.text
        position = post_purchase(first, "added-1", "added-shopper", "added-on-first")
        deadline = time.monotonic() + 120
        while "added-on-first" not in service_of(second).current().index:
            assert time.monotonic() < deadline, "the second process never indexed the item"
            time.sleep(0.2)
        service_of(second).wait_for_items()
        ids, headers = feed_ids(second, "added-shopper", after=position)
        assert "added-on-first" in ids and "x-log-stale" not in headers
        related = second.get("/v1/items/added-on-first/related", params={"n": 3})
        assert related.status_code == 200 and len(related.json()["items"]) == 3


def test_an_event_one_process_stores_reaches_the_other_over_postgresql(
    workdir: Path, postgres_url: str, postgres_server: PostgresServer
) -> None:
    """The same over PostgreSQL, which wakes the other process with a NOTIFY; while the
    database restarts, writes get 503 with Retry-After and feeds go on, and the servers
    recover without a restart of their own."""
    with SQLiteStore(workdir / "store.db") as built, open_store(postgres_url) as store:
        store.add_items(list(built.iter_items()))
        store.add_media(list(built.iter_media()))
        # The published profiles hold the SQLite log's events up to their position.
        store.append_events(list(built.events_after(0)))
    with two_servers(workdir, postgres_url) as (first, second):
        check_events_reach_the_other_process(first, second, "postgres")
        item = service_of(first).current().index.ids[3]
        down = {"event_id": "pg-down", "user_id": "postgres-shopper", "item_id": item}
        postgres_server.stop()
        try:
            refused = first.post("/v1/events", json=down | {"action": "save"}, headers=AUTH)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert feed_ids(first, "postgres-shopper")[0]  # feeds are served from memory
        finally:
            postgres_server.start()
        back = purchase_of("pg-back", "postgres-shopper", item)
        deadline = time.monotonic() + 60  # the pools reconnect, backing off meanwhile
        while (answer := first.post("/v1/events", json=back, headers=AUTH)).status_code == 503:
            assert time.monotonic() < deadline, "the first server never wrote again"
            time.sleep(0.5)
        assert answer.status_code == 200, answer.text
        position = answer.json()["log_position"]
        while "x-log-stale" in (read := feed_ids(second, "postgres-shopper", after=position))[1]:
            assert time.monotonic() < deadline, "the second server never caught up"
            time.sleep(0.5)
        assert item in read[0]


@pytest.mark.parametrize(("every", "closed"), [(1, 50), (10**9, 0)])
def test_a_worker_closes_a_kept_alive_connection_now_and_then(every: int, closed: int) -> None:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    with TestClient(Rebalance(app, every=every)) as client:
        headers = [client.get("/").headers.get("connection") for _ in range(50)]
    assert headers.count("close") == closed


@pytest.mark.parametrize("after", [-1, "x"])
def test_a_bad_position_is_refused(client: TestClient, after: object) -> None:
    user = service_of(client).current().profiles.__iter__().__next__().user_id
    response = client.get(f"/v1/users/{user}/feed", params={"after": after})
    assert response.status_code == 422


def test_served_by_two_processes_that_read_each_others_writes_and_come_back(
    workdir: Path,
) -> None:
    """`tastegraph serve --workers 2` for real: both processes answer, a feed asked with
    the acknowledged position reflects the event on whichever answers. Then one worker is
    SIGKILLed while a client posts events and another reads feeds: no acknowledged event is
    lost, the other process keeps answering, and the worker started again catches up."""
    with running_server(workdir, TOKEN, assistant=False, workers=2) as server:
        pids = answering_processes(server.url, want=2)
        assert len(pids) == 2
        with httpx.Client(base_url=server.url, timeout=30) as kept_alive:
            # One client on one connection still reaches both: it is closed now and then.
            answered = {kept_alive.get("/healthz").json()["process"] for _ in range(2000)}
        assert answered == pids
        with SQLiteStore(workdir / "store.db") as store:
            item = next(store.iter_items()).id
        position = post_events(server.url, [purchase_of("w-1", "w-shopper", item)])
        assert position is not None
        for _ in range(12):  # a new connection each time: the kernel spreads them
            feed = read_feed(server.url, "w-shopper", after=position)
            assert feed is not None and "x-log-stale" not in feed.headers
            assert item in [card["id"] for card in feed.json()["items"]]

        with Traffic(server.url, item) as traffic:
            time.sleep(1.0)
            os.kill(min(pids), signal.SIGKILL)
            deadline = time.monotonic() + 120
            while not (answering_processes(server.url, want=2) - pids):
                assert time.monotonic() < deadline, "the killed worker was never started again"
                time.sleep(0.5)
            time.sleep(1.0)
        assert traffic.acknowledged and traffic.feeds_answered > traffic.feeds_failed
        assert traffic.feeds_failed <= 5, "only requests in flight on the killed worker fail"
        with SQLiteStore(workdir / "store.db") as store:
            assert store.known_event_ids(traffic.acknowledged) == set(traffic.acknowledged)
        last = max(traffic.positions)
        for _ in range(12):  # both processes, the new one included, reach the last write
            feed = read_feed(server.url, "w-shopper", after=last)
            assert feed is not None and "x-log-stale" not in feed.headers


def purchase_of(event_id: str, user: str, item: str) -> dict[str, str]:
    return {"event_id": event_id, "user_id": user, "item_id": item, "action": "purchase"}


def post_events(url: str, events: list[dict[str, str]]) -> int | None:
    """The log position an acknowledged batch reached; None when it was not acknowledged."""
    try:
        answer = httpx.post(f"{url}/v1/events", json={"events": events}, headers=AUTH, timeout=10)
    except httpx.TransportError:  # the worker died under the request
        return None
    if answer.status_code != 200:
        return None
    position: int = answer.json()["log_position"]
    return position


def read_feed(url: str, user: str, **params: object) -> httpx.Response | None:
    try:
        feed = httpx.get(f"{url}/v1/users/{user}/feed", params=params, timeout=10)
    except httpx.TransportError:
        return None
    return feed if feed.status_code == 200 else None


class Traffic:
    """A client posting event batches and another reading feeds, each on new connections,
    until the block ends."""

    def __init__(self, url: str, item: str) -> None:
        self.url, self.item = url, item
        self.acknowledged: list[str] = []
        self.positions: list[int] = []
        self.feeds_answered = self.feeds_failed = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._post), threading.Thread(target=self._read)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _post(self) -> None:
        for batch in itertools.count():
            if self._stop.is_set():
                return
            ids = [f"kill-{batch}-{k}" for k in range(5)]
            position = post_events(self.url, [purchase_of(i, "w-shopper", self.item) for i in ids])
            if position is not None:
                self.acknowledged += ids
                self.positions.append(position)

    def _read(self) -> None:
        while not self._stop.is_set():
            if read_feed(self.url, "w-shopper") is None:
                self.feeds_failed += 1
            else:
                self.feeds_answered += 1


def answering_processes(url: str, want: int, tries: int = 60) -> set[int]:
    """The process ids that answer /healthz over new connections (up to `want`)."""
    seen: set[int] = set()
    for _ in range(tries):
        try:
            seen.add(httpx.get(f"{url}/healthz", timeout=30).json()["process"])
        except httpx.TransportError:  # a worker being replaced
            continue
        if len(seen) == want:
            break
    return seen
