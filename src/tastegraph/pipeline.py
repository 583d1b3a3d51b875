"""The main job end to end: ingest, train embeddings, embed, index, graph, profiles, fit the
feed's weights, train the related-items re-ranker, compute the related-items table, train
the assistant.

Each step is skipped while its artifact is current (built from the current version of its
inputs), so a second run only checks and takes seconds. Every step is also a command of
its own (`tastegraph ingest hm`, `train embeddings`, `embed`, `index`, `graph`, `profiles`,
`train feed`, `train reranker`, `related-table`, `train assistant`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tastegraph import registry
from tastegraph.artifacts import current_version
from tastegraph.config import Settings
from tastegraph.store import Store

if TYPE_CHECKING:
    from tastegraph.embeddings.train import TrainConfig


@dataclass(frozen=True)
class PipelineConfig:
    content_epochs: int = 30  # fusion model, stage 1 (photo-text pairs)
    taste_epochs: int = 10  # fusion model, stage 2 (co-engaged items)
    assistant_items: int = 8000  # items the projector aligns on; 0 leaves the assistant out
    shopping_examples: int = 800  # purchases for stage 2 of the assistant; 0 leaves it out
    reingest: bool = False  # read the dataset again although the store holds events
    retrain: bool = False  # train the fusion model and the re-ranker again although they exist
    reranker: bool = True  # train the related-items re-ranker (its own fusion model)


# What a server needs before it can answer feeds, related items and search; the steps
# after them improve it, and a running server swaps their artifacts in.
SERVING_STEPS = ("ingest", "train embeddings", "embed", "index", "graph", "profiles")
IMPROVING_STEPS = ("train feed", "train reranker", "related table", "train assistant")


@dataclass(frozen=True)
class StepReport:
    step: str
    ran: bool  # False when the artifact was current and the step was skipped
    seconds: float
    detail: str


def _manifest(root: Path) -> dict[str, Any] | None:
    folder = current_version(root)
    if folder is None:
        return None
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return manifest


class Pipeline:
    def __init__(self, store: Store, settings: Settings, config: PipelineConfig) -> None:
        self.store = store
        self.settings = settings
        self.config = config
        self.workdir = settings.workdir

    def run(
        self,
        data: Path | None,
        on_step: Callable[[StepReport], None] = lambda _: None,
        only: Sequence[str] = SERVING_STEPS + IMPROVING_STEPS,
    ) -> list[StepReport]:
        """Run the steps named in `only` (default: all), in order; `data` is an H&M dataset
        folder, or None to work on what the store holds."""
        steps: dict[str, Callable[[], str | None]] = {
            "ingest": lambda: self.ingest(data),
            "train embeddings": self.train_embeddings,
            "embed": self.embed,
            "index": self.index,
            "graph": self.graph,
            "profiles": self.profiles,
            "train feed": self.train_feed,
            "train reranker": self.train_reranker,
            "related table": self.related_table,
            "train assistant": self.train_assistant,
        }
        if unknown := set(only) - set(steps):
            raise ValueError(f"unknown steps {sorted(unknown)}; the steps are {list(steps)}")
        reports = []
        for name, step in steps.items():
            if name not in only:
                continue
            start = time.perf_counter()
            detail = step()
            report = StepReport(
                name, detail is not None, time.perf_counter() - start, detail or "current"
            )
            on_step(report)
            reports.append(report)
        return reports

    # Each step returns what it did, or None when its artifact was current.

    def ingest(self, data: Path | None) -> str | None:
        from tastegraph.ingest import ingest_hm

        if data is None or (self.store.counts()["events"] and not self.config.reingest):
            return None
        reports = ingest_hm(self.store, data, self.settings)
        return ", ".join(f"{r.what} {r.stored:,} new" for r in reports)

    def _fusion_config(self) -> TrainConfig:
        from tastegraph.embeddings.train import TrainConfig

        return TrainConfig(
            content_epochs=self.config.content_epochs, taste_epochs=self.config.taste_epochs
        )

    def train_embeddings(self) -> str | None:
        from tastegraph.embeddings.job import fusion_root, train_fusion_model

        published = _manifest(fusion_root(self.workdir))
        if published and not self.config.retrain and published["towers"] == self._towers():
            return None
        result, folder = train_fusion_model(self.store, self.settings, self._fusion_config())
        return (
            f"{result.content_items:,} photo-text pairs, {result.taste_pairs:,} taste pairs, "
            f"version {folder.name}"
        )

    def _towers(self) -> dict[str, str]:
        """The towers the settings load (a new tower version means a new fusion model)."""
        from tastegraph.encoders import load_image_tower, load_text_tower
        from tastegraph.encoders.base import tower_ids

        return tower_ids(
            load_image_tower(self.settings.image_model, self.settings.image_runtime),
            load_text_tower(self.settings.text_model),
        )

    def embed(self) -> str | None:
        from tastegraph.embeddings.job import run_embed

        result = run_embed(self.store, self.settings)
        if not result.published:
            return None
        return f"{len(result.embeddings):,} items, version {result.embeddings.version}"

    def _embeddings_version(self) -> str:
        from tastegraph.embeddings.store import embeddings_root

        folder = current_version(embeddings_root(self.workdir))
        if folder is None:
            raise FileNotFoundError(f"no item embeddings in {self.workdir}")
        return folder.name

    def index(self) -> str | None:
        from tastegraph.embeddings.store import EmbeddingStore
        from tastegraph.index.build import index_options, index_root, update_index

        current = _manifest(index_root(self.workdir))
        if current and current.get("embeddings_version") == self._embeddings_version():
            return None
        embeddings = EmbeddingStore.open(self.workdir)
        folder = update_index(embeddings, self.store, self.workdir, **index_options(self.settings))
        return f"version {folder.name}"

    def graph(self) -> str | None:
        from tastegraph.graph import graph_root
        from tastegraph.graph.job import build_and_publish

        current = _manifest(graph_root(self.workdir))
        if current and current.get("embeddings_version") == self._embeddings_version():
            return None
        return f"version {build_and_publish(self.store, self.workdir, self.settings).name}"

    def profiles(self) -> str | None:
        from tastegraph.index import open_index
        from tastegraph.profiles import profiles_root
        from tastegraph.profiles.batch import publish_profiles

        index = open_index(self.workdir)
        current = _manifest(profiles_root(self.workdir))
        if current and current.get("embeddings_version") == index.version:
            return None
        folder, profiles = publish_profiles(self.store, index, self.settings)
        return f"{len(profiles):,} users, version {folder.name}"

    def train_feed(self) -> str | None:
        from tastegraph.evaluate.feed_weights import train_and_publish

        current = _manifest(registry.root(self.workdir, "feed"))
        index = registry.current(self.workdir, "index")
        if current and index and current.get("index_version") == index.name:
            return None
        fit, folder = train_and_publish(self.store, self.settings)
        if fit is None or folder is None:
            return "left out: the log is too short to fit on; the feed keeps its default"
        return f"{fit.summary()}, version {folder.name}"

    def train_reranker(self) -> str | None:
        from tastegraph.recommend.rerank_job import HOLDOUT_DAYS, train_and_publish

        published = _manifest(registry.root(self.workdir, "reranker"))
        current = published and published.get("format") == registry.ARTIFACTS["reranker"].format
        if not self.config.reranker or (current and not self.config.retrain):
            return None  # one in an older format is trained again
        try:
            _, folder = train_and_publish(self.store, self.settings, self._fusion_config())
        except ValueError as exc:  # a log too short to hold training weeks
            return f"left out: {exc}"
        if folder is None:
            return (
                f"left out: too few baskets in the last {HOLDOUT_DAYS:.0f} days; related items "
                "keep the related score"
            )
        return f"version {folder.name}"

    def related_table(self) -> str | None:
        from tastegraph.recommend.related_job import publish_related_table
        from tastegraph.recommend.related_table import inputs_of

        published = _manifest(registry.root(self.workdir, "related")) or {}
        current = published.get("format") == registry.ARTIFACTS["related"].format
        if current and published.get("inputs") == inputs_of(registry.versions(self.workdir)):
            return None
        table, folder = publish_related_table(self.store, self.settings)
        return f"{len(table.queries):,} items, {table.width} related each, version {folder.name}"

    def train_assistant(self) -> str | None:
        from tastegraph.assistant.projector import projector_root
        from tastegraph.assistant.shopping import shop_assistant
        from tastegraph.assistant.train import align_assistant

        current = _manifest(projector_root(self.workdir)) or {}
        fresh = assistant_is_current(
            current, self._embeddings_version(), self.settings.language_model
        )
        if self.config.assistant_items == 0 or fresh:
            return None
        aligned, folder = align_assistant(
            self.store, self.settings, max_items=self.config.assistant_items
        )
        detail = (
            f"stage 1: {aligned.items:,} items, warm-start error "
            f"{aligned.error_before:.2f} -> {aligned.error_after:.2f}"
        )
        if self.config.shopping_examples > 0:
            try:
                result, folder = shop_assistant(
                    self.store, self.settings, max_examples=self.config.shopping_examples
                )
                detail += (
                    f"; stage 2: {result.examples:,} purchases, held-out loss "
                    f"{result.heldout_loss_before:.2f} -> {result.heldout_loss_after:.2f}"
                )
            except ValueError as exc:  # too few purchases of items with the attributes
                detail += f"; stage 2 left out: {exc}"
        return f"{detail}, version {folder.name}"


def assistant_is_current(manifest: dict[str, Any], embeddings_version: str, lm: str) -> bool:
    """Whether the published projector was trained for these embeddings and this LM, and,
    after stage 2, on the item layout chat shows with the current choice head."""
    from tastegraph.assistant.choice import SERVED_LAYOUT
    from tastegraph.assistant.head import HEAD_FORMAT
    from tastegraph.assistant.models import DEFAULT_LM

    if manifest.get("embeddings_version") != embeddings_version:
        return False
    if manifest.get("lm", DEFAULT_LM) != lm:
        return False
    return manifest.get("stage") != "shopping" or (
        manifest.get("item_layout") == SERVED_LAYOUT and manifest.get("head_format") == HEAD_FORMAT
    )
