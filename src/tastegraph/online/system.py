"""The online system, what a server holds: the store, the current recommender, live
profiles, a worker that embeds new items, and the assistant's turns.

The offline jobs publish new versions of the embeddings, index, graph, profiles and models;
`refresh` notices and swaps a new recommender in while requests keep using the old one.
Events go to the store first (durable on commit), then into the live profiles, so the next
feed request sees them. Profiles published by the batch job remember the event log
position they include; the server replays the events stored after it.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tastegraph import registry
from tastegraph.artifacts import atomic_path
from tastegraph.assistant.facts import Catalog
from tastegraph.config import Settings
from tastegraph.display import price_display
from tastegraph.graph.taste import ItemDetails, TasteArtifacts, item_details
from tastegraph.index import ItemIndex, open_index
from tastegraph.ingest.media import check_photo
from tastegraph.online.assistant import LiveAssistant
from tastegraph.online.training import Training
from tastegraph.profiles import ProfileStore
from tastegraph.recommend.assemble import assemble, open_profiles, popular_weight
from tastegraph.recommend.config import RecommendConfig
from tastegraph.recommend.recommender import Recommender
from tastegraph.recommend.related_table import (
    INPUTS,
    RelatedTable,
    open_related_table,
    still_current,
)
from tastegraph.recommend.rerank import open_reranker
from tastegraph.store import Event, Item, Media, Store

if TYPE_CHECKING:  # the models' modules load on first use, not with the server
    from tastegraph.embeddings.online import ItemEmbedder
    from tastegraph.recommend.search import QueryEncoder

Model = TypeVar("Model")

log = logging.getLogger(__name__)

USER_LOCK_STRIPES = 64
HEARTBEAT_SECONDS = 30.0
# The longest a process waits for news of the event log before it looks anyway (PostgreSQL
# wakes it at once with a NOTIFY; SQLite is polled more often, see SQLiteStore).
FOLLOW_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class EventsResult:
    stored: int  # new events, now durable and in the users' live profiles
    duplicates: int  # event ids already stored: nothing changed
    log_position: int  # the event log position this process's live profiles now reflect


class OnlineSystem:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        config: RecommendConfig | None = None,
        assistant: bool = True,
    ) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.assistant_enabled = assistant
        self.workdir = settings.workdir
        self._write_lock = threading.Lock()  # store writes, in log order, with their replay
        self._state_lock = threading.RLock()  # the recommender and the live profiles
        self._models_lock = threading.RLock()  # lazily loaded models (one may load another)
        self._refresh_lock = threading.Lock()
        # A profile changes in place on each event: its user's lock keeps a feed from
        # reading it half-changed, while feeds of other users go on.
        self._user_locks = [threading.Lock() for _ in range(USER_LOCK_STRIPES)]
        self._models: dict[str, Any] = {}
        self.details: dict[str, ItemDetails] = item_details(store, settings.variant_attribute)
        self.catalog = Catalog.from_settings(self.details, settings, price_display(settings))
        self.photos: set[str] = {media.item_id for media in store.iter_media()}
        self.live_items: list[str] = []  # items embedded here, not yet in a published index
        self.failed_items: dict[str, str] = {}  # new items that could not be embedded, why
        self.training: dict[str, Training] = {}  # offline steps running beside the server
        self._pending: queue.Queue[str | None] = queue.Queue()
        self._embedding: set[str] = set()  # queued or being embedded here
        # Events on those items, from the log: applied once the item is indexed here.
        self._waiting: dict[str, list[Event]] = defaultdict(list)
        self.versions = registry.versions(self.workdir)
        index = open_index(self.workdir)
        with self._write_lock:
            profiles = open_profiles(self.workdir, store, settings, index)
        self.taste = TasteArtifacts.open(self.workdir)
        self.reranker = open_reranker(self.workdir)
        self.related_table = still_current(
            open_related_table(self.workdir, self.versions), self.workdir
        )
        self.served_popular_weight = popular_weight(self.workdir, settings)
        self.recommender = _warmed(self._assemble(index, self.taste, profiles))
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._embed_worker, name="embed-items", daemon=True),
            threading.Thread(target=self._watch, name="watch-artifacts", daemon=True),
            threading.Thread(target=self._follow, name="follow-events", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._stop.set()
        self._pending.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    # -- reads -----------------------------------------------------------------------------

    def current(self) -> Recommender:
        """The recommender to answer one request with (it is replaced, never changed)."""
        return self.recommender

    @property
    def log_position(self) -> int:
        """The event log position the live profiles reflect: every event stored up to it,
        by this process or another over the same store, is in them."""
        return self.recommender.profiles.events_through or 0

    def user_lock(self, user_id: str) -> threading.Lock:
        """Hold it while reading the user's live profile (a feed)."""
        return self._user_locks[hash(user_id) % USER_LOCK_STRIPES]

    def query_encoder(self) -> QueryEncoder:
        """Text search's encoder, loaded on first use and kept until its artifacts change."""
        from tastegraph.recommend.search import QueryEncoder

        return self._kept("query", lambda: QueryEncoder(self.workdir, self.settings))

    def item_embedder(self) -> ItemEmbedder:
        """What embeds new items, loaded on first use and kept until its artifacts change."""
        from tastegraph.embeddings.online import ItemEmbedder

        return self._kept("items", lambda: ItemEmbedder(self.workdir, self.settings))

    def assistant(self) -> LiveAssistant:
        """The shopping assistant over the current recommender, loaded on first use and kept
        until its artifacts change; FileNotFoundError while there is none."""
        if not self.assistant_enabled:
            raise FileNotFoundError("the assistant is switched off on this server")
        learning = self.training.get("train assistant")
        if learning is not None and learning.state in ("waiting", "training"):
            # Stage 1 publishes a projector before stage 2 trains its choice head.
            raise FileNotFoundError(
                "the assistant is still learning (it trains beside the server; "
                f"{learning.seconds():.0f} s so far); ask again in a few minutes"
            )
        return self._kept("assistant", self._load_assistant)

    def _load_assistant(self) -> LiveAssistant:
        from tastegraph.assistant.chat import Assistant
        from tastegraph.assistant.lm import load_item_lm

        lm = load_item_lm(self.workdir)
        assistant = Assistant(lm, self.recommender, self.catalog, self.query_encoder())
        return LiveAssistant(self, assistant)

    def _kept(self, name: str, load: Callable[[], Model]) -> Model:
        with self._models_lock:
            if name not in self._models:
                self._models[name] = load()
            model: Model = self._models[name]
            return model

    # -- writes ----------------------------------------------------------------------------

    def add_events(self, events: Sequence[Event]) -> EventsResult:
        """Store events (durable when this returns), then bring the live profiles up to the
        log's end: these events, and those other processes stored before them. Re-sent
        event ids change nothing."""
        with self._write_lock:
            result = self.store.append_events(events)
            self._apply_log()
        return EventsResult(result.stored, result.duplicates, self.log_position)

    def follow_log(self, wait: float | None = None) -> bool:
        """Apply the events stored after the live profiles' position, by any process; False
        when the log was busy (another thread writing or swapping) for over `wait` s."""
        if not self._write_lock.acquire(timeout=-1 if wait is None else wait):
            return False
        try:
            self._apply_log()
        finally:
            self._write_lock.release()
        return True

    def _apply_log(self) -> None:
        """Under the write lock: the log's new events into the live profiles, in log order
        (so each process applies each event once, whichever process stored it)."""
        profiles = self.recommender.profiles  # a swap replaces it only under the write lock
        start, end = profiles.events_through or 0, self.store.last_event_seq()
        if end <= start:
            return
        events = self.store.events_after(start, through=end)
        with self._state_lock:
            for event in events:
                if not self._record(event):
                    self._wait_for_item(event)
            profiles.events_through = end

    def _record(self, event: Event) -> bool:
        """One event into its user's live profile; False when its item is not indexed."""
        try:
            with self.user_lock(event.user_id):
                return self.recommender.record(event)
        except Exception:  # one bad event must not stop the log: it is left out, loudly
            log.exception("could not apply event %s", event.event_id)
            return True

    def _wait_for_item(self, event: Event) -> None:
        """Keep an event on an item this process is embedding (or, added through another
        process, starts to embed now) until the item is indexed here."""
        if event.item_id not in self.details and event.item_id not in self.failed_items:
            item = self.store.get_item(event.item_id)
            if item is not None:
                self._learn_item(item, has_photo=bool(self.store.media_for(item.id)))
        if event.item_id in self._embedding:
            self._waiting[event.item_id].append(event)

    def _follow(self) -> None:
        """Keep the live profiles up with events other processes store."""
        while not self._stop.is_set():
            notified = None
            try:
                notified = self.store.wait_for_events(FOLLOW_WAIT_SECONDS)
            except Exception:  # no news from the store: look at the log anyway, later
                log.exception("could not wait for news of the event log")
                self._stop.wait(FOLLOW_WAIT_SECONDS)
            if self._stop.is_set():
                return
            if notified is not None and notified <= self.log_position:
                continue  # this process's own write, applied when it was stored
            try:
                self.follow_log(wait=FOLLOW_WAIT_SECONDS)
            except Exception:  # the store is briefly unreachable: keep serving, try again
                log.exception("could not follow the event log")

    def new_event(
        self,
        event_id: str,
        user_id: str,
        item_id: str,
        action: str,
        *,
        ts: float | None = None,
        weight: float | None = None,
        collection_id: str | None = None,
    ) -> Event:
        """An event with the defaults filled in: the action's configured weight, and now."""
        weight = self.settings.action_weights[action] if weight is None else weight
        return Event(
            event_id,
            user_id,
            item_id,
            action,
            weight,
            time.time() if ts is None else ts,
            collection_id,
        )

    def add_item(self, item: Item, photo: bytes | None) -> bool:
        """Store a new item (and its photo, once checked) and queue it to be embedded and
        indexed; False when the id exists. ValueError for a photo that is not a usable
        image (nothing is stored then)."""
        if self.store.get_item(item.id) is not None:
            return False
        media = None if photo is None else self._save_photo(item.id, photo)
        with self._write_lock:
            result = self.store.add_items([item])
            if result.stored and media is not None:
                self.store.add_media([media])
                self.photos.add(item.id)
        if result.stored:
            self._learn_item(item, has_photo=media is not None)
        return bool(result.stored)

    def _learn_item(self, item: Item, *, has_photo: bool) -> None:
        """A new item in the details and the catalog, queued to be embedded and indexed."""
        details = ItemDetails(
            item.title or None, None, item.attributes, item.price, item.description or None
        )
        self.details[item.id] = details
        self.catalog.add(item.id, details)
        if has_photo:
            self.photos.add(item.id)
        self._embedding.add(item.id)
        self._pending.put(item.id)

    def _save_photo(self, item_id: str, data: bytes) -> Media:
        """Keep an uploaded photo in the media folder under its content hash, once checked."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.workdir / "media" / f"{digest}.img"
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
            check = check_photo(str(tmp), self.settings.max_image_pixels)
            if check.error:
                raise ValueError(f"photo: {check.error}")
        return Media(item_id, str(target), digest, check.width, check.height)

    def generated_description(self, item_id: str) -> str | None:
        """What an item without text is, read from its embedding and its photo's colour
        signature (`assistant/describe.py`: the look head's look, kept per item); None for
        an item with text or attributes, or while no assistant is ready."""
        facts = self.catalog.get(item_id)
        if facts is None or facts.title or facts.label or item_id not in self.current().index:
            return None
        try:
            live = self.assistant()
        except FileNotFoundError:
            return None
        with live:
            try:
                return str(live.describer(item_id))
            except KeyError:  # not in the projector's embeddings
                return None
            except ValueError as exc:  # no stage 1; a look head for other embeddings
                log.warning("no description for %s: %s", item_id, exc)
                return None

    def knows_user(self, user_id: str) -> bool:
        return user_id in self.recommender.profiles or bool(self.store.known_user_ids([user_id]))

    def wait_for_items(self) -> None:
        """Block until every queued item is embedded (or failed)."""
        self._pending.join()

    # -- new items -------------------------------------------------------------------------

    def _embed_worker(self) -> None:
        while (item_id := self._pending.get()) is not None:
            try:
                self._embed_and_index(item_id)
            except Exception as exc:
                log.exception("could not embed new item %s", item_id)
                self.failed_items[item_id] = f"{type(exc).__name__}: {exc}"
            finally:
                self._apply_waiting(item_id)
                self._pending.task_done()
        self._pending.task_done()

    def _apply_waiting(self, item_id: str) -> None:
        """The events that waited for the item, now that it is indexed (or failed)."""
        with self._write_lock, self._state_lock:
            self._embedding.discard(item_id)
            for event in self._waiting.pop(item_id, []):
                self._record(event)

    def _embed_and_index(self, item_id: str) -> None:
        item = self.store.get_item(item_id)
        if item is None or item_id in self.recommender.index:
            return
        photos = self.store.media_for(item_id)
        photo = Path(photos[0].uri).read_bytes() if photos else None
        vector = self.item_embedder().embed(item, photo)
        category = item.attributes.get(self.settings.index_category_key)
        while True:
            before = self.recommender
            index = before.index.copy()
            index.add(
                [item_id], vector[None], [None if category is None else str(category)], [item.price]
            )
            updated = self._assemble(index, self.taste, before.profiles)
            updated.take_over_caches(before, nearest=False)  # the same graph, a new index
            with self._state_lock:
                if self.recommender is before:  # else a refresh swapped meanwhile: redo
                    self.recommender = updated
                    self.live_items.append(item_id)
                    break
        log.info("new item %s is recommendable", item_id)

    # -- offline steps beside the server --------------------------------------------------

    def train_beside(self, steps: Sequence[str], run_step: Callable[[str], str]) -> None:
        """Run offline steps one after another in a background thread while serving; the
        watcher swaps in what each publishes within serve_watch_seconds. `run_step(name)`
        runs one step and says what it did; `training` shows where each one is."""
        self.training = {name: Training() for name in steps}

        def work() -> None:
            for name in steps:
                progress = self.training[name]
                progress.begin()
                log.info("%s: started beside the server", name)
                try:
                    progress.end("done", run_step(name))
                    log.info("%s: done in %.0f s, %s", name, progress.seconds(), progress.detail)
                except Exception as exc:
                    log.exception("%s beside the server failed", name)
                    progress.end("failed", f"{type(exc).__name__}: {exc}")

        threading.Thread(target=work, name="train-beside", daemon=True).start()

    # -- newly published artifacts ---------------------------------------------------------

    def _watch(self) -> None:
        last_heartbeat = time.monotonic()
        while not self._stop.wait(self.settings.serve_watch_seconds):
            try:
                self.refresh()
            except Exception:  # a half-finished offline run: keep serving, try again later
                log.exception("could not load the newly published artifacts")
            if time.monotonic() - last_heartbeat >= HEARTBEAT_SECONDS:
                last_heartbeat = time.monotonic()
                for name, progress in self.training.items():
                    if progress.state == "training":  # a line in the log every 30 s
                        log.info("%s: still training, %.0f s so far", name, progress.seconds())

    def refresh(self) -> bool:
        """Swap in newly published artifacts; False when nothing changed."""
        with self._refresh_lock:  # the watcher's, and any caller's
            versions = registry.versions(self.workdir)
            if versions == self.versions:
                return False
            changed = {name for name in versions if versions[name] != self.versions[name]}
            log.info("loading newly published %s", ", ".join(sorted(changed)))
            table = self.related_table
            if changed & {"related", *INPUTS}:  # a new table, or new inputs that void it
                table = open_related_table(self.workdir, versions)
            if changed & {"embeddings", "index", "graph", "profiles"}:
                self._swap_all(changed, table)
            elif changed & {"reranker", "feed", "related"}:
                self._swap_ranking(table)
            with self._state_lock:
                self.versions = versions
            with self._models_lock:
                if changed & {"fusion", "projector", "embeddings", "index"}:
                    self._models.clear()
            return True

    def _swap_all(self, changed: set[str], table: RelatedTable | None) -> None:
        """A recommender over the new index and graph, the profiles replayed when new;
        items embedded here go to the embedding queue again for the new index."""
        taste = TasteArtifacts.open(self.workdir)
        index = open_index(self.workdir)
        reranker = open_reranker(self.workdir) if "reranker" in changed else self.reranker
        weight = popular_weight(self.workdir, self.settings)
        table = still_current(table, self.workdir)
        with self._write_lock:  # no event lands between the profiles' replay and the swap
            profiles = (
                open_profiles(self.workdir, self.store, self.settings, index)
                if "profiles" in changed
                else None
            )
            with self._state_lock:
                live = profiles or self.recommender.profiles
                self.taste, self.reranker = taste, reranker
                self.served_popular_weight, self.related_table = weight, table
                self.recommender = self._assemble(index, taste, live)
                embedded_here, self.live_items = self.live_items, []
            _warmed(self.recommender)  # events wait: warming reads every profile
        for item_id in embedded_here:  # index them again, with the new model
            if item_id not in index:
                self._pending.put(item_id)

    def _swap_ranking(self, table: RelatedTable | None) -> None:
        """The same index, graph and profiles (items added here included) with the newly
        published re-ranker, feed weights or related-items table; the walks and neighbours
        found so far still hold."""
        reranker = open_reranker(self.workdir)
        weight = popular_weight(self.workdir, self.settings)
        table = still_current(table, self.workdir)
        with self._state_lock:
            before = self.recommender
            self.reranker, self.served_popular_weight = reranker, weight
            self.related_table = table
            updated = self._assemble(before.index, self.taste, before.profiles)
            updated.take_over_caches(before, nearest=True)
            self.recommender = updated

    def _assemble(
        self, index: ItemIndex, taste: TasteArtifacts, profiles: ProfileStore
    ) -> Recommender:
        return assemble(
            index,
            taste,
            profiles,
            self.details,
            self.config,
            self.reranker,
            self.settings.repeat_weight,
            self.served_popular_weight,
            self.related_table,
        )


def _warmed(recommender: Recommender) -> Recommender:
    """The recommender with walks and interest neighbours found ahead of the first feeds."""
    start = time.perf_counter()
    walked, searched = recommender.warm()
    log.info(
        "walked from %d items and searched %d interests ahead of requests in %.1f s",
        walked,
        searched,
        time.perf_counter() - start,
    )
    return recommender
