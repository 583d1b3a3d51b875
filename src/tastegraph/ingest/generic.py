"""Ingest any catalog or event log from CSV, JSONL or Parquet (columns in the README)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from tastegraph.config import Settings
from tastegraph.ingest.media import check_photos
from tastegraph.ingest.quarantine import Problem, Quarantine, RowError, shorten
from tastegraph.ingest.readers import Row, read_table
from tastegraph.ingest.report import IngestReport, in_batches
from tastegraph.ingest.validate import EventIdDeriver, parse_event, parse_item
from tastegraph.store import Event, Item, Media, Store


def row_problem(path: Path, row: Row, error: RowError) -> Problem:
    return Problem(str(path), row.number, error.field, error.reason, shorten(row.values))


def ingest_items(
    store: Store, path: Path, settings: Settings, *, replace: bool = False
) -> IngestReport:
    """Validate item rows, check their photos, store the good ones, quarantine the rest."""
    report = IngestReport("items", str(path))
    quarantine = Quarantine(settings.quarantine_dir, f"items-{path.name}", source=path)
    parsed: dict[str, tuple[int, Item, Path | None]] = {}
    repeats: dict[str, list[int]] = defaultdict(list)  # rows repeating an earlier row exactly
    for entry in tqdm(read_table(path), desc="reading items", unit="row", disable=None):
        report.read += 1
        if isinstance(entry, Problem):
            quarantine.add(entry)
            continue
        try:
            item, image = parse_item(entry.values, path.parent)
        except RowError as error:
            quarantine.add(row_problem(path, entry, error))
            continue
        first = parsed.get(item.id)
        if first is None:
            parsed[item.id] = (entry.number, item, image)
        elif first[1:] == (item, image):
            repeats[item.id].append(entry.number)
        else:
            reason = f"duplicate id {item.id!r} with different content (first at row {first[0]})"
            quarantine.add(Problem(str(path), entry.number, "id", reason, shorten(entry.values)))

    first_rows = {item_id: number for item_id, (number, _, _) in parsed.items()}
    media = _check_item_photos(path, parsed, quarantine, settings)
    for batch in in_batches(list(parsed.values()), settings.ingest_batch_size, "storing items"):
        result = store.add_items([item for _, item, _ in batch], replace=replace)
        report.add(result)
        for number, item, _ in batch:
            if item.id in result.conflicts:
                reason = "already stored with different content; pass --replace to update it"
                quarantine.add(Problem(str(path), number, "id", reason, item.id))
                del parsed[item.id]
        # The file is the truth for its items: a new photo replaces the old, none removes it.
        accepted = [item.id for _, item, _ in batch if item.id in parsed]
        store.set_media(accepted, [media[i] for i in accepted if i in media])
    for item_id, numbers in repeats.items():
        if item_id in parsed:
            report.duplicates += len(numbers)
            continue
        reason = f"repeats row {first_rows[item_id]}, which was quarantined"
        for number in numbers:
            quarantine.add(Problem(str(path), number, "id", reason, item_id))
    report.finish(quarantine)
    return report


def _check_item_photos(
    path: Path,
    parsed: dict[str, tuple[int, Item, Path | None]],
    quarantine: Quarantine,
    settings: Settings,
) -> dict[str, Media]:
    """Check every named photo; an item whose photo is bad is quarantined, not stored."""
    with_image = [(n, item, image) for n, item, image in parsed.values() if image is not None]
    checks = check_photos(
        [str(image) for _, _, image in with_image],
        settings.max_image_pixels,
        settings.ingest_workers,
    )
    media = {}
    for (number, item, image), check in zip(with_image, checks, strict=True):
        if check.error is not None:
            quarantine.add(Problem(str(path), number, "image", f"{check.error}: {image}"))
            del parsed[item.id]
        else:
            uri = str(image.resolve())
            media[item.id] = Media(item.id, uri, check.content_hash, check.width, check.height)
    return media


def ingest_events(
    store: Store, path: Path, settings: Settings, *, rating_max: float = 5.0
) -> IngestReport:
    """Validate event rows and append them in durable batches; re-running adds nothing."""
    report = IngestReport("events", str(path))
    quarantine = Quarantine(settings.quarantine_dir, f"events-{path.name}", source=path)
    derive_id = EventIdDeriver("row-")
    batch: list[tuple[int, Event]] = []
    for entry in tqdm(read_table(path), desc="ingesting events", unit="row", disable=None):
        report.read += 1
        if isinstance(entry, Problem):
            quarantine.add(entry)
            continue
        try:
            event = parse_event(entry.values, derive_id, settings.action_weights, rating_max)
        except RowError as error:
            quarantine.add(row_problem(path, entry, error))
            continue
        batch.append((entry.number, event))
        if len(batch) >= settings.ingest_batch_size:
            _append_known(store, path, batch, report, quarantine)
            batch = []
    _append_known(store, path, batch, report, quarantine)
    report.finish(quarantine)
    return report


def _append_known(
    store: Store,
    path: Path,
    batch: list[tuple[int, Event]],
    report: IngestReport,
    quarantine: Quarantine,
) -> None:
    """Append the events whose item is in the catalog; quarantine the others."""
    known = store.known_item_ids(event.item_id for _, event in batch)
    for number, event in batch:
        if event.item_id not in known:
            reason = f"item {event.item_id!r} is not in the catalog; ingest items first"
            quarantine.add(Problem(str(path), number, "item", reason, event.item_id))
    events = [event for _, event in batch if event.item_id in known]
    if events:
        report.add(store.append_events(events))
