"""Ask the built system: `similar`, `describe`, `recommend`, `related`, `search`, `chat`."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from tqdm import tqdm

from tastegraph.cli.apps import app
from tastegraph.cli.common import ExploreOption, fail, open_store_of, settings_of
from tastegraph.config import Settings
from tastegraph.recommend.items import Filters
from tastegraph.store import Store

if TYPE_CHECKING:
    from tastegraph.recommend.items import Recommendation
    from tastegraph.recommend.recommender import Recommender


@app.command()
def similar(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="The item to find neighbours of.")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many neighbours.")] = 10,
) -> None:
    """Print the items nearest to one item in the embedding space, to eyeball the space."""
    from tastegraph.embeddings.store import EmbeddingStore

    settings = settings_of(ctx)
    try:
        embeddings = EmbeddingStore.open(settings.workdir)
        neighbours = embeddings.similar(item_id, k)
    except (FileNotFoundError, KeyError) as exc:
        raise fail(str(exc).strip("\"'")) from None
    with open_store_of(settings) as store:
        for neighbour, score in [(item_id, 1.0), *neighbours]:
            item = store.get_item(neighbour)
            title = (item.title if item else None) or "(photo only)"
            kind = (item.attributes.get("product_type", "") if item else "") or ""
            typer.echo(f"{score:6.3f}  {neighbour:14}  {title}  {kind}")


@app.command("describe")
def describe_command(
    ctx: typer.Context,
    item_ids: Annotated[list[str], typer.Argument(help="The items to describe.")],
) -> None:
    """Print what each item is, read from its embedding and its photo's colour signature:
    the look ("Light Pink Dress") stage 1 of `tastegraph train assistant` fitted a look
    head to read, or, for a projector trained before the head existed, the LM's answer to
    "Describe this item" through the stage-1 projector (about 2 s per item on 2 CPU
    cores). This is how photo-only items get words; items with text show their real words
    beside the guess, to judge it. Example: tastegraph describe 0108775015 0110065001"""
    from tastegraph.assistant.describe import look_phrase, open_describer, projector_embeddings
    from tastegraph.assistant.train import look_keys
    from tastegraph.encoders import item_text

    settings = settings_of(ctx)
    try:
        embeddings = projector_embeddings(settings.workdir)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    with open_store_of(settings) as store:
        items = {item_id: store.get_item(item_id) for item_id in item_ids}
        keys = look_keys(settings)
        looks = {look_phrase(*(i.attributes.get(k) for k in keys)) for i in store.iter_items()}
    for item_id, item in items.items():
        if item is None and item_id not in embeddings:
            raise fail(f"unknown item {item_id!r}: the store has no item with that id")
        if item_id not in embeddings:
            raise fail(
                f"item {item_id!r} has no embedding in version {embeddings.version}; run "
                "`tastegraph embed` (and `tastegraph train assistant`) first"
            )
    try:
        describer = open_describer(settings.workdir, looks)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    for item_id, item in items.items():
        text = item_text(item) if item else ""
        title = (item.title if item else None) or ("(photo only)" if not text else "")
        typer.echo(f"{item_id}  {title}")
        typer.echo(f"  generated from the item's embedding and photo colours: {describer(item_id)}")
        if item is not None and text:
            real = [
                f"{key}: {item.attributes[key]}"
                for key in (settings.colour_attribute, settings.kind_attribute)
                if item.attributes.get(key)
            ]
            shown = text if len(text) <= 200 else text[:199] + "…"
            typer.echo(f"  real attributes: {'; '.join(real) or '(none)'}")
            typer.echo(f"  real text: {shown}")


def _print_recommendations(recommendations: list[Any]) -> None:
    for rec in recommendations:
        typer.echo(
            f"{rec.score:8.3f}  {rec.item_id:14}  {rec.source:8}  {rec.interest:28}  {rec.reason}"
        )


def _recommender(settings: Settings, store: Store) -> Recommender:
    from tastegraph.recommend.assemble import open_recommender

    try:
        return open_recommender(settings.workdir, store, settings)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(f"{exc} (run `tastegraph index`, `graph` and `profiles`)") from None


FORMATS = ("text", "csv", "jsonl")
CSV_COLUMNS = ["user", "item", "rank", "score", "reason"]


@app.command()
def recommend(
    ctx: typer.Context,
    user_id: Annotated[
        str | None, typer.Argument(help="The user to build a home feed for.", show_default=False)
    ] = None,
    users: Annotated[
        Path | None,
        typer.Option(
            help="A file of user ids, one a line: a feed for each (instead of USER_ID).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=500, help="How many items.")] = 12,
    explore: ExploreOption = None,
    exclude_engaged: Annotated[
        bool, typer.Option(help="Leave out items each user already engaged with.")
    ] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="text (aligned, for reading), csv (user,item,rank,score,reason with a header) "
            "or jsonl (one object a line, same fields).",
        ),
    ] = "text",
) -> None:
    """Print a user's home feed with the reason for every item, or, with --users, every
    listed user's feed in a machine-readable format to score elsewhere. An unknown user gets
    the feed of a new user (popular items).

    Example: tastegraph recommend --users users.txt --exclude-engaged --format csv > feeds.csv
    """
    if output_format not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}")
    if users is not None and user_id is None:
        user_ids = _read_user_ids(users)
    elif user_id is not None and users is None:
        user_ids = [user_id]
    else:
        raise typer.BadParameter("give one USER_ID or --users FILE")
    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        recommender = _recommender(settings, store)
    filters = Filters(exclude_engaged=exclude_engaged)
    if output_format == "csv":
        typer.echo(",".join(CSV_COLUMNS))
    for user in tqdm(user_ids, desc="feeds", unit="user", disable=None if users else True):
        feed = recommender.feed(user, n, explore=explore, filters=filters)
        if output_format == "text":
            if users is not None:
                typer.echo(f"# {user}")
            _print_recommendations(feed)
        else:
            _write_rows(user, feed, output_format)


def _read_user_ids(path: Path) -> list[str]:
    user_ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not user_ids:
        raise fail(f"{path} lists no user ids")
    return list(dict.fromkeys(user_ids))


def _write_rows(user: str, feed: list[Recommendation], output_format: str) -> None:
    rows = [
        {
            "user": user,
            "item": r.item_id,
            "rank": rank,
            "score": round(r.score, 6),
            "reason": r.reason,
        }
        for rank, r in enumerate(feed, 1)
    ]
    if output_format == "jsonl":
        for row in rows:
            typer.echo(json.dumps(row))
        return
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n").writerows(rows)
    typer.echo(buffer.getvalue(), nl=False)


@app.command()
def related(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(help="The item to find more like.")],
    n: Annotated[int, typer.Option("-n", min=1, max=500, help="How many items.")] = 12,
) -> None:
    """More like this: items near the given one in taste and look, with reasons."""
    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        recommender = _recommender(settings, store)
    if item_id not in recommender.index:
        raise fail(f"item {item_id!r} is not in the index")
    _print_recommendations(recommender.related(item_id, n))


@app.command()
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help='What to look for, e.g. "black summer dress".')],
    n: Annotated[int, typer.Option("-n", min=1, max=500, help="How many items.")] = 12,
) -> None:
    """Text search: the query is embedded by the text tower and the fusion model, then
    matched against item embeddings."""
    from tastegraph.recommend.search import QueryEncoder

    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        recommender = _recommender(settings, store)
    try:
        vector = QueryEncoder(settings.workdir, settings).encode(query)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    _print_recommendations(recommender.search(vector, n, query=query))


@app.command()
def chat(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="Whose feed and profile the assistant uses.")],
    candidates: Annotated[
        int, typer.Option(min=1, max=9, help="Items shown to the LM per turn.")
    ] = 8,
) -> None:
    """Chat with the shopping assistant in the terminal (an empty line or Ctrl-D ends it).
    It follows the conversation: "under 30", "in blue", "cheaper", "more like [2]", "not
    that one", "show me more". The LM reads the candidates as item tokens and picks [1]."""
    from tastegraph.assistant.chat import Assistant
    from tastegraph.assistant.facts import Catalog
    from tastegraph.assistant.lm import load_item_lm
    from tastegraph.recommend.search import QueryEncoder

    settings = settings_of(ctx)
    with open_store_of(settings) as store:
        recommender = _recommender(settings, store)
        catalog = Catalog.open(store, settings)
    try:
        lm = load_item_lm(settings.workdir)
        encoder = QueryEncoder(settings.workdir, settings)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    assistant = Assistant(lm, recommender, catalog, encoder, candidates)
    state = None
    typer.echo(f"chatting as {user}; an empty line ends the chat")
    while True:
        try:
            message = input("you> ").strip()
        except EOFError:
            break
        if not message:
            break
        reply = assistant.reply(user, message, state)
        state = reply.state
        typer.echo(f"assistant> {reply.text}\n  items: {', '.join(reply.items)}")
