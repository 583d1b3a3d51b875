"""The feed's popular weight fitted to the log: raised where the next engagements follow a
trend, kept where they follow taste, published by the job and read by what serves."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from tastegraph.config import Settings
from tastegraph.evaluate.feed_weights import POPULAR_WEIGHTS, ServedAs, fit_popular_weight
from tastegraph.index import ItemIndex
from tastegraph.pipeline import Pipeline, PipelineConfig
from tastegraph.recommend.assemble import open_recommender, popular_weight
from tastegraph.registry import current, read_manifest
from tastegraph.store import Event, SQLiteStore

DAY = 24 * 3600.0
ITEMS, CLUSTERS, USERS = 200, 10, 300
DEFAULT = POPULAR_WEIGHTS[0]
_ids = itertools.count()


def event(user: int, row: int, day: float) -> Event:
    return Event(f"e{next(_ids)}", f"u{user}", f"i{row}", "save", 0.8, day * DAY)


def clustered_index(seed: int = 0) -> ItemIndex:
    """Items of one cluster of 20 lie close together."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, 16))
    vectors = np.repeat(centres, ITEMS // CLUSTERS, axis=0) + 0.3 * rng.normal(size=(ITEMS, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ItemIndex.build([f"i{row}" for row in range(ITEMS)], vectors.astype(np.float32))


def taste_log(seed: int = 0) -> list[Event]:
    """Each user engages with items of their own cluster, before and after; no item is
    popular overall."""
    rng = np.random.default_rng(seed)
    events = []
    for user in range(USERS):
        cluster = user % CLUSTERS * 20 + rng.permutation(20)
        events += [event(user, int(r), float(rng.uniform(0, 90))) for r in cluster[:8]]
        events += [event(user, int(r), float(rng.uniform(92, 100))) for r in cluster[8:10]]
    return events


def trend_log(seed: int = 0) -> list[Event]:
    """Users engage with random items, but everyone's last engagements go to ten items that
    a third of them began with in the days before: taste says nothing, fresh popularity
    all, and walks reach the trend only from the users who were in it early."""
    rng = np.random.default_rng(seed)
    trending = np.arange(100, 110)
    events = []
    for user in range(USERS):
        rows = rng.permutation(ITEMS)[:8]
        events += [event(user, int(r), float(rng.uniform(0, 90))) for r in rows]
        if user % 3 == 0:
            events.append(event(user, int(rng.choice(trending)), float(rng.uniform(85, 91))))
        events += [
            event(user, int(r), float(rng.uniform(92, 100)))
            for r in rng.choice(trending, 2, replace=False)
        ]
    return events


def test_a_trend_raises_the_popular_weight() -> None:
    fit = fit_popular_weight(clustered_index(), trend_log(), {})
    assert fit is not None
    assert fit.popular_weight > DEFAULT, fit
    assert fit.ndcg[fit.grid.index(fit.popular_weight)] > fit.ndcg[0]
    assert 100 < fit.users < USERS  # those with an engagement in the last tenth


def test_taste_keeps_the_default() -> None:
    fit = fit_popular_weight(clustered_index(), taste_log(), {})
    assert fit is not None
    assert fit.popular_weight <= DEFAULT, fit


def test_nothing_to_foresee_fits_nothing() -> None:
    views = [Event(f"v{u}", f"u{u}", f"i{u}", "view", 0.1, float(u) * DAY) for u in range(100)]
    assert fit_popular_weight(clustered_index(), views, {}) is None  # no positive to score


def test_the_job_publishes_what_serves_and_a_setting_wins(
    built_workdir: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(built_workdir, workdir)
    folder = current(workdir, "feed")
    assert folder is not None, "the main job fits the feed"
    fitted = float(read_manifest(folder, "feed")["popular_weight"])
    assert fitted in POPULAR_WEIGHTS
    settings = Settings(workdir=workdir)
    assert popular_weight(workdir, settings) == fitted
    with SQLiteStore(workdir / "store.db") as store:
        assert open_recommender(workdir, store, settings).config.popular_weight == fitted
        chosen = settings.model_copy(update={"popular_weight": 7.5})
        assert open_recommender(workdir, store, chosen).config.popular_weight == 7.5
        [again] = Pipeline(store, settings, PipelineConfig()).run(None, only=["train feed"])
    assert not again.ran  # fitted over the current index already


def test_an_unreadable_fit_serves_the_default(
    built_workdir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(built_workdir, workdir)
    folder = current(workdir, "feed")
    assert folder is not None
    (folder / "manifest.json").write_text("{}")  # no kind, no weight
    assert popular_weight(workdir, Settings(workdir=workdir)) is None
    assert "run `tastegraph train feed`" in caplog.text


def test_the_fit_builds_the_feed_the_settings_serve() -> None:
    measured = ServedAs.from_settings(Settings())
    assert measured.exclude_engaged is None  # decided from the log, as served
    weights = Settings().action_weights | {"save": 0.5}
    chosen = ServedAs.from_settings(Settings(repeat_weight=5.0, action_weights=weights))
    assert chosen.exclude_engaged is False  # an explicit repeat weight keeps engaged items in
    assert chosen.repeat_weight == 5.0
    assert chosen.graph is not None and chosen.graph.action_weights["save"] == 0.5
