"""Load test of the HTTP server on loopback: feed requests at increasing rates while events
arrive, against the floor of the same server (GET /healthz at the same rate).

Open loop: requests are sent on a fixed schedule whatever the server's pace, and each
latency counts from its scheduled time, so a server that falls behind shows it (no
coordinated omission). Everything is bounded: a few rates, seconds each, one client.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np


@dataclass(frozen=True)
class LoadConfig:
    rates: tuple[float, ...] = (50.0, 100.0, 200.0, 300.0)  # feed requests per second
    seconds: float = 10.0  # at each rate
    events_per_second: float = 20.0
    n: int = 12  # items per feed
    users: int = 1000  # feed requests cycle through this many users drawn at random
    timeout: float = 5.0  # a request slower than this is an error


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    errors: int = 0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.seconds, q) * 1000) if self.seconds else float("nan")


@dataclass(frozen=True)
class RateResult:
    rate: float
    feed: Latencies
    floor: Latencies  # GET /healthz at the same rate: HTTP and framework cost alone
    events: Latencies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_server(
    workdir: Path, token: str | None = None, *, assistant: bool = True, start_timeout: float = 120
) -> Iterator[tuple[str, str]]:
    """`tastegraph serve` in a child process on a free loopback port; yields (url, token)
    once it answers /healthz, and stops it (that process only) afterwards."""
    token = token or secrets.token_urlsafe(16)
    port = free_port()
    env = os.environ | {
        "TASTEGRAPH_WORKDIR": str(workdir),
        "TASTEGRAPH_API_TOKEN": token,
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "tastegraph", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--assistant" if assistant else "--no-assistant"]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    # A SIGTERM to this process (e.g. from `timeout`) must stop the server too.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _wait_until_up(server, url, start_timeout)
        yield url, token
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _wait_until_up(server: subprocess.Popen[str], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            output = server.communicate()[0]
            raise RuntimeError(f"the server did not start at {url}:\n{output[-3000:]}")
        time.sleep(0.3)


def run_load(url: str, token: str, config: LoadConfig) -> list[RateResult]:
    return asyncio.run(_run_load(url, token, config))


async def _run_load(url: str, token: str, config: LoadConfig) -> list[RateResult]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=config.timeout, limits=limits) as client:
        listed = (await client.get("/v1/users?n=10000")).json()["users"]
        if not listed:
            raise ValueError("the server has no users with a profile to request feeds for")
        rng = np.random.default_rng(0)
        chosen = rng.choice(len(listed), min(config.users, len(listed)), replace=False)
        users = [listed[i]["id"] for i in chosen]
        feed = (await client.get(f"/v1/users/{users[0]}/feed?n=50")).json()["items"]
        items = [card["id"] for card in feed]
        headers = {"Authorization": f"Bearer {token}"}

        async def get_feed(i: int) -> bool:
            response = await client.get(f"/v1/users/{users[i % len(users)]}/feed?n={config.n}")
            return response.status_code == 200

        async def get_health(i: int) -> bool:
            return (await client.get("/healthz")).status_code == 200

        async def post_event(i: int) -> bool:
            event = {
                "event_id": f"bench-{uuid.uuid4().hex}",
                "user_id": users[i % len(users)],
                "item_id": items[i % len(items)],
                "action": "save",
            }
            response = await client.post("/v1/events", json=event, headers=headers)
            return response.status_code == 200 and response.json()["stored"] == 1

        results = []
        for rate in config.rates:
            feeds, events = await asyncio.gather(
                _open_loop(get_feed, rate, config.seconds),
                _open_loop(post_event, config.events_per_second, config.seconds),
            )
            floor = await _open_loop(get_health, rate, config.seconds)
            results.append(RateResult(rate, feeds, floor, events))
    return results


async def _open_loop(
    request: Callable[[int], Awaitable[bool]], rate: float, seconds: float
) -> Latencies:
    """Send request(i) at start + i / rate whatever the server's pace; an answer counts
    from its scheduled time, and a failure or an exception is an error."""
    result = Latencies()
    start = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        try:
            ok = await request(i)
        except httpx.HTTPError:
            ok = False
        if ok:
            result.seconds.append(time.perf_counter() - scheduled)
        else:
            result.errors += 1

    tasks = []
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return result


def report(results: list[RateResult]) -> str:
    lines = [
        f"{'rate/s':>7} {'feed p50':>9} {'feed p99':>9} {'errors':>6} {'floor p99':>10} "
        f"{'p99 / floor':>11} {'events p99':>11} {'event errors':>12}"
    ]
    for r in results:
        ratio = r.feed.percentile(99) / r.floor.percentile(99)
        lines.append(
            f"{r.rate:7.0f} {r.feed.percentile(50):7.1f}ms {r.feed.percentile(99):7.1f}ms "
            f"{r.feed.errors:6d} {r.floor.percentile(99):8.1f}ms {ratio:10.1f}x "
            f"{r.events.percentile(99):9.1f}ms {r.events.errors:12d}"
        )
    return "\n".join(lines)
