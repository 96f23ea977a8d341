"""Request dependencies: one database session per request, the caller (a bearer token), the services.

Routes never commit: the services own their transactions on the session they are given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from gridmap.services.auth import Principal
from gridmap.services.escalation import EscalationService
from gridmap.services.events import EventService
from gridmap.services.metrics import MetricsService

bearer = HTTPBearer(auto_error=False, description="A token from POST /v1/auth/token: 'Authorization: Bearer <token>'")


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_principal(request: Request,
                  creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Principal:
    state = request.app.state
    return state.auth.authenticate(creds.credentials if creds else None, state.clock())


def get_events(request: Request) -> EventService:
    return request.app.state.events


def get_escalation(request: Request) -> EscalationService:
    return request.app.state.escalation


def get_metrics(request: Request) -> MetricsService:
    return request.app.state.metrics


SessionDep = Annotated[Session, Depends(get_session)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
EventsDep = Annotated[EventService, Depends(get_events)]
EscalationDep = Annotated[EscalationService, Depends(get_escalation)]
MetricsDep = Annotated[MetricsService, Depends(get_metrics)]
