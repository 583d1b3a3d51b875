"""Where an offline step running beside the server is (`OnlineSystem.train_beside`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Training:
    """Where one offline step running beside the server is."""

    state: str = "waiting"  # then "training", then "done" or "failed"
    detail: str = ""
    started: float | None = None
    finished: float | None = None

    def begin(self) -> None:
        self.state, self.started = "training", time.time()

    def end(self, state: str, detail: str) -> None:
        self.state, self.detail, self.finished = state, detail, time.time()

    def seconds(self) -> float:
        """How long it has run (or ran)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "seconds": round(self.seconds()), "detail": self.detail}
