"""The scripted-conversation evaluation, played through the served assistant of the small
real catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

from tastegraph.config import Settings
from tastegraph.evaluate.conversations import INTENTS, evaluate_conversations, scripts
from tastegraph.online import OnlineSystem
from tastegraph.store import SQLiteStore


def test_conversations_obey_every_stated_constraint(built_workdir: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(built_workdir, workdir)
    settings = Settings(workdir=workdir)
    with SQLiteStore(workdir / "store.db") as store:
        service = OnlineSystem(settings, store)
        try:
            events = list(store.iter_events())
            with service.assistant() as assistant:
                chosen = scripts(events, assistant.catalog, lambda user: True, 3)
                assert len(chosen) == 3 and len({s.user_id for s in chosen}) == 3
                report = evaluate_conversations(assistant, chosen, 2, show_progress=False)
        finally:
            service.close()
    assert report.turns == 3 * len(INTENTS) and report.cards > 0
    assert report.violations == 0
    assert report.replies == 2 and report.degenerate_replies == 0
    assert report.claims > 0 and report.true_claims.mean == 1.0
    assert set(report.by_intent) == set(INTENTS)
    assert [t["shopper"] for t in report.transcript][:2] == chosen[0].messages()[:2]
