"""The compiled load generator of `tastegraph bench serve`, and what the bench measures
about its own cost: wrk driven by `wrk_plan.lua` (beside this module) to send each stream
(feed, related items, events, health) on a fixed schedule, per-stream latencies read back
from its output, and the CPU share of the generator and of the server during a run.

Why wrk, and how it is kept open loop. A generator in Python on the same two cores as the
server spends about as much CPU as the server does, so the old figure measured both. The
open-loop compiled tool, wrk2 (latency from each request's scheduled time), is not in
Debian; Debian's `wrk` is the closed-loop original (a connection sends its next request
when the last one is answered, timed from the send), and so are the other packaged tools:
`hey -q` throttles each worker that still waits for its answer, and `h2load --rate` paces
new connections, not requests. Each of them sends less when the server slows down and
times from the send, so queueing never shows (coordinated omission). wrk's Lua hooks can
do what wrk2 does, so we use them: `delay()` holds each connection until its request is
due (start + slot / rate) and `response()` counts the latency from then. That is open loop
up to the connections: a request still waits for the previous answer on its connection,
but the wait counts in its latency, as it would in a queue at the server, and each stream
gets enough connections for its rate x IN_FLIGHT_SECONDS. One connection per wrk thread,
one stream per thread: each Lua state then records one stream's requests in order, and
`done()` prints them per thread, since wrk's own latency figures are for all requests.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import IO, Any

import numpy as np

STREAMS = ("feed", "related", "events", "health")
IN_FLIGHT_SECONDS = 0.1  # connections per stream: its rate x this, plus one
MAX_CONNECTIONS = 64  # per stream; each is a wrk thread
LEAD_SECONDS = 0.3  # between starting wrk and the first scheduled request


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)  # of answered requests
    errors: int = 0  # requests that failed, whatever the way
    non_2xx: int = 0  # of which answered, but not with 2xx (or an event that was not stored)

    @property
    def failed(self) -> int:
        """Requests never answered in time: socket errors, timeouts, still unsent at the end."""
        return self.errors - self.non_2xx

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.seconds, q) * 1000) if self.seconds else float("nan")


@dataclass(frozen=True)
class Stream:
    kind: str  # one of STREAMS
    rate: float  # requests per second

    @property
    def connections(self) -> int:
        return max(1, min(MAX_CONNECTIONS, math.ceil(self.rate * IN_FLIGHT_SECONDS) + 1))


@dataclass(frozen=True)
class Targets:
    """What the requests name: feeds cycle through users, related items and events through
    items (events pair users[i] with items[i], as the Python generator does)."""

    users: list[str]
    items: list[str]
    token: str  # Bearer token for POST /v1/events
    n: int = 12  # items per feed or related list

    def rotated(self, seed: int) -> Targets:
        """The same targets, each list starting at a place drawn from `seed`: a run after
        another does not name the same users and items in the same order, so kept answers
        help it only as much as the lists repeat themselves."""
        return replace(self, users=rotated(self.users, seed), items=rotated(self.items, seed))


def rotated(values: list[str], seed: int) -> list[str]:
    start = int(np.random.default_rng(seed).integers(len(values))) if values else 0
    return values[start:] + values[:start]


@dataclass(frozen=True)
class CpuShare:
    """CPU time over a run, as a share of all the cores (1.0: every core busy throughout)."""

    generator: float
    server: float  # NaN where the server's process is not known


@dataclass(frozen=True)
class WrkRun:
    streams: dict[str, Latencies]
    socket_errors: int  # wrk's own count (connect, read, write, timeout), all streams
    cpu: CpuShare
    seconds: float  # wall time of the wrk process


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    streams: list[Stream],
    seconds: float,
    targets: Targets,
    *,
    timeout: float = 5.0,
    server_pid: int | None = None,
) -> WrkRun:
    """Send every stream at its rate for `seconds` with wrk; a request answered later than
    `timeout` after it was due, or never, is an error. Ends once every thread has been
    answered for its last slot, or `timeout` after the schedule at the latest."""
    binary = wrk_binary()
    if binary is None:
        raise FileNotFoundError("wrk is not on PATH (Debian: apt-get install wrk)")
    plan = wrk_plan(streams, seconds, targets)
    threads = len(plan["threads"])
    with tempfile.TemporaryDirectory(prefix="tastegraph-wrk-") as scratch:
        plan_path = Path(scratch) / "plan.lua"
        plan_path.write_text(lua_literal(plan, top=True))
        stderr_path = Path(scratch) / "stderr"
        script = resources.files("tastegraph.bench").joinpath("wrk_plan.lua")
        with resources.as_file(script) as script_path, stderr_path.open("w") as stderr:
            limit = LEAD_SECONDS + seconds + timeout
            command = [binary, "-t", str(threads), "-c", str(threads)]
            command += ["-d", f"{math.ceil(limit)}s", "--timeout", f"{math.ceil(timeout)}s"]
            command += ["-s", str(script_path), url]
            env = os.environ | {"TASTEGRAPH_WRK_PLAN": str(plan_path)}
            server_before = process_tree_cpu_seconds(server_pid) if server_pid else math.nan
            output, cpu_seconds, wall, code = _run_until_finished(
                command, env, stderr, threads, limit
            )
            server_after = process_tree_cpu_seconds(server_pid) if server_pid else math.nan
        errors = stderr_path.read_text()
    if code != 0 or errors.strip() or "tastegraph-thread" not in output:
        raise RuntimeError(f"wrk failed (exit {code}):\n{errors[-3000:]}\n{output[-3000:]}")
    parsed = parse_output(output, timeout)
    cores = usable_cores()
    cpu = CpuShare(
        generator=cpu_share(cpu_seconds, wall, cores),
        server=cpu_share(server_after - server_before, wall, cores),
    )
    return WrkRun(parsed.streams, parsed.socket_errors, cpu, wall)


def _run_until_finished(
    command: list[str], env: dict[str, str], stderr: IO[str], threads: int, limit: float
) -> tuple[str, float, float, int]:
    """Run wrk, reading its output as it comes; once every thread has printed that it is
    finished, interrupt it (wrk then prints its results at once instead of sleeping out
    its -d). Returns (output, its CPU seconds, wall seconds, exit code)."""
    lines: list[str] = []
    finished: set[str] = set()
    all_finished = threading.Event()
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            lines.append(line)
            if line.startswith("tastegraph-finished "):
                finished.add(line.split()[1])
                if len(finished) == threads:
                    all_finished.set()
        all_finished.set()  # wrk ended on its own

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # Only os.wait4 may reap wrk (it gives this child's own CPU time, which Popen.wait
    # does not), so no Popen.poll, send_signal or kill here: they reap it too.
    pid = 0
    try:
        all_finished.wait(limit + 5)
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if not pid:
            os.kill(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while not pid and time.monotonic() < deadline:
            time.sleep(0.02)
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
    finally:
        if not pid:  # stuck, or this process is being stopped
            os.kill(process.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=10)
    stdout.close()
    return "".join(lines), usage.ru_utime + usage.ru_stime, wall, process.returncode


def wrk_plan(streams: list[Stream], seconds: float, targets: Targets) -> dict[str, Any]:
    """The table wrk_plan.lua reads: one entry per wrk thread (= connection), each with
    its stream, rate and share of the stream's slots."""
    if not targets.users or not targets.items:
        raise ValueError("the load needs at least one user and one item to name")
    threads: list[dict[str, object]] = []
    for stream in streams:
        if stream.kind not in STREAMS:
            raise ValueError(f"unknown stream {stream.kind!r}; expected one of {STREAMS}")
        slots = int(stream.rate * seconds)
        connections = min(stream.connections, slots)
        for first in range(connections):
            threads.append(
                {
                    "kind": stream.kind,
                    "rate": stream.rate,
                    "slots": slots,
                    "first": first,
                    "stride": connections,
                    "planned": len(range(first, slots, connections)),
                }
            )
    if not threads:
        raise ValueError("no request to send: every stream's rate x seconds is under one")
    return {
        "lead_ms": LEAD_SECONDS * 1000,
        "run": uuid.uuid4().hex[:12],
        "n": targets.n,
        "token": targets.token,
        "users": targets.users,
        "items": targets.items,
        "threads": threads,
    }


def lua_literal(value: object, top: bool = False) -> str:
    """A Lua expression for plain data: strings, numbers, booleans, lists, str-keyed dicts."""
    if top:
        return f"return {lua_literal(value)}\n"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"no Lua literal for {value}")
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03d}"
            for b in value.encode()
        )
        return f'"{escaped}"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{lua_literal(k)}] = {lua_literal(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(f"no Lua literal for {type(value).__name__}")


@dataclass(frozen=True)
class ParsedOutput:
    streams: dict[str, Latencies]
    socket_errors: int


def parse_output(output: str, timeout: float) -> ParsedOutput:
    """Per-stream latencies and errors from wrk's output with wrk_plan.lua: each thread's
    counts and latencies (microseconds from when the request was due); a latency over
    `timeout` and a planned request never answered count as failed."""
    streams: dict[str, Latencies] = {}
    counts: dict[str, dict[str, int]] = {}
    kinds: dict[str, str] = {}
    latencies: dict[str, list[float]] = {}
    socket_errors = 0
    for line in output.splitlines():
        words = line.split()
        if line.startswith("tastegraph-thread "):
            thread, kind = words[1], words[2]
            kinds[thread] = kind
            counts[thread] = {k: int(v) for k, v in (w.split("=") for w in words[3:])}
        elif line.startswith("tastegraph-latency-us "):
            latencies[words[1]] = [int(us) / 1e6 for us in words[2:]]
        elif line.strip().startswith("Socket errors:"):
            socket_errors += sum(int(w.strip(",")) for w in words if w.strip(",").isdigit())
    for thread, kind in kinds.items():
        count = counts[thread]
        answered = latencies.get(thread, [])
        if len(answered) != count["ok"]:
            raise ValueError(f"thread {thread}: {count['ok']} answers, {len(answered)} latencies")
        in_time = [s for s in answered if s <= timeout]
        result = streams.setdefault(kind, Latencies())
        result.seconds += in_time
        result.non_2xx += count["non2xx"]
        unanswered = count["planned"] - count["ok"] - count["non2xx"]
        result.errors += count["non2xx"] + unanswered + len(answered) - len(in_time)
    return ParsedOutput(streams, socket_errors)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def cpu_share(cpu_seconds: float, wall_seconds: float, cores: int) -> float:
    """CPU time as a share of what `cores` cores offer over `wall_seconds`."""
    if wall_seconds <= 0 or cores <= 0:
        raise ValueError(f"need positive wall time and cores, got {wall_seconds}, {cores}")
    return cpu_seconds / (wall_seconds * cores)


def stat_fields(stat: str) -> tuple[int, int]:
    """(parent pid, CPU ticks) from the text of /proc/<pid>/stat: the process's user and
    system time plus that of the children it has waited for (so a worker that exits
    and is reaped is still counted). The command name may hold spaces and parentheses."""
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17.
    return int(rest[1]), sum(int(ticks) for ticks in rest[11:15])


def process_tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by a process and every live process below it."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent, used = stat_fields(path.read_text())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        pid = int(path.parent.name)
        parents[pid], ticks[pid] = parent, used
    if root not in ticks:
        raise ProcessLookupError(f"no process {root}")
    tree, frontier = {root}, {root}
    while frontier:
        below = {pid for pid, parent in parents.items() if parent in frontier}
        tree.update(below)
        frontier = below
    return sum(ticks[pid] for pid in tree) / os.sysconf("SC_CLK_TCK")
