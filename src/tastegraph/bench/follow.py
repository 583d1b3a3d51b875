"""How soon one server process sees an event another acknowledged (`tastegraph bench
follow`): two `tastegraph serve` processes over one store; events are posted to the writer,
and the other's /healthz is polled until its log position reaches the acknowledged one.
Baseline in the same run: the same poll of the writer itself, which applies an event before
it answers, so its figure is what one poll costs."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

import httpx

from tastegraph.bench.loadgen import Latencies
from tastegraph.bench.serve import LiveServer

TIMEOUT_SECONDS = 5.0  # an event not seen by then counts as failed


@dataclass(frozen=True)
class FollowResult:
    other: Latencies  # from the writer's acknowledgement until the other process reflects it
    writer: Latencies  # the same wait on the writer: the cost of one poll


def run_follow(writer: LiveServer, other: LiveServer, item: str, events: int) -> FollowResult:
    """Post `events` single events to `writer`, at random moments (so they fall anywhere in
    the other process's polling cycle), and time when each process reflects each."""
    result = FollowResult(Latencies(), Latencies())
    run = uuid.uuid4().hex[:8]
    auth = {"Authorization": f"Bearer {writer.token}"}
    rng = random.Random(0)
    with httpx.Client(timeout=TIMEOUT_SECONDS) as to_writer, httpx.Client() as to_other:
        for k in range(events):
            time.sleep(rng.uniform(0.0, 0.1))
            event = {"event_id": f"follow-{run}-{k}", "user_id": f"follower-{run}"}
            answer = to_writer.post(
                f"{writer.url}/v1/events",
                json=event | {"item_id": item, "action": "view"},
                headers=auth,
            )
            acknowledged = time.perf_counter()
            if answer.status_code != 200:
                result.other.errors += 1
                continue
            position = answer.json()["log_position"]
            _record(result.other, _wait(to_other, other.url, position), acknowledged)
            asked = time.perf_counter()
            _record(result.writer, _wait(to_writer, writer.url, position), asked)
    return result


def _wait(client: httpx.Client, url: str, position: int) -> float | None:
    """When (perf_counter) the process at `url` reports `position` reached; None: never."""
    deadline = time.perf_counter() + TIMEOUT_SECONDS
    while time.perf_counter() < deadline:
        if client.get(f"{url}/healthz").json()["log_position"] >= position:
            return time.perf_counter()
    return None


def _record(latencies: Latencies, seen: float | None, since: float) -> None:
    if seen is None:
        latencies.errors += 1
    else:
        latencies.seconds.append(max(0.0, seen - since))


def report(result: FollowResult, target_ms: float) -> str:
    lines = ["event seen by      p50       p90       p99   failed"]
    for name, latencies in (
        ("the other process", result.other),
        ("the writer (floor)", result.writer),
    ):
        cells = "".join(f"{latencies.percentile(q):7.1f} ms" for q in (50, 90, 99))
        lines.append(f"{name:18s}{cells}   {latencies.errors}")
    p99 = result.other.percentile(99)
    verdict = "met" if p99 <= target_ms else "MISSED"
    lines.append(f"target: the other process within {target_ms:.0f} ms at p99: {verdict}")
    return "\n".join(lines)
