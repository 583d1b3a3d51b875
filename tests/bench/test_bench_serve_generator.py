"""`tastegraph bench serve`'s generators: wrk sends the same requests as the Python generator,
in the right proportions, with the token and valid events; its output is read back per
endpoint; the CPU shares add up. Against a small HTTP server on 127.0.0.1 that counts what
it receives; no timing is asserted."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tastegraph.bench.loadgen import (
    CpuShare,
    Latencies,
    Stream,
    Targets,
    cpu_share,
    lua_literal,
    parse_output,
    process_tree_cpu_seconds,
    run_wrk,
    stat_fields,
    wrk_plan,
)
from tastegraph.bench.serve import (
    LiveServer,
    LoadConfig,
    RateResult,
    report,
    run_load,
    run_side_by_side,
    scaling_report,
    sustained_rate,
)

USERS = [f"user{i}" for i in range(5)]
ITEMS = ["a", "b", "bad"]  # the related items of "bad" answer 500
TOKEN = 'to"k\\en'  # quotes and backslashes survive the plan's Lua literal


@dataclass
class Seen:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, path)
    events: list[tuple[str | None, dict[str, object]]] = field(default_factory=list)
    feeds_at: list[float] = field(default_factory=list)  # when each feed request came
    lock: threading.Lock = field(default_factory=threading.Lock)


def handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real server
        disable_nagle_algorithm = True  # headers and body are separate writes

        def log_message(self, format: str, *args: object) -> None:
            pass

        def answer(self, status: int, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with seen.lock:
                seen.requests["GET", self.path] += 1
                if "/feed?n=12" in self.path:
                    seen.feeds_at.append(time.monotonic())
            if self.path.startswith("/v1/users?"):
                self.answer(200, {"users": [{"id": user} for user in USERS]})
            elif self.path.startswith("/v1/users/"):
                self.answer(200, {"items": [{"id": item} for item in ITEMS]})
            else:
                self.answer(500 if self.path.startswith("/v1/items/bad/") else 200, {})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with seen.lock:
                seen.requests["POST", self.path] += 1
                seen.events.append((self.headers["Authorization"], json.loads(body)))
            self.answer(200, {"stored": 1, "duplicates": 0, "log_position": 1})

    return Handler


class CountingServer(ThreadingHTTPServer):
    request_queue_size = 128  # every wrk connection connects at once
    daemon_threads = True


@contextmanager
def counted() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    server = CountingServer(("127.0.0.1", 0), handler(seen))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def counting_server() -> Iterator[tuple[str, Seen]]:
    with counted() as server:
        yield server


@pytest.fixture(autouse=True)
def wrk_installed() -> None:
    if shutil.which("wrk") is None:
        pytest.fail("`wrk` not found: `make system-tools` installs it (apt-get install wrk)")


def test_wrk_sends_each_stream_at_its_share_with_the_token(
    counting_server: tuple[str, Seen],
) -> None:
    url, seen = counting_server
    streams = [Stream("feed", 30), Stream("related", 7.5), Stream("events", 20)]
    streams.append(Stream("health", 30))
    run = run_wrk(url, streams, 2.0, Targets(USERS, ITEMS, TOKEN), server_pid=os.getpid())

    feeds = {path: n for (method, path), n in seen.requests.items() if "/feed" in path}
    assert feeds == {f"/v1/users/{user}/feed?n=12": 12 for user in USERS}  # 60 cycled
    related = Counter(path for (_, path) in seen.requests.elements() if "/related" in path)
    assert related == {f"/v1/items/{item}/related?n=12": 5 for item in ITEMS}  # 15
    assert seen.requests["GET", "/healthz"] == 60
    assert seen.requests["POST", "/v1/events"] == 40
    assert {auth for auth, _ in seen.events} == {f"Bearer {TOKEN}"}
    bodies = [body for _, body in seen.events]
    assert len({body["event_id"] for body in bodies}) == 40
    for body in bodies:  # event slot i pairs users[i] with items[i], as the Python generator
        slot = int(str(body["event_id"]).rsplit("-", 1)[1])
        assert (body["user_id"], body["item_id"], body["action"]) == (
            USERS[slot % len(USERS)],
            ITEMS[slot % len(ITEMS)],
            "save",
        )

    results = run.streams
    assert {kind: len(result.seconds) for kind, result in results.items()} == {
        "feed": 60,
        "related": 10,
        "events": 40,
        "health": 60,
    }
    assert (results["related"].non_2xx, results["related"].failed) == (5, 0)
    assert sum(result.errors for result in results.values()) == 5
    assert 0 < run.cpu.generator <= 1 and 0 <= run.cpu.server <= 1


def test_wrk_and_python_send_the_same_requests(counting_server: tuple[str, Seen]) -> None:
    url, seen = counting_server
    config = LoadConfig(rates=(20.0,), seconds=1.0, events_per_second=5.0, users=4, warmup=0.0)
    sent = {}
    for generator in ("wrk", "python"):
        seen.requests.clear()
        seen.events.clear()
        [result] = run_load(url, TOKEN, config, generator=generator, server_pid=os.getpid())
        sent[generator] = (
            Counter(seen.requests),
            sorted((b["user_id"], b["item_id"], b["action"]) for _, b in seen.events),
        )
        assert result.generator == generator
        assert len(result.feed.seconds) == 20 and len(result.floor.seconds) == 20
        assert len(result.related.seconds) + result.related.non_2xx == 5
        assert len(result.events.seconds) == 5 and result.events.errors == 0
        table = report([result])
        assert table.startswith(f"generator: {'wrk' if generator == 'wrk' else 'Python'}")
        assert "related p99" in table and "generator CPU (mix)" in table
    assert sent["wrk"] == sent["python"]


def test_servers_side_by_side_take_each_rate_in_turn() -> None:
    """At each rate every server is loaded, one after the other, before the next rate."""
    config = LoadConfig(rates=(10.0, 20.0), seconds=1.0, events_per_second=2.0, users=4, warmup=0)
    with counted() as (one_url, one), counted() as (two_url, two):
        this_process = subprocess.Popen(["sleep", "60"], text=True)  # stands for a server's
        try:
            servers = {
                1: LiveServer(one_url, TOKEN, this_process),
                2: LiveServer(two_url, TOKEN, this_process),
            }
            by_workers = run_side_by_side(servers, config, "wrk")
        finally:
            this_process.kill()
            this_process.wait()
    assert {count: [r.rate for r in results] for count, results in by_workers.items()} == {
        1: [10.0, 20.0],
        2: [10.0, 20.0],
    }
    # The first server's 4 users' feeds are asked once to pick the items, then every rate's.
    feeds = [one.feeds_at[:14], two.feeds_at[:10], one.feeds_at[14:], two.feeds_at[10:]]
    assert [len(times) for times in feeds] == [14, 10, 20, 20]
    assert all(max(a) < min(b) for a, b in itertools.pairwise(feeds))

    def related(seen: Seen) -> Counter[str]:
        return Counter({path: n for (_, path), n in seen.requests.items() if "/related" in path})

    assert related(one) == related(two) and related(one)  # the same items named on both


# `wrk -t6 -c6 -s wrk_plan.lua` with feed 4/s, related 2/s and events 2/s for 2 s, against a
# server that answered 500 to one user's feeds and closed the connection on one item.
CAPTURED = """\
Running 3s test @ http://127.0.0.1:43549
  6 threads and 6 connections
tastegraph-finished 4
tastegraph-finished 3
tastegraph-finished 5
tastegraph-finished 1
tastegraph-finished 6
tastegraph-finished 2
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   402.20us  127.09us 546.00us   66.67%
    Req/Sec     1.40      0.99     3.00     66.67%
  15 requests in 3.00s, 1.78KB read
  Socket errors: connect 0, read 2, write 0, timeout 0
  Non-2xx or 3xx responses: 4
Requests/sec:      4.99
Transfer/sec:     605.60B
tastegraph-thread 1 feed planned=4 ok=4 non2xx=0 lost=0
tastegraph-latency-us 1 474 546 408 381
tastegraph-thread 2 feed planned=4 ok=0 non2xx=4 lost=0
tastegraph-latency-us 2
tastegraph-thread 3 related planned=2 ok=2 non2xx=0 lost=0
tastegraph-latency-us 3 536 506
tastegraph-thread 4 related planned=2 ok=0 non2xx=0 lost=2
tastegraph-latency-us 4
tastegraph-thread 5 events planned=2 ok=2 non2xx=0 lost=0
tastegraph-latency-us 5 257 463
tastegraph-thread 6 events planned=2 ok=2 non2xx=0 lost=0
tastegraph-latency-us 6 771 362
"""


def test_each_run_starts_the_lists_at_its_own_place() -> None:
    targets = Targets([f"user{i}" for i in range(50)], [f"item{i}" for i in range(60)], TOKEN)
    starts = set()
    for run in range(1, 6):
        moved = targets.rotated(run)
        assert moved == targets.rotated(run)  # the same run, the same place
        assert sorted(moved.users) == sorted(targets.users)
        assert sorted(moved.items) == sorted(targets.items)
        start = targets.users.index(moved.users[0])
        assert moved.users == targets.users[start:] + targets.users[:start]
        starts.add(start)
    assert len(starts) > 1


def test_wrk_output_is_read_per_endpoint() -> None:
    parsed = parse_output(CAPTURED, timeout=5.0)
    feed, related, events = (parsed.streams[k] for k in ("feed", "related", "events"))
    assert feed.seconds == [0.000474, 0.000546, 0.000408, 0.000381]
    assert (feed.errors, feed.non_2xx, feed.failed) == (4, 4, 0)
    assert (len(related.seconds), related.non_2xx, related.failed) == (2, 0, 2)
    assert (len(events.seconds), events.errors) == (4, 0)
    assert events.percentile(50) == pytest.approx(0.4125)  # ms, between 362 and 463 us
    assert parsed.socket_errors == 2


def test_late_or_missing_answers_are_failures() -> None:
    output = (
        "tastegraph-thread 1 feed planned=5 ok=3 non2xx=1 lost=0\n"
        "tastegraph-latency-us 1 1000 6000000 2000\n"
    )
    feed = parse_output(output, timeout=5.0).streams["feed"]
    assert feed.seconds == [0.001, 0.002]
    assert (feed.errors, feed.non_2xx, feed.failed) == (3, 1, 2)  # one late, one unanswered
    with pytest.raises(ValueError, match="latencies"):
        parse_output(output.replace("ok=3", "ok=4"), timeout=5.0)


def test_plan_shares_each_stream_s_slots_among_its_connections() -> None:
    plan = wrk_plan([Stream("feed", 25), Stream("events", 1)], 2.0, Targets(USERS, ITEMS, "t"))
    feeds = [t for t in plan["threads"] if t["kind"] == "feed"]
    assert len(feeds) == Stream("feed", 25).connections == 4
    assert sorted(s for t in feeds for s in range(t["first"], t["slots"], t["stride"])) == list(
        range(50)
    )
    assert sum(t["planned"] for t in feeds) == 50
    assert [t["planned"] for t in plan["threads"] if t["kind"] == "events"] == [1, 1]
    assert lua_literal({"a": ['x"\\\n', 1.5, True]}) == '{["a"] = {"x\\034\\092\\010", 1.5, true}}'
    with pytest.raises(ValueError, match="unknown stream"):
        wrk_plan([Stream("search", 5)], 1.0, Targets(USERS, ITEMS, "t"))
    with pytest.raises(ValueError, match="at least one user"):
        wrk_plan([Stream("feed", 5)], 1.0, Targets([], ITEMS, "t"))


def test_cpu_share_is_cpu_time_over_wall_time_and_cores() -> None:
    assert cpu_share(1.0, 2.0, 2) == 0.25
    assert cpu_share(0.0, 1.0, 2) == 0.0
    with pytest.raises(ValueError):
        cpu_share(1.0, 0.0, 2)


def test_stat_fields_survive_odd_command_names() -> None:
    rest = " ".join(str(n) for n in range(3, 53))  # field k holds k
    stat = f"4242 (tricky) name (x)) S {rest.split(' ', 1)[1]}"
    parent, ticks = stat_fields(stat)
    assert parent == 4
    assert ticks == 14 + 15 + 16 + 17  # user, system, and waited-for children's


def test_process_tree_cpu_counts_children_live_and_reaped() -> None:
    own_before = sum(os.times()[:2])
    burn = "sum(range(3_000_000)); print('burnt', flush=True); import sys; sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline() == "burnt\n"  # now idle, reading its stdin
        child_cpu = process_tree_cpu_seconds(child.pid)
        assert child_cpu > 0
        assert process_tree_cpu_seconds(os.getpid()) >= own_before + child_cpu - 0.02
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
    assert process_tree_cpu_seconds(os.getpid()) >= own_before + child_cpu - 0.02  # reaped
    with pytest.raises(ProcessLookupError):
        process_tree_cpu_seconds(child.pid)


def rate_result(rate: float, feed_p99_ms: float, event_errors: int = 0) -> RateResult:
    def answered(ms: float) -> Latencies:
        return Latencies(seconds=[ms / 1000] * 100)

    return RateResult(
        rate=rate,
        feed=answered(feed_p99_ms),
        floor=answered(1.0),
        events=Latencies(seconds=[0.01] * 10, errors=event_errors),
        related=answered(5.0),
        related_rate=rate / 4,
        events_rate=20,
        generator="wrk",
        mix_cpu=CpuShare(0.02, 0.5),
        floor_cpu=CpuShare(0.02, 0.1),
    )


def test_the_sustained_rate_is_the_highest_within_the_bar_without_failures() -> None:
    one = [rate_result(150, 12.0), rate_result(175, 19.9), rate_result(200, 61.5)]
    two = [rate_result(300, 15.0), rate_result(350, 14.5, event_errors=1), rate_result(400, 9.0)]
    assert sustained_rate(one) == 175
    assert sustained_rate(two) == 400  # 350 lost an event: not sustained
    assert sustained_rate([rate_result(100, 25.0)]) is None
    summary = scaling_report({1: one, 2: two})
    assert "1 worker: 175 feeds/s" in summary
    held = "2 workers: 400 feeds/s >= 2.29x 1 worker (held the highest rate tried)"
    assert held + ", target 1.6x: met" in summary
    assert "most: 400 feeds/s (target 300: met)" in summary
    short = scaling_report({1: one, 2: [rate_result(250, 18.0), rate_result(275, 30.0)]})
    assert "= 1.43x 1 worker, target 1.6x: NOT met" in short and "(target 300: NOT met)" in short
    topped = scaling_report({1: one, 2: [rate_result(250, 18.0)]})
    assert ">= 1.43x 1 worker (held the highest rate tried), target 1.6x: not shown" in topped
    none = scaling_report(
        {1: [rate_result(200, 21.0)], 2: [rate_result(200, 9.0), rate_result(340, 19.0)]}
    )
    assert "1 worker: none of the rates tried" in none
    assert "340 feeds/s > 1.70x 1 worker (none sustained from 200), target 1.6x: met" in none
