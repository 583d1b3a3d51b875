"""The scripted-conversation evaluation, played through the served assistant of the small
real catalog."""

from __future__ import annotations

import shutil
from pathlib import Path

from tastegraph.assistant.facts import words
from tastegraph.config import Settings
from tastegraph.evaluate.conversations import (
    INTENTS,
    Said,
    evaluate_conversations,
    intent_holds,
    scripts,
)
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


def test_more_like_is_checked_against_related_items_that_meet_what_was_said(
    built_workdir: Path, tmp_path: Path
) -> None:
    """The checker asks for related items with the stated filter, as the assistant does, so
    a re-ranker's order of an allowed pool counts as applied; a swapped card does not."""
    workdir = tmp_path / "work"
    shutil.copytree(built_workdir, workdir)
    with SQLiteStore(workdir / "store.db") as store:
        service = OnlineSystem(Settings(workdir=workdir), store)
        try:
            events = list(store.iter_events())
            with service.assistant() as assistant:
                script = scripts(events, assistant.catalog, lambda user: True, 1)[0]
                first = assistant.answer(script.user_id, script.messages()[0])
                said = Said(
                    {v for v, ws in assistant.catalog.kinds.items() if ws == words(script.kind)}
                )
                liked = assistant.answer(script.user_id, "more like the second one", first.state)
                cards = liked.items
                holds = intent_holds("more like", assistant, said, first.items, set(), cards)
                spare = next(
                    i for i in assistant.recommender.index.ids if i not in cards + first.items
                )
                swapped = intent_holds(
                    "more like", assistant, said, first.items, set(), [*cards[:-1], spare]
                )
        finally:
            service.close()
    assert len(first.items) >= 2 and cards
    assert holds and not swapped
