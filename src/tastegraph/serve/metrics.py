"""Prometheus metrics: request counts and latency histograms by route and status."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # one per app, so several apps can live in a process
        labels = ("method", "route", "status")
        self.requests = Counter(
            "tastegraph_requests", "HTTP requests answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "tastegraph_request_seconds",
            "Time to the end of the response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    class Middleware:
        def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
            self.app = app
            self.metrics = metrics

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500

            async def send_and_note(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_and_note)
            finally:
                route = scope.get("route")
                # The route's template (/v1/items/{item_id}), so ids do not explode the labels.
                name = getattr(route, "path", "unmatched")
                labels = (scope["method"], name, str(status))
                self.metrics.requests.labels(*labels).inc()
                self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)
