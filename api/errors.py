"""HTTP mapping of domain errors: ONE table, one JSON shape ``{error, field, message, fix}`` for every 4xx.

Also the request-size guard: a body larger than ``max_body_bytes`` is refused with 413 before it is read.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

# The one table: domain error -> HTTP status (first match wins; subclasses before bases).
STATUS: dict[type[GridmapError], int] = {
    InvalidInput: 422, LoadRejected: 422, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
    TooLarge: 413, TooManyRequests: 429, DatabaseError: 503, ConfigError: 503,
}


class ErrorOut(BaseModel):
    error: str
    field: str | None = None
    message: str
    fix: str | None = None


ERROR_RESPONSES: dict[int | str, dict] = {
    code: {"model": ErrorOut, "description": desc} for code, desc in (
        (400, "the body is not parseable JSON"), (401, "no or bad credentials"), (403, "the role or scope may not do this"), (404, "not found"),
        (409, "conflicts with the current state (e.g. an illegal transition)"), (413, "request body too large"),
        (422, "invalid input: names the field and the fix"),
        (429, "too many failed logins, or the server is busy checking passwords: wait Retry-After seconds"))
}


def status_of(exc: GridmapError) -> int:
    return next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)


def error_headers(exc: GridmapError) -> dict[str, str] | None:
    """The headers an error needs: the scheme to use after a 401, how long to wait after a 429."""
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, TooManyRequests):
        return {"Retry-After": str(exc.retry_after)}
    return None


def error_response(exc: GridmapError) -> JSONResponse:
    return JSONResponse(status_code=status_of(exc), content=exc.to_dict(), headers=error_headers(exc))


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
        first = errs[0] if errs else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or "body"
        msg = first.get("msg", "invalid")
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})"
        return JSONResponse(status_code=422, content={"error": "InvalidInput", "field": field, "message": msg,
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
        return JSONResponse(status_code=exc.status_code, headers=headers or None,
                            content={"error": "HTTPError", "field": field, "message": str(exc.detail), "fix": fix})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 (by Content-Length, or while reading a chunked body)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> JSONResponse:
        exc = TooLarge(f"the request body is {size}, more than the {self.max_bytes:,} bytes allowed", field="body",
                       fix="send less: split a batch into several requests")
        return error_response(exc)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n > self.max_bytes:
                return await self._too_large(f"{n:,} bytes")(scope, receive, send)
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
            if size > self.max_bytes:
                return await self._too_large(f"over {size:,} bytes")(scope, receive, send)
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


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
