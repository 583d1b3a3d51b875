"""Settings in one place: defaults, overridden by TASTEGRAPH_* variables, then by CLI flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ACTIONS = ("view", "click", "save", "purchase", "hide")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASTEGRAPH_", extra="ignore")

    # How much the user's own items weigh in their feed; None: measured from the log (100
    # where people engage with an item again, as on H&M; 0, and engaged items left out,
    # where under 5% of engagements repeat one: recommend/behaviour.py).
    repeat_weight: float | None = None
    # How much popular items weigh in the feed (interests and walks weigh 1); None: the
    # weight `tastegraph train feed` fitted to the log, else 0.3 (evaluate/feed_weights.py).
    popular_weight: float | None = Field(default=None, ge=0.0)
    # Where every artifact lives: the store, quarantine files, embeddings, models, indexes.
    workdir: Path = Path("tastegraph-data")
    # A dataset folder, e.g. the H&M sample; commands that need one also take --data.
    data: Path | None = None
    # Store location by URL scheme; empty means SQLite inside the workdir.
    store_url: str = ""
    # Default weight of each action when an event carries none. A hide is negative feedback.
    action_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "view": 0.1,
            "click": 0.3,
            "save": 0.7,
            "purchase": 1.0,
            "hide": -1.0,
        }
    )
    # Events per store transaction during ingest; each transaction is durable on commit.
    ingest_batch_size: int = 2000
    # Processes that check photos (open, decode, hash) during ingest.
    ingest_workers: int = 2
    # Photos above this many pixels are refused as possible decompression bombs.
    max_image_pixels: int = 40_000_000
    # Photos per image-tower forward pass in the embed job.
    embed_batch_size: int = 32
    # Threads of the embed job, each reading, decoding and encoding one batch of photos;
    # the default is one per core.
    embed_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    # Features per cache shard: a killed embed job loses at most one shard of work.
    embed_shard_size: int = 1024
    # The item attribute shared by variants of one product (colours, sizes); variants are
    # positives when the fusion model learns taste. H&M's product_code; any attribute works.
    variant_attribute: str = "product_code"
    # Where the towers run: "local" (this process) or "ray" (Ray Data: RAY_ADDRESS's cluster,
    # or a Ray started on this machine, listening on loopback only).
    embed_engine: Literal["local", "ray"] = "local"
    # Item index: "exact" search, "hnsw", or "auto" (exact up to index_exact_threshold items).
    index_kind: Literal["auto", "exact", "hnsw"] = "auto"
    index_exact_threshold: int = 50_000
    # HNSW beam width at query time: 64 gives recall@50 of 0.99 on the H&M embeddings.
    index_ef_search: int = 64
    # The item attribute that category filters match.
    index_category_key: str = "product_group"
    # The item attributes that assistant training writes shopping requests from ("Do you
    # have a black dress?"): items lacking either never become a training target.
    colour_attribute: str = "colour_group"
    kind_attribute: str = "product_type"
    # The item attribute naming a pattern ("Stripe", "Solid"); the assistant checks its
    # replies against it.
    pattern_attribute: str = "graphical_appearance"
    # How prices read to people (page, cards, assistant): currency sign and the factor from
    # stored prices to shown ones. Unset: what the dataset adapter wrote to catalog.json.
    price_currency: str | None = None
    price_factor: float | None = Field(default=None, gt=0)
    # Default towers and language model (ARCHITECTURE.md). A CLIP checkpoint on disk
    # plugs in as "clip:/path/to/folder". The assistant's LM: SmolLM2-135M-Instruct,
    # Qwen2.5-Coder-0.5B-Instruct (`make qwen` installs it), a transformers folder or a
    # .gguf file (assistant/models.py).
    image_model: str = "efficientnet-lite0"
    # What runs the default image tower: "onnx" (ONNX Runtime, several times the photos/s
    # on CPU) or "torch" (eager PyTorch, the reference); the features are the same.
    image_runtime: Literal["onnx", "torch"] = "onnx"
    text_model: str = "all-MiniLM-L6-v2"
    language_model: str = "SmolLM2-135M-Instruct"
    # The HTTP server. Write endpoints (events, new items) need `Authorization: Bearer
    # <api_token>`; without one set, `tastegraph serve` makes a random token and prints it.
    api_token: str = ""
    serve_host: str = "127.0.0.1"
    serve_port: int = 8000
    # How often the server looks for newly published artifacts (embeddings, index, graph,
    # profiles, models) and swaps them in without a restart.
    serve_watch_seconds: float = 2.0
    # How long a feed asked to reflect events up to a log position (`after`) waits for this
    # server process to reach it before it answers anyway, with X-Log-Stale.
    read_your_writes_seconds: float = 1.0
    # Requests larger than this get 413; photos of new items count towards it.
    max_request_bytes: int = 16_000_000
    max_events_per_request: int = 1000
    # Assistant turns each client (by address) may start: a burst, then this many a minute.
    chat_per_minute: float = 20.0
    chat_burst: int = 5

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.workdir / 'store.db'}"

    @property
    def quarantine_dir(self) -> Path:
        return self.workdir / "quarantine"


def default_action_weights() -> dict[str, float]:
    """The settings' default action weights, without reading the environment."""
    default = Settings.model_fields["action_weights"].get_default(call_default_factory=True)
    return dict(default)
