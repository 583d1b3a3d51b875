"""The FastAPI app: events, feed, items, related, search, assistant chat, new items, health,
metrics and the web page. `create_app(settings)`; `tastegraph serve` runs it with uvicorn."""

from __future__ import annotations

import gc
import hmac
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import faiss
from fastapi import Depends, FastAPI, File, Form, Header, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits

from tastegraph.assistant.conversation import ConversationState
from tastegraph.config import Settings
from tastegraph.online import LiveAssistant, OnlineSystem
from tastegraph.online.assistant import ChatItems, ChatText
from tastegraph.recommend.items import Filters, Recommendation
from tastegraph.serve import schemas
from tastegraph.serve.limits import BodyLimit, RateLimit, error_body
from tastegraph.serve.metrics import Metrics
from tastegraph.store import Item, StoreUnavailableError, UnknownItemError, open_store

STATIC = Path(__file__).parent / "static"
PathId = Annotated[str, PathParam(pattern=schemas.ID_PATTERN, max_length=schemas.MAX_ID_LENGTH)]
Count = Annotated[int, Query(ge=1, le=100, description="How many items.")]


async def _service(request: Request) -> OnlineSystem:
    # async: FastAPI runs a plain function dependency in a thread, a hop per request
    return request.app.state.service  # type: ignore[no-any-return]


Svc = Annotated[OnlineSystem, Depends(_service)]
TrainBeside = tuple[Sequence[str], Callable[[str], str]]  # step names, run one by name


def create_app(
    settings: Settings, *, assistant: bool = True, train_beside: TrainBeside | None = None
) -> FastAPI:
    """The app over the workdir's store and published artifacts. Needs settings.api_token:
    write endpoints take `Authorization: Bearer <token>`. train_beside: offline steps to run
    in the background once serving (see OnlineSystem.train_beside)."""
    if not settings.api_token:
        raise ValueError("set api_token: the write endpoints need a bearer token")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requests run side by side, each small: one FAISS and BLAS thread per request
        # beats every request fanning out over all cores and contending.
        faiss_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        blas_threads = threadpool_limits(1)
        store = open_store(settings.resolved_store_url)
        app.state.service = OnlineSystem(settings, store, assistant=assistant)
        if train_beside is not None:
            app.state.service.train_beside(*train_beside)
        # What was loaded stays for the server's life: keep the garbage collector from
        # walking it again on a request (a full collection over it took tens of ms).
        gc.collect()
        gc.freeze()
        yield
        app.state.service.close()
        store.close()
        blas_threads.restore_original_limits()
        faiss.omp_set_num_threads(faiss_threads)

    app = FastAPI(
        title="tastegraph",
        summary="Recommendations, search and a shopping assistant over item embeddings.",
        lifespan=lifespan,
        responses={code: {"model": schemas.ErrorOut} for code in (401, 403, 404, 413, 422, 429)},
    )
    metrics = Metrics()
    chat_limit = RateLimit(settings.chat_per_minute, settings.chat_burst)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    app.add_middleware(Metrics.Middleware, metrics=metrics)
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def writer(authorization: Annotated[str | None, Header()] = None) -> None:
        """Write endpoints need the API token, compared in constant time."""
        if not authorization:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        scheme, _, token = authorization.partition(" ")
        expected = settings.api_token.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected):
            raise HTTPException(403, "wrong bearer token")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz(svc: Svc) -> dict[str, Any]:
        """Up, with the artifact versions being served and what still trains beside the
        server (state, seconds so far, what it did)."""
        return {
            "status": "ok",
            "process": os.getpid(),
            "log_position": svc.log_position,
            "items": len(svc.current().index),
            # Items whose related items are looked up, not computed (`related-table`).
            "related_items_precomputed": svc.current().related_items_precomputed,
            "versions": svc.versions,
            "training": {name: progress.to_json() for name, progress in svc.training.items()},
        }

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/v1/events", dependencies=[Depends(writer)])
    def post_events(body: schemas.EventsIn | schemas.EventIn, svc: Svc) -> schemas.EventsOut:
        """One event or {"events": [...]}; acknowledged once durable. The users' next feed
        already reflects them. Re-sent event ids are counted as duplicates."""
        incoming = body.events if isinstance(body, schemas.EventsIn) else [body]
        if len(incoming) > settings.max_events_per_request:
            raise HTTPException(
                422,
                f"{len(incoming)} events in one request; at most {settings.max_events_per_request}",
            )
        events = [
            svc.new_event(
                e.event_id,
                e.user_id,
                e.item_id,
                e.action,
                ts=e.ts,
                weight=e.weight,
                collection_id=e.collection_id,
            )
            for e in incoming
        ]
        try:
            result = svc.add_events(events)
        except UnknownItemError as exc:  # the store checks, in the same call that writes
            raise HTTPException(422, f"unknown item ids: {', '.join(exc.item_ids[:10])}") from None
        return schemas.EventsOut(
            stored=result.stored, duplicates=result.duplicates, log_position=result.log_position
        )

    @app.get("/v1/users")
    def users(svc: Svc, n: Annotated[int, Query(ge=1, le=10_000)] = 50) -> schemas.Users:
        """Users with a profile, the most active first (for picking one in the page)."""
        profiles = sorted(svc.current().profiles, key=lambda p: -p.positive_events)[:n]
        return schemas.Users(
            users=[schemas.UserOut(id=p.user_id, events=p.positive_events) for p in profiles]
        )

    @app.get("/v1/users/{user_id}/feed")
    async def feed(
        user_id: PathId,
        svc: Svc,
        n: Count = 12,
        explore: Annotated[float | None, Query(ge=0, le=1)] = None,
        category: Annotated[list[str] | None, Query(max_length=50)] = None,
        min_price: Annotated[float | None, Query(ge=0)] = None,
        max_price: Annotated[float | None, Query(ge=0)] = None,
        exclude_engaged: bool = False,
        new_user: Annotated[
            bool, Query(description="Give an unknown user a new user's feed instead of 404.")
        ] = False,
        after: Annotated[
            int | None,
            Query(
                ge=0,
                description="A log position from POST /v1/events: the feed reflects the events "
                "up to it (read your writes), or says in X-Log-Stale that it could not.",
            ),
        ] = None,
        *,
        response: Response,
    ) -> schemas.Cards:
        """The user's home feed, each item with the reason it is there. X-Log-Position says
        which events it reflects."""
        # Feeds and related items run on the event loop, not in a thread per request: each
        # is a few milliseconds of numpy, and a thread handed the GIL back and forth with
        # the loop at every numpy call (measured: 5.5 ms of CPU per feed in threads, 3.5 on
        # the loop, with four clients at once).
        await _read_through(svc, after, response)
        if not new_user and not svc.knows_user(user_id):
            raise HTTPException(404, f"unknown user {user_id!r} (add new_user=true for a new one)")
        price = None if min_price is None and max_price is None else (min_price, max_price)
        filters = Filters(category, price, exclude_engaged)
        with svc.user_lock(user_id):
            try:
                recommendations = svc.current().feed(user_id, n, explore=explore, filters=filters)
            except ValueError as exc:  # filters that cannot hold together, e.g. min > max
                raise HTTPException(422, str(exc)) from None
        return _cards(svc, recommendations)

    @app.get("/v1/items/{item_id}")
    def item(item_id: PathId, svc: Svc) -> schemas.ItemOut:
        found = svc.store.get_item(item_id)
        if found is None:
            raise HTTPException(404, f"unknown item {item_id!r}")
        return schemas.ItemOut(
            **_card(svc, item_id).model_dump(),
            description=found.description,
            attributes=found.attributes,
            recommendable=item_id in svc.current().index,
            embedding_error=svc.failed_items.get(item_id),
            generated_description=svc.generated_description(item_id),
        )

    @app.get("/v1/items/{item_id}/related")
    async def related(item_id: PathId, svc: Svc, n: Count = 12) -> schemas.Cards:
        """More like this."""
        recommender = svc.current()
        if item_id not in recommender.index:
            raise HTTPException(404, f"unknown item {item_id!r}, or not embedded yet")
        return _cards(svc, recommender.related(item_id, n))

    @app.get("/v1/items/{item_id}/image")
    def image(item_id: PathId, svc: Svc) -> FileResponse:
        """The item's photo. The file comes from the store's media record, never from the
        request."""
        photos = svc.store.media_for(item_id)
        if not photos or not Path(photos[0].uri).is_file():
            raise HTTPException(404, f"no photo for item {item_id!r}")
        return FileResponse(photos[0].uri, headers={"Cache-Control": "max-age=86400"})

    @app.get("/v1/search")
    def search(
        svc: Svc, q: Annotated[str, Query(min_length=1, max_length=500)], n: Count = 12
    ) -> schemas.Cards:
        """Items matching a text query (text tower and fusion model into the item space)."""
        try:
            vector = svc.query_encoder().encode(q)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return _cards(svc, svc.current().search(vector, n, query=q))

    @app.post("/v1/items", status_code=202, dependencies=[Depends(writer)])
    def post_item(
        svc: Svc,
        item_id: Annotated[str, Form(alias="id", pattern=schemas.ID_PATTERN)],
        title: Annotated[str, Form(max_length=500)] = "",
        description: Annotated[str, Form(max_length=5000)] = "",
        price: Annotated[float | None, Form(ge=0)] = None,
        attributes: Annotated[str, Form(max_length=5000, description="A JSON object.")] = "{}",
        photo: Annotated[UploadFile | None, File()] = None,
    ) -> schemas.ItemCreated:
        """A new item, with a photo or text: stored now, embedded in the background, and
        recommendable within seconds (GET /v1/items/{id} shows when)."""
        try:
            parsed = json.loads(attributes)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise HTTPException(422, "attributes must be a JSON object")
        if photo is None and not (title or description):
            raise HTTPException(422, "a new item needs a photo or some text")
        new = Item(item_id, title or None, description or None, parsed, price)
        try:
            added = svc.add_item(new, None if photo is None else photo.file.read())
        except ValueError as exc:  # not a usable photo
            raise HTTPException(422, str(exc)) from None
        if not added:
            raise HTTPException(409, f"item {item_id!r} exists")
        return schemas.ItemCreated(id=item_id, status="embedding")

    def chat_allowed(request: Request) -> None:
        """Each client may start chat_burst turns at once, then chat_per_minute a minute."""
        wait = chat_limit.wait_needed(request.client.host if request.client else "unknown")
        if wait > 0:
            raise HTTPException(
                429,
                f"too many assistant turns; try again in {RateLimit.retry_after(wait)} s",
                headers={"Retry-After": RateLimit.retry_after(wait)},
            )

    @app.post("/v1/assistant/chat", dependencies=[Depends(chat_allowed)])
    def chat(body: schemas.ChatIn, svc: Svc) -> StreamingResponse:
        """A shopping-assistant turn as server-sent events: `items` (cards, [1] the pick
        first), `token` events with the reply as it is written, then `done` with the whole
        reply and the conversation `state` to send back with the next message. Rate-limited
        per client (429 with Retry-After)."""
        try:
            assistant = svc.assistant()
        except FileNotFoundError as exc:
            raise HTTPException(503, str(exc)) from None
        try:
            state = (
                ConversationState.parse(body.state.model_dump(), svc.catalog)
                if body.state
                else None
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return StreamingResponse(
            _chat_events(svc, assistant, body.user_id, body.message, state),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    return app


async def _read_through(svc: OnlineSystem, after: int | None, response: Response) -> None:
    """Bring the live profiles up to log position `after`, waiting a bounded time for the
    log (in a thread: the event loop must not wait); the response says the position
    reached, and whether it falls short."""
    if after is not None and svc.log_position < after:
        await run_in_threadpool(svc.follow_log, wait=svc.settings.read_your_writes_seconds)
    position = svc.log_position
    response.headers["X-Log-Position"] = str(position)
    if after is not None and position < after:
        response.headers["X-Log-Stale"] = f"reflects events up to {position}, not {after}"


def _chat_events(
    svc: OnlineSystem,
    live: LiveAssistant,
    user_id: str,
    message: str,
    state: ConversationState | None,
) -> Iterator[str]:
    for part in live.turn(user_id, message, state):
        if isinstance(part, ChatItems):
            yield _sse("items", {"items": [_card(svc, i).model_dump() for i in part.item_ids]})
        elif isinstance(part, ChatText):
            yield _sse("token", {"text": part.text})
        else:
            yield _sse("done", {"text": part.answer.text, "state": part.answer.state.to_json()})


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _card(svc: OnlineSystem, item_id: str, rec: Recommendation | None = None) -> schemas.Card:
    details = svc.details.get(item_id)
    facts = svc.catalog.get(item_id)
    price = details.price if details else None
    return schemas.Card(
        id=item_id,
        title=details.title if details else None,
        price=price,
        price_text=svc.catalog.display.text(price),
        label=facts.label if facts else None,
        image_url=f"/v1/items/{item_id}/image" if item_id in svc.photos else None,
        reason=rec.reason if rec else None,
        interest=rec.interest if rec else None,
        source=rec.source if rec else None,
        score=round(rec.score, 4) if rec else None,
    )


def _cards(svc: OnlineSystem, recommendations: list[Recommendation]) -> schemas.Cards:
    return schemas.Cards(items=[_card(svc, r.item_id, r) for r in recommendations])


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON: {"error": message, "status": code}."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(StoreUnavailableError)
    async def store_down(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        # Nothing was acknowledged (a write commits whole or not at all).
        message = "the store is unavailable: send it again shortly (ids make that safe)"
        return JSONResponse(error_body(503, message), 503, headers={"Retry-After": "1"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:10]
        )
        return JSONResponse(error_body(422, f"invalid request: {problems}"), 422)
