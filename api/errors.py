"""HTTP mapping of errors: ONE table, one JSON shape ``{error, field, message, fix}`` for every error.

* Domain errors (:mod:`gridmap.errors`) map to their status in :data:`STATUS`; request validation to 422.
* The database out of reach (down, restarting, refusing connections, the pool exhausted) is a 503 with
  ``Retry-After`` on every route, never a 500: :func:`database_unavailable` decides what counts.
* ANY other exception is a JSON 500 ``{error: "InternalError", message, fix, request_id}``, logged with its
  traceback and the request id; the connection stays open (keep-alive) for the client's next request.
* Every response carries ``X-Request-ID`` (a sane one the client sent, else a new one),
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy``; paths with a page (the dashboard) add their
  own headers (a Content-Security-Policy) through :class:`RequestGuard`'s ``page_headers``.

Also the request-size guard: a body larger than ``max_body_bytes`` is refused with 413 before it is read.
Every JSON body here, as everywhere in the API, is written by :func:`gridmap.core.encode.dumps`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import sqlalchemy.exc as sa_exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridmap.core.encode import dumps as encode_json
from gridmap.errors import (
    ConfigError,
    Conflict,
    DatabaseError,
    Forbidden,
    GridmapError,
    InvalidInput,
    LoadRejected,
    NotFound,
    TooLarge,
    TooManyRequests,
    Unauthorized,
)

log = logging.getLogger("gridmap.api")

# The one table: domain error -> HTTP status (first match wins; subclasses before bases).
STATUS: dict[type[GridmapError], int] = {
    InvalidInput: 422, LoadRejected: 422, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
    TooLarge: 413, TooManyRequests: 429, DatabaseError: 503, ConfigError: 503,
}
#: seconds a client should wait before retrying a 503 (PostgreSQL restarts in a few seconds)
RETRY_AFTER_S = 5
#: an incoming X-Request-ID is kept when it looks like an id (no spaces, quotes or control characters)
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@+=/\-]{1,128}$")
#: headers on every response
COMMON_HEADERS = (("x-content-type-options", "nosniff"), ("referrer-policy", "same-origin"))


class GridmapJSON(JSONResponse):
    """The API's JSON response: written by the one encoder (timestamps, NaN/NA/NaT, numpy, Decimal, geometries)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode_json(content)


class ErrorOut(BaseModel):
    error: str
    field: str | None = None
    message: str
    fix: str | None = None
    request_id: str | None = None


ERROR_RESPONSES: dict[int | str, dict] = {
    code: {"model": ErrorOut, "description": desc} for code, desc in (
        (400, "the body is not parseable JSON"), (401, "no or bad credentials"), (403, "the role or scope may not do this"), (404, "not found"),
        (409, "conflicts with the current state (e.g. an illegal transition)"), (413, "request body too large"),
        (422, "invalid input: names the field and the fix"),
        (429, "too many failed logins, or the server is busy checking passwords: wait Retry-After seconds"),
        (500, "an unexpected error (logged with the request id, which the body and X-Request-ID name)"),
        (503, "the database is not reachable right now: retry after Retry-After seconds"))
}


def status_of(exc: GridmapError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)


def error_headers(exc: GridmapError) -> dict[str, str] | None:
    """The headers an error needs: the scheme to use after a 401, how long to wait after a 429."""
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, TooManyRequests):
        return {"Retry-After": str(exc.retry_after)}
    if status_of(exc) == 503:
        return {"Retry-After": str(RETRY_AFTER_S)}
    return None


def error_response(exc: GridmapError) -> JSONResponse:
    return GridmapJSON(status_code=status_of(exc), content=exc.to_dict(), headers=error_headers(exc))


# -- the database out of reach, and everything else ------------------------------------------------------
#: Exceptions that mean "the database cannot be used right now" (not "this query is wrong"): connection
#: refused or lost, the server starting up or shutting down (psycopg's OperationalError subclasses
#: CannotConnectNow, AdminShutdown ...), the pool exhausted, a statement cancelled or a serialization
#: failure (retry and it works). ProgrammingError, IntegrityError & co. are bugs or bad data: 500.
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, sa_exc.OperationalError, sa_exc.InterfaceError,
                sa_exc.TimeoutError, sa_exc.DisconnectionError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what it wraps (SQLAlchemy's ``.orig``, ``__cause__``, ``__context__``) and, for an exception
    group (anyio task groups), its members."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (getattr(e, "orig", None), e.__cause__, e.__context__) if isinstance(x, BaseException))
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is out of reach (down, restarting, no free connection)."""
    for e in _chain(exc):
        if isinstance(e, _UNAVAILABLE):
            return True
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
    return False


def request_id(scope_or_request: Request | Scope) -> str | None:
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return (scope.get("state") or {}).get("request_id")


def unavailable_response(rid: str | None, **extra: object) -> GridmapJSON:
    """503 + Retry-After: the database is out of reach."""
    body = {"error": "DatabaseUnavailable", "field": "database",
            "message": "the database is not reachable right now (down, restarting or out of connections)",
            "fix": f"retry in {RETRY_AFTER_S} s; if it lasts, check the database server (gridmap db status)",
            "request_id": rid, **extra}
    return GridmapJSON(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def internal_response(rid: str | None) -> GridmapJSON:
    return GridmapJSON({"error": "InternalError", "field": None,
                        "message": f"an unexpected error on the server; it is logged under request id {rid}",
                        "fix": f"retry later; if it happens again, report request id {rid} to the administrator",
                        "request_id": rid}, status_code=500)


def _new_request_id(scope: Scope) -> str:
    for k, v in scope.get("headers") or ():
        if k == b"x-request-id":
            text = v.decode("latin-1").strip()
            if _SANE_REQUEST_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


class RequestGuard:
    """The outermost middleware: request ids, common (and per-page) headers, and the last word on errors.

    An exception that nothing else handled becomes a JSON response here — 503 + Retry-After when the
    database is out of reach, else 500 — and is not re-raised: re-raised, the server would close the
    client's keep-alive connection (uvicorn does, once a response has been sent). An exception after the
    response has started (a broken stream) cannot be answered any more: it is logged and re-raised.

    ``page_headers(path)`` gives extra headers for a path (e.g. the dashboard's Content-Security-Policy).
    """

    def __init__(self, app: ASGIApp, page_headers: Callable[[str], dict[str, str]] | None = None) -> None:
        self.app = app
        self.page_headers = page_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = _new_request_id(scope)
        scope.setdefault("state", {})["request_id"] = rid
        extra = self.page_headers(scope.get("path", "")) if self.page_headers else {}
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
                for k, v in (*COMMON_HEADERS, *extra.items()):
                    if k not in headers:
                        headers[k] = v
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # noqa: BLE001 - the last word on every error: a JSON answer, logged
            where = f"{scope.get('method')} {scope.get('path')}"
            if started:
                log.error("error after the response started: %s [request_id=%s]", where, rid, exc_info=exc)
                raise
            if database_unavailable(exc):
                log.warning("database unavailable: %s -> 503 [request_id=%s]: %s", where, rid,
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                response = unavailable_response(rid)
            else:
                log.error("unhandled error: %s -> 500 [request_id=%s]", where, rid, exc_info=exc)
                response = internal_response(rid)
            await response(scope, receive, send_with_headers)


def _validation_fix(err: dict) -> str:
    ctx = err.get("ctx") or {}
    kind = err.get("type", "")
    if kind == "missing":
        return "add it"
    if kind.startswith("string_too_long") and "max_length" in ctx:
        return f"send at most {ctx['max_length']} characters"
    if kind.startswith("too_long") and "max_length" in ctx:
        return f"send at most {ctx['max_length']} items (split the batch)"
    if kind == "literal_error" and "expected" in ctx:
        return f"use one of {ctx['expected']}"
    if kind == "extra_forbidden":
        return "remove it (see the schema at /docs)"
    return "see the schema at /docs"


def install(app: FastAPI) -> None:
    @app.exception_handler(GridmapError)
    async def _domain(request: Request, exc: GridmapError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first: dict[str, Any] = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "body"
        msg = first.get("msg", "invalid")
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})"
        return GridmapJSON(status_code=422, content={"error": "InvalidInput", "field": field, "message": msg,
                                                     "fix": _validation_fix(first)})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        fix, field = None, None
        if exc.status_code == 400:  # FastAPI could not parse the body
            fix, field = "send a JSON object (UTF-8), as the schema at /docs shows", "body"
        if exc.status_code == 405:  # Starlette names only the first route's methods; name all of the path's
            allowed = sorted({m for r in request.app.routes if getattr(r, "path_regex", None) is not None
                              and r.path_regex.match(request.url.path) for m in (getattr(r, "methods", None) or ())})
            headers["Allow"] = ", ".join(allowed)
            fix = f"use {' or '.join(allowed)}"
        return GridmapJSON(status_code=exc.status_code, headers=headers or None,
                           content={"error": "HTTPError", "field": field, "message": str(exc.detail), "fix": fix})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 (by Content-Length, or while reading a chunked body)."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limit: Callable[[str], int | None] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limit = path_limit  # a larger limit for some paths (photo uploads), or None

    def _too_large(self, size: str, limit: int) -> JSONResponse:
        exc = TooLarge(f"the request body is {size}, more than the {limit:,} bytes allowed", field="body",
                       fix="send less: split a batch into several requests")
        return error_response(exc)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        limit = (self.path_limit(scope.get("path", "")) if self.path_limit else None) or self.max_bytes
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n > limit:
                return await self._too_large(f"{n:,} bytes", limit)(scope, receive, send)
            return await self.app(scope, receive, send)
        # no Content-Length (chunked): read up to the limit, then replay what was read
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await self._too_large(f"over {size:,} bytes", limit)(scope, receive, send)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def dumps(obj: object) -> str:
    """JSON text by the one encoder (for the live feed's messages)."""
    return encode_json(obj).decode("utf-8")
