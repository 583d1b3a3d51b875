"""The H&M Personalized Fashion Recommendations data (Kaggle) as catalog, users and events.

transactions.csv → purchase events; each (customer, day) → a basket collection;
articles.csv → items with text and attributes; images/NNN/ARTICLE_ID.jpg → media.
Articles bought but missing from articles.csv are still items, with a photo and no text.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tastegraph.config import Settings
from tastegraph.display import PriceDisplay, write_catalog_display
from tastegraph.ingest.generic import row_problem
from tastegraph.ingest.media import check_photos
from tastegraph.ingest.quarantine import InputError, Problem, Quarantine, RowError
from tastegraph.ingest.readers import Row, read_table
from tastegraph.ingest.report import IngestReport, in_batches
from tastegraph.ingest.validate import (
    EventIdDeriver,
    parse_id,
    parse_number,
    parse_text,
    parse_timestamp,
)
from tastegraph.store import Collection, Event, Item, Media, Store, User

FILES = ("transactions.csv", "articles.csv", "customers.csv")
# The competition's prices are divided by an undisclosed constant (median 0.025); shown
# times 1,000 in euros they read like H&M's shelf prices (median €25). A display choice only.
HM_PRICES = PriceDisplay("€", 1000.0)
_ARTICLE_ID = re.compile(r"\d{10}")
# articles.csv column → item attribute; the *_no and *_code columns repeat these as numbers.
ARTICLE_ATTRIBUTES = {
    "product_type_name": "product_type",
    "product_group_name": "product_group",
    "graphical_appearance_name": "graphical_appearance",
    "colour_group_name": "colour_group",
    "perceived_colour_value_name": "perceived_colour_value",
    "perceived_colour_master_name": "perceived_colour_master",
    "department_name": "department",
    "index_name": "index",
    "index_group_name": "index_group",
    "section_name": "section",
    "garment_group_name": "garment_group",
}
CUSTOMER_ATTRIBUTES = (
    "FN",
    "Active",
    "club_member_status",
    "fashion_news_frequency",
    "postal_code",
)


@dataclass(frozen=True)
class Purchase:
    row: int
    customer: str
    article: str
    day: str
    ts: float
    price: float
    channel: str | None

    @property
    def basket_id(self) -> str:
        return f"basket:{self.customer}:{self.day}"


def ingest_hm(store: Store, data_dir: Path, settings: Settings) -> list[IngestReport]:
    """Ingest the H&M folder; safe to re-run and to kill: every step is idempotent."""
    missing = [name for name in FILES if not (data_dir / name).is_file()]
    if missing:
        raise InputError(
            f"{data_dir} is not an H&M dataset folder: missing {', '.join(missing)} "
            f"(expected {', '.join(FILES)} and images/; set --data or TASTEGRAPH_DATA)"
        )
    tx_quarantine = Quarantine(settings.quarantine_dir, "hm-transactions.csv")
    purchases = _read_purchases(data_dir / "transactions.csv", tx_quarantine)
    items_report, items = _ingest_items(store, data_dir, purchases, settings)
    reports = [
        _ingest_customers(store, data_dir, settings),
        items_report,
        _ingest_photos(store, data_dir, items, settings),
        _ingest_baskets(store, data_dir, purchases, settings),
        _ingest_purchases(store, data_dir, purchases, tx_quarantine, settings),
    ]
    write_catalog_display(settings.workdir, HM_PRICES)
    return reports


def _rows(path: Path, quarantine: Quarantine, report: IngestReport) -> Iterator[Row]:
    """The good rows of a file; bad ones go to quarantine."""
    for entry in read_table(path):
        report.read += 1
        if isinstance(entry, Problem):
            quarantine.add(entry)
        else:
            yield entry


def _article_id(values: dict[str, object]) -> str:
    article = parse_id(values, "article_id")
    if article is None or not _ARTICLE_ID.fullmatch(article):
        raise RowError("article_id", f"article_id {article!r} is not 10 digits")
    return article


def _read_purchases(path: Path, quarantine: Quarantine) -> list[Purchase]:
    purchases = []
    counter = IngestReport("transactions", str(path))
    for row in _rows(path, quarantine, counter):
        try:
            customer = parse_id(row.values, "customer_id")
            assert customer is not None
            day = parse_text(row.values, "t_dat") or ""
            ts = parse_timestamp(row.values, "t_dat")
            price = parse_number(row.values, "price", minimum=0.0)
            if price is None:
                raise RowError("price", "missing price")
            channel = parse_text(row.values, "sales_channel_id")
            purchase = Purchase(
                row.number, customer, _article_id(row.values), day, ts, price, channel
            )
        except RowError as error:
            quarantine.add(row_problem(path, row, error))
            continue
        purchases.append(purchase)
    return purchases


def _ingest_customers(store: Store, data_dir: Path, settings: Settings) -> IngestReport:
    path = data_dir / "customers.csv"
    report = IngestReport("users", str(path))
    quarantine = Quarantine(settings.quarantine_dir, "hm-customers.csv")
    users = []
    for row in _rows(path, quarantine, report):
        try:
            customer = parse_id(row.values, "customer_id")
            assert customer is not None
            attributes: dict[str, object] = {
                name: row.values[name] for name in CUSTOMER_ATTRIBUTES if row.values.get(name)
            }
            age = parse_number(row.values, "age", minimum=0.0)
            if age is not None:
                attributes["age"] = int(age)
        except RowError as error:
            quarantine.add(row_problem(path, row, error))
            continue
        users.append(User(customer, attributes))
    for batch in in_batches(users, settings.ingest_batch_size, "storing users"):
        report.add(store.add_users(batch))
    report.finish(quarantine)
    return report


def _ingest_items(
    store: Store, data_dir: Path, purchases: list[Purchase], settings: Settings
) -> tuple[IngestReport, list[str]]:
    """Items from articles.csv, plus photo-only items for articles bought but not described."""
    path = data_dir / "articles.csv"
    report = IngestReport("items", f"{path} + transactions.csv")
    quarantine = Quarantine(settings.quarantine_dir, "hm-articles.csv")
    prices: dict[str, list[float]] = defaultdict(list)
    for purchase in purchases:
        prices[purchase.article].append(purchase.price)

    def price_of(article: str) -> float | None:
        return statistics.median(prices[article]) if article in prices else None

    items: dict[str, Item] = {}
    rows_of: dict[str, int] = {}  # article -> its row in articles.csv
    for row in _rows(path, quarantine, report):
        try:
            article = _article_id(row.values)
        except RowError as error:
            quarantine.add(row_problem(path, row, error))
            continue
        attributes = {"product_code": article[:7]}
        attributes |= {
            name: row.values[column]
            for column, name in ARTICLE_ATTRIBUTES.items()
            if row.values.get(column)
        }
        title, description = row.values.get("prod_name"), row.values.get("detail_desc")
        items[article] = Item(article, title, description, attributes, price_of(article))
        rows_of[article] = row.number
    photo_only = sorted(set(prices) - set(items))
    for article in photo_only:
        items[article] = Item(
            article, attributes={"product_code": article[:7]}, price=price_of(article)
        )
    report.read += len(photo_only)
    report.notes.append(f"{len(photo_only)} bought articles have no text row: stored photo-only")

    for batch in in_batches(list(items.values()), settings.ingest_batch_size, "storing items"):
        result = store.add_items(batch)
        report.add(result)
        for item_id in result.conflicts:
            reason = "already stored with different content; re-ingest into a new workdir"
            quarantine.add(
                Problem(str(path), rows_of.get(item_id, 0), "article_id", reason, item_id)
            )
    report.finish(quarantine)
    return report, sorted(items)


def _ingest_photos(
    store: Store, data_dir: Path, item_ids: list[str], settings: Settings
) -> IngestReport:
    folder = data_dir / "images"
    report = IngestReport("photos", str(folder))
    quarantine = Quarantine(settings.quarantine_dir, "hm-images")
    paths = {item: folder / item[:3] / f"{item}.jpg" for item in item_ids}
    present = [item for item, path in paths.items() if path.is_file()]
    if len(present) < len(item_ids):
        report.notes.append(f"{len(item_ids) - len(present)} items have no photo file")
    report.read = len(present)
    checks = check_photos(
        [str(paths[item]) for item in present], settings.max_image_pixels, settings.ingest_workers
    )
    media = []
    for row, (item, check) in enumerate(zip(present, checks, strict=True), start=1):
        if check.error is not None:
            quarantine.add(Problem(str(paths[item]), row, "image", check.error, item))
        else:
            uri = str(paths[item].resolve())
            media.append(Media(item, uri, check.content_hash, check.width, check.height))
    for batch in in_batches(media, settings.ingest_batch_size, "storing photos"):
        report.add(store.add_media(batch))
    report.finish(quarantine)
    return report


def _ingest_baskets(
    store: Store, data_dir: Path, purchases: list[Purchase], settings: Settings
) -> IngestReport:
    report = IngestReport("baskets", str(data_dir / "transactions.csv"))
    baskets = {
        p.basket_id: Collection(p.basket_id, p.customer, f"Basket of {p.day}", "basket")
        for p in purchases
    }
    report.read = len(baskets)
    for batch in in_batches(list(baskets.values()), settings.ingest_batch_size, "storing baskets"):
        report.add(store.add_collections(batch))
    return report


def _ingest_purchases(
    store: Store,
    data_dir: Path,
    purchases: list[Purchase],
    quarantine: Quarantine,
    settings: Settings,
) -> IngestReport:
    report = IngestReport("events", str(data_dir / "transactions.csv"))
    report.read = len(purchases) + len(quarantine)
    derive_id = EventIdDeriver("hm-")
    weight = settings.action_weights["purchase"]
    events = [
        Event(
            event_id=derive_id(p.customer, p.article, p.day, p.price, p.channel),
            user_id=p.customer,
            item_id=p.article,
            action="purchase",
            weight=weight,
            ts=p.ts,
            collection_id=p.basket_id,
            context={"price": p.price, "sales_channel": p.channel},
        )
        for p in purchases
    ]
    for batch in in_batches(events, settings.ingest_batch_size, "storing events"):
        report.add(store.append_events(batch))
    report.finish(quarantine)
    return report
