"""Request dependencies: one database session per request, the caller (a bearer token), the services.

Routes never commit: the services own their transactions on the session they are given.

The dependencies are ``async def``: none of them waits on anything (a session connects only when a service
uses it; a token is checked by HMAC), and FastAPI would otherwise run each sync dependency in its own
thread-pool round trip, before and after the (sync) route itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gridmap.services.auth import Principal
from gridmap.services.escalation import EscalationService
from gridmap.services.events import EventService
from gridmap.services.metrics import MetricsService

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
    return state.auth.authenticate(creds.credentials if creds else None, state.clock())


async def get_events(request: Request) -> EventService:
    return request.app.state.events


async def get_escalation(request: Request) -> EscalationService:
    return request.app.state.escalation


async def get_metrics(request: Request) -> MetricsService:
    return request.app.state.metrics


SessionDep = Annotated[Session, Depends(get_session)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
EventsDep = Annotated[EventService, Depends(get_events)]
EscalationDep = Annotated[EscalationService, Depends(get_escalation)]
MetricsDep = Annotated[MetricsService, Depends(get_metrics)]
