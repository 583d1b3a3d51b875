"""Load test of the HTTP server on loopback: feed requests at increasing rates while events
and related-items requests arrive, against the floor of the same server (GET /healthz at
the feed's rate).

Open loop: requests are sent on a fixed schedule whatever the server's pace, and each
latency counts from its scheduled time, so a server that falls behind shows it (no
coordinated omission). Everything is bounded: a few rates, seconds each, one client.
Two generators send the same mix: wrk with a Lua schedule (loadgen.py), which takes little
of the cores it shares with the server, and the Python one here (httpx, asyncio), which
needs no binary but takes about as much CPU as the server. Both report their own CPU
share beside the server's.
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import numpy as np

from tastegraph.bench.loadgen import (
    CpuShare,
    Latencies,
    Stream,
    Targets,
    cpu_share,
    process_tree_cpu_seconds,
    rotated,
    run_wrk,
    usable_cores,
)

GENERATORS = ("wrk", "python")


FEED_P99_BAR_MS = 20.0  # a rate is sustained while feeds answer within this at p99
SCALE_OUT_TARGET = 1.6  # more workers' sustained rate over the fewest's
TOTAL_FEEDS_TARGET = 300.0  # feeds/s sustained by the best worker count


@dataclass(frozen=True)
class LoadConfig:
    rates: tuple[float, ...] = (50.0, 100.0, 200.0, 300.0)  # feed requests per second
    seconds: float = 10.0  # at each rate
    events_per_second: float = 20.0
    related_share: float = 0.25  # related-items requests per feed request, sent meanwhile
    n: int = 12  # items per feed
    users: int = 1000  # feed requests cycle through this many users drawn at random
    timeout: float = 5.0  # a request slower than this is an error
    warmup: float = 30.0  # seconds of the load at the first rate before measuring, unreported


@dataclass(frozen=True)
class RateResult:
    rate: float
    feed: Latencies
    floor: Latencies  # GET /healthz at the same rate: HTTP and framework cost alone
    events: Latencies
    related: Latencies  # GET /v1/items/{id}/related, re-ranked where a re-ranker is published
    related_rate: float  # related-items requests per second, sent with the feeds
    events_rate: float  # events per second, sent with the feeds
    generator: str  # "wrk" or "python": what sent the requests
    mix_cpu: CpuShare  # while feeds, related items and events were sent
    floor_cpu: CpuShare  # while the floor was


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    url: str
    token: str
    process: subprocess.Popen[str]


@contextmanager
def running_server(
    workdir: Path,
    token: str | None = None,
    *,
    assistant: bool = True,
    start_timeout: float = 120,
    workers: int = 1,
    store_url: str | None = None,
) -> Iterator[LiveServer]:
    """`tastegraph serve` in a child process on a free loopback port (with `workers`
    server processes), yielded once it answers /healthz; stopped (that process only)
    afterwards. Its store is `store_url`, by default the workdir's store.db (never a store
    this process's environment names)."""
    token = token or secrets.token_urlsafe(16)
    port = free_port()
    env = os.environ | {
        "TASTEGRAPH_WORKDIR": str(workdir),
        "TASTEGRAPH_STORE_URL": store_url or f"sqlite:///{workdir / 'store.db'}",
        "TASTEGRAPH_API_TOKEN": token,
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "tastegraph", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--assistant" if assistant else "--no-assistant"]
    if workers > 1:
        command += ["--workers", str(workers)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    # A SIGTERM to this process (e.g. from `timeout`) must stop the server too.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        _wait_until_up(server, url, start_timeout)
        yield LiveServer(url, token, server)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _wait_until_up(server: subprocess.Popen[str], url: str, timeout: float) -> None:
    if not answers_health(url, timeout, alive=lambda: server.poll() is None):
        server.kill()
        output = server.communicate()[0]
        raise RuntimeError(f"the server did not start at {url}:\n{output[-3000:]}")


def answers_health(url: str, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Whether the server at `url` answers GET /healthz within `timeout` seconds, asking
    again every 0.3 s while `alive()` holds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if not alive() or time.monotonic() > deadline:
            return False
        time.sleep(0.3)


Drawn = tuple[list[str], list[str]]  # the users and the items a load names


def draw_targets(url: str, config: LoadConfig) -> Drawn:
    """config.users users with a profile, at random, and the items their feeds show, as
    often as they show them (shuffled): related items and events name those, so popular
    items come up again and again and the long tail once. Kept answers meet traffic like
    that, not a short list asked for over and over."""
    with httpx.Client(base_url=url, timeout=config.timeout) as client:
        listed = client.get("/v1/users?n=10000").json()["users"]
        if not listed:
            raise ValueError("the server has no users with a profile to request feeds for")
        rng = np.random.default_rng(0)
        chosen = rng.choice(len(listed), min(config.users, len(listed)), replace=False)
        users = [listed[i]["id"] for i in chosen]
        shown = []
        for user in users:
            feed = client.get(f"/v1/users/{user}/feed?n={config.n}").json()
            shown += [card["id"] for card in feed["items"]]
        return users, [shown[i] for i in rng.permutation(len(shown))]


class _Traffic:
    """The requests a load test sends: feeds of the drawn users, save events, related
    items of what those feeds show, health."""

    def __init__(
        self, client: httpx.AsyncClient, token: str, config: LoadConfig, drawn: Drawn
    ) -> None:
        self.client = client
        self.config = config
        self.headers = {"Authorization": f"Bearer {token}"}
        self.drawn = drawn
        self.users, self.items = drawn

    def rotate(self, seed: int) -> None:
        """Start the users and items at a place drawn from `seed` (see Targets.rotated)."""
        users, items = self.drawn
        self.users, self.items = rotated(users, seed), rotated(items, seed)

    async def feed(self, i: int) -> bool:
        user = self.users[i % len(self.users)]
        response = await self.client.get(f"/v1/users/{user}/feed?n={self.config.n}")
        return response.status_code == 200

    async def related(self, i: int) -> bool:
        item = self.items[i % len(self.items)]
        response = await self.client.get(f"/v1/items/{item}/related?n={self.config.n}")
        return response.status_code == 200

    async def health(self, i: int) -> bool:
        return (await self.client.get("/healthz")).status_code == 200

    async def event(self, i: int) -> bool:
        event = {
            "event_id": f"bench-{uuid.uuid4().hex}",
            "user_id": self.users[i % len(self.users)],
            "item_id": self.items[i % len(self.items)],
            "action": "save",
        }
        response = await self.client.post("/v1/events", json=event, headers=self.headers)
        return response.status_code == 200 and response.json()["stored"] == 1


def _client(url: str, config: LoadConfig) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    return httpx.AsyncClient(base_url=url, timeout=config.timeout, limits=limits)


def run_load(
    url: str,
    token: str,
    config: LoadConfig,
    *,
    generator: str = "python",
    server_pid: int | None = None,
    drawn: Drawn | None = None,
) -> list[RateResult]:
    """Each of config.rates in turn: feeds, related items and events together, then the
    floor alone at the feed rate, sent by `generator` ("wrk" or "python"), naming the
    `drawn` users and items (by default drawn from this server: draw_targets). The
    server's CPU share is measured where its process id is given."""
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; expected one of {GENERATORS}")
    drawn = drawn or draw_targets(url, config)
    if generator == "wrk":
        return _run_load_wrk(url, token, config, server_pid, drawn)
    return asyncio.run(_run_load(url, token, config, server_pid, drawn))


def _run_load_wrk(
    url: str, token: str, config: LoadConfig, server_pid: int | None, drawn: Drawn
) -> list[RateResult]:
    targets = Targets(*drawn, token, config.n)

    def mix_at(rate: float) -> list[Stream]:
        return [
            Stream("feed", rate),
            Stream("related", rate * config.related_share),
            Stream("events", config.events_per_second),
        ]

    if config.warmup > 0:  # caches filled, code paths run once: what a server meets at work
        run_wrk(url, mix_at(config.rates[0]), config.warmup, targets, timeout=config.timeout)
    results = []
    for rate in config.rates:
        mix = mix_at(rate)
        loaded = run_wrk(
            url,
            mix,
            config.seconds,
            targets.rotated(_seed(rate)),
            timeout=config.timeout,
            server_pid=server_pid,
        )
        floor = run_wrk(
            url,
            [Stream("health", rate)],
            config.seconds,
            targets,
            timeout=config.timeout,
            server_pid=server_pid,
        )
        streams = loaded.streams
        results.append(
            RateResult(
                rate=rate,
                feed=streams.get("feed", Latencies()),
                floor=floor.streams.get("health", Latencies()),
                events=streams.get("events", Latencies()),
                related=streams.get("related", Latencies()),
                related_rate=mix[1].rate,
                events_rate=mix[2].rate,
                generator="wrk",
                mix_cpu=loaded.cpu,
                floor_cpu=floor.cpu,
            )
        )
    return results


def _seed(rate: float) -> int:
    """Where the users and items start at this rate: another place at each rate, the same
    for every server measured at it."""
    return round(rate * 1000)


def run_side_by_side(
    servers: Mapping[int, LiveServer], config: LoadConfig, generator: str
) -> dict[int, list[RateResult]]:
    """run_load for each server (by worker count), taking the rates in turn and, at each
    rate, the servers one after the other: on a shared machine whose speed drifts by tens of
    percent within an hour, servers measured minutes apart would not compare. Each server
    gets config.warmup before its first rate, and all name the same users and items, drawn
    once from the first server."""
    by_workers: dict[int, list[RateResult]] = {count: [] for count in servers}
    drawn = draw_targets(next(iter(servers.values())).url, config)
    for number, rate in enumerate(config.rates):
        one_rate = replace(config, rates=(rate,), warmup=config.warmup if number == 0 else 0.0)
        for count, server in servers.items():
            by_workers[count] += run_load(
                server.url,
                server.token,
                one_rate,
                generator=generator,
                server_pid=server.process.pid,
                drawn=drawn,
            )
    return by_workers


async def _run_load(
    url: str, token: str, config: LoadConfig, server_pid: int | None, drawn: Drawn
) -> list[RateResult]:
    async with _client(url, config) as client:
        traffic = _Traffic(client, token, config, drawn)
        if config.warmup > 0:
            await _mix(traffic, config, config.rates[0], config.warmup)
        results = []
        for rate in config.rates:
            traffic.rotate(_seed(rate))
            with _measured_cpu(server_pid) as mix_cpu:
                feeds, events, related = await _mix(traffic, config, rate, config.seconds)
            with _measured_cpu(server_pid) as floor_cpu:
                floor = await _open_loop(traffic.health, rate, config.seconds)
            results.append(
                RateResult(
                    rate=rate,
                    feed=feeds,
                    floor=floor,
                    events=events,
                    related=related,
                    related_rate=rate * config.related_share,
                    events_rate=config.events_per_second,
                    generator="python",
                    mix_cpu=mix_cpu[0],
                    floor_cpu=floor_cpu[0],
                )
            )
    return results


async def _mix(
    traffic: _Traffic, config: LoadConfig, rate: float, seconds: float
) -> tuple[Latencies, Latencies, Latencies]:
    """Feeds at `rate` with events and related items meanwhile: (feeds, events, related)."""
    feeds, events, related = await asyncio.gather(
        _open_loop(traffic.feed, rate, seconds),
        _open_loop(traffic.event, config.events_per_second, seconds),
        _open_loop(traffic.related, rate * config.related_share, seconds),
    )
    return feeds, events, related


@contextmanager
def _measured_cpu(server_pid: int | None) -> Iterator[list[CpuShare]]:
    """The CPU share of this process (the Python generator: all of it sends the load) and
    of the server over the block, put in the yielded list when it ends."""
    share: list[CpuShare] = []
    server_before = process_tree_cpu_seconds(server_pid) if server_pid else math.nan
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    yield share
    after = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - start
    server_after = process_tree_cpu_seconds(server_pid) if server_pid else math.nan
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    cores = usable_cores()
    share.append(
        CpuShare(cpu_share(used, wall, cores), cpu_share(server_after - server_before, wall, cores))
    )


@dataclass(frozen=True)
class SoakResult:
    seconds: float
    feed: Latencies
    events: Latencies
    memory: list[tuple[float, float]]  # (seconds since the start, server RSS in MB)

    @property
    def memory_growth(self) -> float:
        """RSS at the end over RSS at the start of the measured period, minus one."""
        return self.memory[-1][1] / self.memory[0][1] - 1.0


def run_soak(server: LiveServer, config: LoadConfig, warmup: float = 30.0) -> SoakResult:
    """One steady rate (config.rates[0]) for config.seconds after a warm-up at the same
    rate, feeds and events mixed, sampling the server's memory every few seconds."""
    drawn = draw_targets(server.url, config)
    return asyncio.run(_run_soak(server, config, warmup, drawn))


async def _run_soak(
    server: LiveServer, config: LoadConfig, warmup: float, drawn: Drawn
) -> SoakResult:
    rate = config.rates[0]
    async with _client(server.url, config) as client:
        traffic = _Traffic(client, server.token, config, drawn)
        await asyncio.gather(
            _open_loop(traffic.feed, rate, warmup),
            _open_loop(traffic.event, config.events_per_second, warmup),
        )
        memory: list[tuple[float, float]] = []
        start = time.perf_counter()

        async def sample() -> None:
            while True:
                memory.append((time.perf_counter() - start, _rss_mb(server.process.pid)))
                await asyncio.sleep(5.0)

        sampler = asyncio.create_task(sample())
        feeds, events = await asyncio.gather(
            _open_loop(traffic.feed, rate, config.seconds),
            _open_loop(traffic.event, config.events_per_second, config.seconds),
        )
        sampler.cancel()
        memory.append((time.perf_counter() - start, _rss_mb(server.process.pid)))
    return SoakResult(time.perf_counter() - start, feeds, events, memory)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def soak_report(result: SoakResult, rate: float) -> str:
    answered = len(result.feed.seconds) + len(result.events.seconds)
    return (
        f"{result.seconds / 60:.1f} min at {rate:.0f} feed requests/s with events: "
        f"{answered:,} requests answered ({answered / result.seconds:.0f}/s)\n"
        f"feed p50 {result.feed.percentile(50):.1f} ms, p99 {result.feed.percentile(99):.1f} ms, "
        f"{result.feed.errors} errors; events p99 {result.events.percentile(99):.1f} ms, "
        f"{result.events.errors} errors\n"
        f"server memory {result.memory[0][1]:.0f} MB -> {result.memory[-1][1]:.0f} MB "
        f"({result.memory_growth:+.1%}; peak {max(m for _, m in result.memory):.0f} MB); "
        f"each minute: {' '.join(f'{mb:.0f}' for mb in _per_minute(result.memory))} MB"
    )


def _per_minute(memory: list[tuple[float, float]]) -> list[float]:
    """The first sample of each minute, and the last."""
    minutes: dict[int, float] = {}
    for at, mb in memory:
        minutes.setdefault(int(at // 60), mb)
    return [*minutes.values(), memory[-1][1]]


async def _open_loop(
    request: Callable[[int], Awaitable[bool]],
    rate: float,
    seconds: float,
    timeout: float = LoadConfig.timeout,
) -> Latencies:
    """Send request(i) at start + i / rate whatever the server's pace; an answer counts
    from its scheduled time, and a failure (request(i) false: a non-2xx answer), an
    exception, or an answer more than `timeout` after its scheduled time (as wrk counts
    it) is an error."""
    result = Latencies()
    start = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        try:
            ok = await request(i)
        except httpx.HTTPError:
            result.errors += 1
            return
        waited = time.perf_counter() - scheduled
        if ok and waited <= timeout:
            result.seconds.append(waited)
        elif ok:
            result.errors += 1
        else:
            result.errors += 1
            result.non_2xx += 1

    tasks = []
    for i in range(int(rate * seconds)):
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    return result


def sustained_rate(results: list[RateResult]) -> float | None:
    """The highest feed rate tried whose feed p99 was at most FEED_P99_BAR_MS with no
    request failed or answered other than 2xx; None: no rate was."""
    passed = [
        r.rate
        for r in results
        if r.feed.percentile(99) <= FEED_P99_BAR_MS
        and not any(lat.errors for lat in (r.feed, r.related, r.events))
    ]
    return max(passed, default=None)


def scaling_report(by_workers: dict[int, list[RateResult]]) -> str:
    """The highest feed rate each worker count sustained, as a ratio to the fewest
    workers' in the same run, against the scale-out targets."""
    sustained = {count: sustained_rate(results) for count, results in by_workers.items()}
    lines = [f"highest feed rate sustained (feed p99 <= {FEED_P99_BAR_MS:g} ms, 0 failed):"]
    base_count = min(sustained)
    base = sustained[base_count]
    for count, rate in sustained.items():
        if rate is None:
            lines.append(f"  {_workers(count)}: none of the rates tried")
            continue
        line = f"  {_workers(count)}: {rate:g} feeds/s"
        if count != base_count:
            lowest = min(r.rate for r in by_workers[base_count])
            held_all = rate == max(r.rate for r in by_workers[count])
            line += _ratio(rate, base, base_count, lowest, held_all)
        lines.append(line)
    best = max((rate for rate in sustained.values() if rate), default=0.0)
    verdict = "met" if best >= TOTAL_FEEDS_TARGET else "NOT met"
    lines.append(f"  most: {best:g} feeds/s (target {TOTAL_FEEDS_TARGET:g}: {verdict})")
    return "\n".join(lines)


def _ratio(rate: float, base: float | None, base_count: int, lowest: float, held_all: bool) -> str:
    """`rate` over the fewest workers' `base`; where they sustained none of the rates
    tried, theirs is below the `lowest`, so the ratio is above rate / lowest. Where `rate`
    is the highest tried (`held_all`), the limit is above it: the ratio is a lower bound."""
    ratio = rate / (lowest if base is None else base)
    if base is None:
        said = f"> {ratio:.2f}x {_workers(base_count)} (none sustained from {lowest:g})"
    elif held_all:
        said = f">= {ratio:.2f}x {_workers(base_count)} (held the highest rate tried)"
    else:
        said = f"= {ratio:.2f}x {_workers(base_count)}"
    bound = base is None or held_all
    verdict = "met" if ratio >= SCALE_OUT_TARGET else "not shown" if bound else "NOT met"
    return f" {said}, target {SCALE_OUT_TARGET}x: {verdict}"


def _workers(count: int) -> str:
    return f"{count} worker{'s' if count > 1 else ''}"


def report(results: list[RateResult]) -> str:
    """One column per feed rate; each endpoint's latency (from the scheduled time) and
    errors, the floor beside them, and the CPU share of the generator and the server."""
    if not results:
        return "no rates measured"
    cores = usable_cores()
    rows: list[tuple[str, list[str]]] = [
        ("feed requests/s", [f"{r.rate:g}" for r in results]),
        ("related requests/s", [f"{r.related_rate:g}" for r in results]),
        ("events/s", [f"{r.events_rate:g}" for r in results]),
    ]
    for name in ("feed", "related", "events", "floor"):
        latencies: list[Latencies] = [getattr(r, name) for r in results]
        for q in (50, 90, 99):
            rows.append((f"{name} p{q}", [_ms(lat.percentile(q)) for lat in latencies]))
        errors = [f"{lat.non_2xx} / {lat.failed}" for lat in latencies]
        rows.append((f"{name} non-2xx / failed", errors))
    ratios = [r.feed.percentile(99) / r.floor.percentile(99) for r in results]
    rows.append(("feed p99 / floor p99", ["-" if math.isnan(x) else f"{x:.1f}x" for x in ratios]))
    for part in ("mix", "floor"):
        shares = [getattr(r, f"{part}_cpu") for r in results]
        rows.append((f"generator CPU ({part})", [_share(s.generator) for s in shares]))
        rows.append((f"server CPU ({part})", [_share(s.server) for s in shares]))
    width = max(len(label) for label, _ in rows)
    cells = max(len(cell) for _, values in rows for cell in values) + 2
    generator = results[0].generator
    how = {"wrk": "wrk (Lua schedule)", "python": "Python (httpx, asyncio)"}.get(generator)
    lines = [
        f"generator: {how or generator}, open loop: latency from each request's scheduled "
        f"time; failed: no answer in time; CPU as a share of {cores} cores"
    ]
    lines += [
        f"{label:<{width}}" + "".join(f"{v:>{cells}}" for v in values) for label, values in rows
    ]
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f} ms"


def _share(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"
