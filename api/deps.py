"""Request dependencies: one database session per request, the caller (a bearer token), the client's
address, the services.

Routes never commit: the services own their transactions on the session they are given.

The dependencies are ``async def``: FastAPI would otherwise run each sync dependency in its own thread-pool
round trip, before and after the (sync) route itself. A session connects only when a service uses it; a
token is checked by HMAC and its session looked up in the per-process cache, and only when the cache has
no fresh entry (every few seconds per session, or after a revocation) is the database read, in a thread.

The client's address (for the login throttle and the session record) is the TCP peer's, unless that peer is
one of ``GRIDMAP_TRUSTED_PROXIES``: then X-Forwarded-For is read from the right, skipping trusted proxies,
and the first address that is not one is the client (what the last trusted proxy saw; anything to its left
was written by the client and is not believed).
"""

from __future__ import annotations

import asyncio
import difflib
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from gridmap.errors import InvalidInput, TooManyRequests
from gridmap.services.auth import Client, Principal
from gridmap.services.escalation import EscalationService
from gridmap.services.events import EventService
from gridmap.services.levels import LevelsService
from gridmap.services.mediation import MediationService
from gridmap.services.metrics import MetricsService
from gridmap.services.units import UnitService


def _declared_query(route: object) -> frozenset[str]:
    """The query parameters ``route`` declares (its own and its dependencies')."""
    names: set[str] = set()
    todo = [getattr(route, "dependant", None)]
    while todo:
        d = todo.pop()
        if d is not None:
            names.update(p.alias for p in d.query_params)
            todo.extend(d.dependencies)
    return frozenset(names)


_KNOWN_QUERY: dict[int, frozenset[str]] = {}


async def no_unknown_query(request: HTTPConnection) -> None:
    """Refuse a query parameter the route does not know (422 naming it and the nearest known one).

    Ignored, a typo such as ``?categroy=fire`` would answer every category as if it had been asked for. (An
    ``HTTPConnection``: the WebSocket routes run it too.)
    """
    if not request.query_params:
        return
    route = request.scope.get("route")
    known = _KNOWN_QUERY.get(id(route))
    if known is None:
        known = _KNOWN_QUERY.setdefault(id(route), _declared_query(route))
    unknown = [k for k in request.query_params if k not in known]
    if unknown:
        name = unknown[0]
        near = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise InvalidInput(f"unknown query parameter {name!r}", field=name,
                           fix=f"{hint}this route takes {', '.join(sorted(known)) or 'no query parameters'}")


bearer = HTTPBearer(auto_error=False, description="A token from POST /v1/auth/token: 'Authorization: Bearer <token>'")


async def get_session(request: Request) -> AsyncIterator[Session]:
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():  # left open (an error mid-way): the rollback talks to the database
            await run_in_threadpool(session.close)
        else:
            session.close()


async def get_principal(request: Request,
                        creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
    state = request.app.state
    token, now = creds.credentials if creds else None, state.clock()
    p = state.auth.authenticate_cached(token, now)
    if p is None:  # no fresh entry for this session in the cache: read it (blocking) in a worker thread
        p = await run_in_threadpool(state.auth.authenticate, token, now)
    return p


@lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in n for n in networks)


def client_address(request: Request) -> str | None:
    """The client's address: the peer's, or, behind a trusted proxy, the one X-Forwarded-For names."""
    peer = request.client.host if request.client else None
    networks = _networks(tuple(request.app.state.settings.trusted_proxies))
    if peer is None or not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    address = peer
    for hop in reversed(hops):
        if not _trusted(address, networks):
            break
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:  # not an address: stop at the last hop that was one
            break
    return address


async def get_client(request: Request) -> Client:
    return Client(client_address(request), request.headers.get("user-agent"))


#: How long a login refused before any work (a known lock, a full Argon2 queue) waits before its 429.
REFUSAL_DELAY_S = 0.25


async def precheck_login(request: Request, username: str, client: Client) -> None:
    """Refuse a login on the event loop when that needs no thread and no query (AuthService.precheck_login).

    The answer is held back a quarter of a second: a client that ignores Retry-After and retries at once
    would otherwise cost the server a request's worth of CPU every few hundred microseconds per
    connection; a sleeping answer costs a timer."""
    state = request.app.state
    try:
        state.auth.precheck_login(username, client, state.clock())
    except TooManyRequests:
        await asyncio.sleep(REFUSAL_DELAY_S)
        raise


def _service(name: str) -> Callable[[Request], Awaitable[Any]]:
    """The dependency giving ``request.app.state.<name>``: one of the app's services, built once at start-up
    (:func:`api.app.create_app`) and shared by every request."""
    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = get.__qualname__ = f"get_{name}"
    return get


SessionDep = Annotated[Session, Depends(get_session)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ClientDep = Annotated[Client, Depends(get_client)]
EventsDep = Annotated[EventService, Depends(_service("events"))]
EscalationDep = Annotated[EscalationService, Depends(_service("escalation"))]
MetricsDep = Annotated[MetricsService, Depends(_service("metrics"))]
LevelsDep = Annotated[LevelsService, Depends(_service("levels"))]
MediationDep = Annotated[MediationService, Depends(_service("mediation"))]
UnitsDep = Annotated[UnitService, Depends(_service("units"))]
