"""The recommendation commands end to end through the CLI, on the small real catalog."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from tastegraph import registry
from tastegraph.cli import app
from tastegraph.config import Settings
from tastegraph.store import SQLiteStore

runner = CliRunner()


def test_graph_profiles_recommend_related_search(small_catalog: Settings, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(small_catalog.workdir, workdir)
    env = {"TASTEGRAPH_WORKDIR": str(workdir), "HF_HUB_OFFLINE": "1"}

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    assert "tastegraph index" in invoke("recommend", "anyone", code=2)
    invoke("train", "embeddings", "--content-epochs", "2", "--taste-epochs", "1")
    invoke("embed")
    invoke("index")
    graphed = invoke("graph")
    assert "run `tastegraph embed`" not in graphed and "engagements that repeat an item" in graphed
    assert "published" in invoke("profiles")
    trained = invoke("train", "reranker", "--content-epochs", "2", "--taste-epochs", "1")
    assert "published the related-items re-ranker" in trained  # `related` below uses it

    with SQLiteStore(workdir / "store.db") as store:
        events = list(store.iter_events())
    # The lightest shopper: the heaviest one here has engaged with nearly every interest of
    # this small catalog, so no adjacent interest is left to explore.
    events_of = Counter(e.user_id for e in events)
    user = min(events_of, key=lambda u: events_of[u])
    bought = next(e.item_id for e in events if e.user_id == user)
    feed = invoke("recommend", user, "-n", "5", "--explore", "0.4").strip().splitlines()
    assert len(feed) == 5
    assert sum(" explore " in line for line in feed) == 2
    assert all(
        "Because" in line or "Something new" in line or "Popular" in line or "before" in line
        for line in feed
    )
    newcomer = invoke("recommend", "someone-new", "-n", "3", "--explore", "0")
    assert newcomer.count("Popular right now") == 3

    # Many users' feeds, machine-readable, without what each already engaged with.
    listed = tmp_path / "users.txt"
    listed.write_text(f"{user}\nsomeone-new\n\n{user}\n")  # blank lines and repeats go
    exported = invoke(
        "recommend", "--users", str(listed), "-n", "4", "--exclude-engaged", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["user"], r["rank"]) for r in rows] == [
        (u, str(rank)) for u in (user, "someone-new") for rank in range(1, 5)
    ]
    engaged = {e.item_id for e in events if e.user_id == user}
    assert not {r["item"] for r in rows if r["user"] == user} & engaged
    assert all(r["reason"] and float(r["score"]) >= 0 for r in rows)
    as_json = invoke("recommend", "--users", str(listed), "-n", "2", "--format", "jsonl")
    assert [json.loads(line)["rank"] for line in as_json.splitlines()] == [1, 2, 1, 2]
    assert "one USER_ID or --users" in invoke("recommend", user, "--users", str(listed), code=2)
    assert "--format must be one of" in invoke("recommend", user, "--format", "xml", code=2)

    computed = invoke("related", bought, "-n", "4")
    related = computed.strip().splitlines()
    assert len(related) == 4 and all(bought not in line.split()[1] for line in related)
    assert "not in the index" in invoke("related", "nope", code=2)
    timed = invoke("bench", "recommend", "--synthetic-items", "0", "--requests", "10")
    assert "related items (re-ranked) vs related score" in timed and "p99" in timed
    assert "no related-items table is served" in timed

    # Related items computed ahead of requests: the same answers, looked up.
    assert "--width" in invoke("related-table", "--width", "0", code=2)
    assert "--width" in invoke("related-table", "--width", "101", code=2)
    tabled = invoke("related-table", "--width", "6")
    index_folder = registry.current(workdir, "index")
    assert index_folder is not None
    items = len(json.loads((index_folder / "ids.json").read_text()))
    assert f"published the related items of {items:,} of {items:,} items, 6 each" in tabled
    assert invoke("related", bought, "-n", "4") == computed
    timed = invoke("bench", "recommend", "--synthetic-items", "0", "--requests", "10")
    assert f"related items looked up ({items:,} items in the table, n=6) vs computed" in timed
    assert "exact, as served" in timed and "exact, nothing kept" in timed
    assert "exact, right after a save" in timed

    found = invoke("search", "black dress", "-n", "3").strip().splitlines()
    assert len(found) == 3 and all("Matches “black dress”" in line for line in found)
    assert "empty" in invoke("search", "   ", code=2)
    assert "--validation" in invoke("eval", "--help")
    evaluated = invoke("eval", "--test-fraction", "0.3", "--k", "5", "--resamples", "100")
    assert "NDCG@5" in evaluated and "item-kNN (cosine)" in evaluated
    assert "Baselines tuned on the tuning split" in evaluated
    assert "positive weight at least 0.7" in evaluated
    assert "--test-fraction" in invoke("eval", "--test-fraction", "0.9", code=2)

    # The assistant: align a projector on the catalog, then one chat turn with the real LM.
    assert "train assistant" in invoke("chat", "--user", user, code=2)
    aligned = invoke(
        "train", "assistant", "--stage", "alignment", "--batch-size", "8", "--lm-items", "20"
    )
    assert "stage 1: warm start on" in aligned and "error" in aligned
    assert "the LM in the loop: 20 examples" in aligned and "held-out loss" in aligned
    # 30 examples leave none to train on beside the 50 held out: a clear error, no stage 2
    shopping = invoke("train", "assistant", "--stage", "shopping", "--examples", "30", code=2)
    assert "make shopping examples" in shopping
    result = runner.invoke(app, ["chat", "--user", user], env=env, input="a black top\n\n")
    assert result.exit_code == 0, result.output
    assert "assistant> Here" in result.output
    answer = next(line for line in result.output.splitlines() if line.startswith("[1] "))
    assert answer  # no stage 2, no trained choice head: search's order
    named = next(line for line in result.output.splitlines() if "items:" in line)
    with SQLiteStore(workdir / "store.db") as store:
        catalog = {item.id for item in store.iter_items()}
    assert answer and set(named.split("items:")[1].replace(",", " ").split()) <= catalog
