"""What the embedding job sees of each item: its photo, its text, and their cache keys."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from tastegraph.encoders.text import item_text
from tastegraph.store import Store


@dataclass(frozen=True)
class CatalogEntry:
    item_id: str
    image_path: str | None  # the item's first photo, or None
    image_key: str | None  # the photo's content hash: the image feature cache key
    text: str  # "" for a photo-only item
    text_key: str | None  # hash of the text: the text feature cache key; None without text
    variant_of: str | None = None  # the product this item is a variant of (colour, size), if known


def text_key(text: str) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def load_catalog(store: Store, variant_attribute: str | None = None) -> list[CatalogEntry]:
    """Every item with a photo or text, in id order; an item with neither cannot be embedded.

    `variant_attribute` names the item attribute shared by variants of one product (H&M's
    product_code); items without it are variants of nothing."""
    first_photo: dict[str, tuple[str, str]] = {}
    for media in store.iter_media():
        first_photo.setdefault(media.item_id, (media.uri, media.content_hash))
    entries = []
    for item in store.iter_items():
        path, image_key = first_photo.get(item.id, (None, None))
        text = item_text(item)
        variant_of = item.attributes.get(variant_attribute) if variant_attribute else None
        if path is not None or text:
            entries.append(
                CatalogEntry(
                    item.id,
                    path,
                    image_key,
                    text,
                    text_key(text),
                    None if variant_of is None else str(variant_of),
                )
            )
    return entries


def photos_by_key(entries: Sequence[CatalogEntry]) -> dict[str, str]:
    """Photo path by content hash: each distinct photo once."""
    return {e.image_key: e.image_path for e in entries if e.image_key and e.image_path}


def texts_by_key(entries: Sequence[CatalogEntry]) -> dict[str, str]:
    """Item text by its hash: each distinct text once."""
    return {e.text_key: e.text for e in entries if e.text_key}
