"""The plumbing of the live feeds: a team's assignments (``/v1/me/feed``) and a unit's inbox
(``/v1/units/{code}/feed``), each over WebSocket and over server-sent events.

Every feed does the same: subscribe to one key of the feed hub (:mod:`gridmap.services.feed`), have the
session cache wake it when the caller's session is revoked, send a snapshot, then for every hub message
re-check the caller (session open, rights unchanged) and send what that message means to them; with nothing
to send for ``KEEPALIVE_S``, re-check anyway (and, on SSE, send a keep-alive comment). What differs between
feeds is passed in: the re-check, the snapshot and how a hub message is rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

from fastapi import Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.errors import dumps
from gridmap.errors import Forbidden, GridmapError
from gridmap.services.auth import Principal
from gridmap.services.sessions import SESSION_CHECK

KEEPALIVE_S = 15.0

#: A hub message -> (SSE event name, message to send), or None when it means nothing to this caller.
Render = Callable[[dict], Awaitable[tuple[str, dict] | None]]
#: Raises a GridmapError when the caller may no longer read the feed (session ended, rights changed).
Recheck = Callable[[], Awaitable[object]]
Snapshot = Callable[[], Awaitable[dict]]


async def websocket_token(ws: WebSocket) -> str | None:
    """The bearer token from the ``Authorization`` header, or else from the first message ``{"token": ...}``
    (browsers cannot set headers on a WebSocket). Raises TimeoutError or ValueError for a silent or odd peer."""
    header = ws.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:]
    first = await asyncio.wait_for(ws.receive_json(), timeout=10.0)
    token = first.get("token") if isinstance(first, dict) else None
    return token if isinstance(token, str) else None


async def caller(app: Any, token: str | None) -> Principal:
    """The feed's caller, checked as every request is (session open, the user as they are now): from the
    process's short cache, else the database (in a thread: the event loop never waits on it)."""
    state = app.state
    now = state.clock()
    cached: Principal | None = state.auth.authenticate_cached(token, now)
    if cached is not None:
        return cached
    checked: Principal = await run_in_threadpool(state.auth.authenticate, token, now)
    return checked


async def refuse(ws: WebSocket, exc: Exception) -> None:
    """Tell the peer why (the error's JSON) and close: 4403 for a role without this feed, 4401 otherwise."""
    with contextlib.suppress(Exception):
        await ws.send_json({"type": "error", **(exc.to_dict() if isinstance(exc, GridmapError) else
                                                {"message": "send {\"token\": ...} first"})})
        await ws.close(code=4403 if isinstance(exc, Forbidden) else 4401)


#: What a WebSocket feed refuses before it starts (bad token, silent peer, odd first message, gone peer).
REFUSED = (GridmapError, TimeoutError, ValueError, WebSocketDisconnect)


async def _next(q: asyncio.Queue, check_s: float) -> dict:
    """The next message for a feed; a session check when nothing came for ``check_s``."""
    try:
        return await asyncio.wait_for(q.get(), check_s)
    except TimeoutError:
        return SESSION_CHECK


def _subscribe(app: Any, key: Hashable, p: Principal) -> tuple[asyncio.Queue, Callable[[], None]]:
    hub, sessions = app.state.feed, app.state.auth.cache
    q = hub.subscribe(key)
    sessions.watch(p.session_id, p.user_id, q)

    def leave() -> None:
        sessions.unwatch(p.user_id, q)
        hub.unsubscribe(key, q)

    return q, leave


async def run_websocket(ws: WebSocket, key: Hashable, p: Principal, snapshot: Snapshot, recheck: Recheck,
                        render: Render) -> None:
    """Serve one accepted WebSocket until the peer leaves or the caller's rights end (then 4401/4403)."""
    q, leave = _subscribe(ws.app, key, p)

    async def pump() -> None:
        await ws.send_text(dumps(await snapshot()))
        while True:
            msg = await _next(q, KEEPALIVE_S)
            try:
                await recheck()
            except GridmapError as exc:
                await refuse(ws, exc)
                return
            out = None if msg is SESSION_CHECK else await render(msg)
            if out is not None:
                await ws.send_text(dumps(out[1]))

    task = asyncio.create_task(pump())
    try:
        while True:
            m = await ws.receive()
            if m["type"] == "websocket.disconnect":
                break
    except RuntimeError:  # the pump closed the socket (session ended)
        pass
    finally:
        task.cancel()
        leave()


def sse_response(request: Request, key: Hashable, p: Principal, snapshot: Snapshot, recheck: Recheck,
                 render: Render) -> StreamingResponse:
    """The same feed as server-sent events: ``snapshot``, then one named event per message; when the
    caller's rights end, an ``error`` event and the stream ends."""

    async def stream() -> AsyncIterator[str]:
        q, leave = _subscribe(request.app, key, p)
        try:
            yield f"event: snapshot\ndata: {dumps(await snapshot())}\n\n"
            while not await request.is_disconnected():
                msg = await _next(q, KEEPALIVE_S)
                try:
                    await recheck()
                except GridmapError as exc:
                    yield f"event: error\ndata: {dumps(exc.to_dict())}\n\n"
                    return
                if msg is SESSION_CHECK:
                    yield ": keep-alive\n\n"
                    continue
                out = await render(msg)
                if out is not None:
                    yield f"event: {out[0]}\ndata: {dumps(out[1])}\n\n"
        finally:
            leave()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
