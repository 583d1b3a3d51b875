"""Progress of a long step: a bar on a terminal; without one (a log, a service), a line
every LOG_EVERY seconds with how far it is, the time per unit and an estimate of the time
left."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger(__name__)

LOG_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal


class Progress:
    def __init__(
        self, total: int, what: str, units: str = "steps", *, done: int = 0, show: bool = True
    ) -> None:
        """`total` `units` ("batches") of `what` ("training fusion"), `done` of them already
        (a resumed run); `show` false: silent."""
        self.terminal = show and sys.stderr.isatty()
        self.show = show
        self.bar = tqdm(total=total, initial=done, desc=what, unit=units, disable=not self.terminal)
        self.what, self.units, self.total = what, units, total
        self.done = self.started_at = done
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1, **status: str) -> None:
        """`n` more units done; `status` (e.g. loss="0.41") shows beside the bar and in
        the log line."""
        self.done += n
        self.bar.update(n)
        if status:
            self.bar.set_postfix(status)
        now = time.monotonic()
        if self.show and not self.terminal and now - self.last >= LOG_EVERY:
            self.last = now
            log.info("%s", self.line(now, status))

    def line(self, now: float, status: dict[str, str]) -> str:
        """The log line, e.g. "training fusion: 120/900 batches, 0.41 s each, about 320 s
        left (loss 0.41)"."""
        worked = max(self.done - self.started_at, 1)
        each = (now - self.started) / worked
        left = each * max(self.total - self.done, 0)
        details = ", ".join(f"{key} {value}" for key, value in status.items())
        pace = f"{each:.2f} s" if each >= 0.1 else f"{each * 1000:.2f} ms"
        return (
            f"{self.what}: {self.done}/{self.total} {self.units}, {pace} each, "
            f"about {left:.0f} s left" + (f" ({details})" if details else "")
        )

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
