"""Teams and volunteers: positions, status, their own assignments (feed + live push) and the answers to them.

The live feed (WebSocket and server-sent events) writes its messages with the API's one JSON encoder
(:func:`api.errors.dumps`); what it sends comes from the events service, redacted for the team's roles.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Path, Query, Request, Security, WebSocket
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import links, livefeed
from api.deps import EventsDep, PrincipalDep, SessionDep, bearer
from api.errors import ERROR_RESPONSES, status_of
from api.field import IdempotencyKey, answer_response
from api.schemas import (
    ActionIn,
    AssignmentOut,
    Code,
    PointIn,
    PositionsIn,
    PositionsOut,
    RespondOut,
    TeamOut,
    TeamStatusIn,
)
from gridmap.errors import Forbidden, GridmapError, Unauthorized
from gridmap.services.auth import Principal

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
TeamCode = Annotated[Code, Path(description="the team's code, e.g. T001")]
AssignmentId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/teams", tags=["teams"])
def list_teams(request: Request, session: SessionDep, p: PrincipalDep) -> list[TeamOut]:
    """Teams with status and last position (operators: their street)."""
    return [TeamOut(**t) for t in request.app.state.teams.list(session, p)]


@router.get("/teams/{code}", tags=["teams"])
def get_team(request: Request, code: TeamCode, session: SessionDep, p: PrincipalDep) -> TeamOut:
    return TeamOut(**request.app.state.teams.get(session, p, code))


@router.post("/teams/positions", tags=["teams"])
def report_positions(request: Request, body: PositionsIn, session: SessionDep, p: PrincipalDep) -> PositionsOut:
    """Positions of one or many teams in one batch (phones send theirs; a fix older than the stored one is ignored,
    one outside the managed area refused, an implausible jump flagged and not used)."""
    out = request.app.state.teams.report_positions(session, p, [q.model_dump() for q in body.positions])
    return PositionsOut(**out)


@router.put("/teams/{code}/position", tags=["teams"])
def report_position(request: Request, code: TeamCode, body: PointIn, session: SessionDep,
                    p: PrincipalDep) -> PositionsOut:
    """One team's position."""
    out = request.app.state.teams.report_positions(session, p, [{"team": code, **body.model_dump()}], single=True)
    return PositionsOut(**out)


@router.put("/teams/{code}/status", tags=["teams"])
def set_team_status(request: Request, code: TeamCode, body: TeamStatusIn, session: SessionDep,
                    p: PrincipalDep) -> TeamOut:
    """On or off duty. (assigned / on site follow from the team's assignments.)"""
    return TeamOut(**request.app.state.teams.set_status(session, p, code, body.status))


@router.get("/me/assignments", tags=["feed"])
def my_assignments(session: SessionDep, p: PrincipalDep, events: EventsDep,
                   active: Annotated[bool, Query(description="only offered/accepted")] = True,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[AssignmentOut]:
    """The caller's team's assignments, newest first. Live: WebSocket /v1/me/feed/ws or SSE GET /v1/me/feed."""
    return [AssignmentOut(**a) for a in events.my_assignments(session, p, active_only=active, limit=limit)]


@router.get("/assignments/{assignment_id}", tags=["feed"])
def get_assignment(assignment_id: AssignmentId, session: SessionDep, p: PrincipalDep,
                   events: EventsDep) -> AssignmentOut:
    return AssignmentOut(**events.assignment(session, p, assignment_id))


def _respond(action: str) -> Callable[..., Response]:
    def handler(request: Request, assignment_id: AssignmentId, body: ActionIn, session: SessionDep, p: PrincipalDep,
                idempotency_key: IdempotencyKey = None) -> Response:
        # through the field service: an Idempotency-Key makes a retry apply once and answer the same (api/field.py)
        fingerprint = hashlib.sha256(f"{action}:{assignment_id}:".encode()
                                     + json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()
        a = request.app.state.field.respond(session, p, assignment_id, action, note=body.note, lon=body.lon,
                                            lat=body.lat, key=idempotency_key, fingerprint=fingerprint,
                                            shape=lambda out: RespondOut(**out).model_dump(mode="json"),
                                            status_of=status_of)
        return answer_response(a)

    handler.__name__ = f"assignment_{action}"
    return handler


for _action, _doc in (("accept", "Accept the offer."),
                      ("decline", "Decline the offer: the event goes to the next nearest team."),
                      ("arrive", "On site (到场)."),
                      ("resolve", "Resolved on site (处置完毕); an operator closes it after verification."),
                      ("hand_up", "Cannot be settled here: hand it up one rung of the escalation ladder (上报).")):
    router.add_api_route(f"/assignments/{{assignment_id}}/{_action.replace('_', '-')}", _respond(_action),
                         methods=["POST"], tags=["feed"], summary=_doc.split(":")[0].rstrip("."), description=_doc,
                         response_model=RespondOut,
                         responses={200: {"description": "the assignment and its event", "links": links.RESPOND[_action]}})


# -- live push ----------------------------------------------------------------------------------------------
def _read_assignment(app: FastAPI, p: Principal, assignment_id: int) -> dict | None:
    with Session(app.state.engine) as session:
        try:
            return app.state.events.assignment(session, p, assignment_id)
        except GridmapError:
            return None


def _snapshot(app: FastAPI, p: Principal) -> list[dict]:
    with Session(app.state.engine) as session:
        return app.state.events.my_assignments(session, p)


def _message(kind: Literal["snapshot", "assignment"], payload: object) -> dict:
    if kind == "snapshot":
        return {"type": "snapshot", "assignments": payload}
    return {"type": "assignment", "assignment": payload}


async def _feed_principal(app: FastAPI, token: str | None, team_id: int | None = None) -> Principal:
    """The feed's caller, checked as every request is (session open, user as they are now); a team role, and
    (on a re-check) still the same team."""
    p = await livefeed.caller(app, token)
    if not p.is_team:
        raise Forbidden(f"role {p.role!r} has no team feed", field="role",
                        fix="log in as the team's grid worker or volunteer")
    if team_id is not None and p.team_id != team_id:
        raise Unauthorized("your team changed", field="team", fix="connect to the feed again")
    return p


@router.websocket("/me/feed/ws")
async def feed_ws(ws: WebSocket) -> None:
    """A team's live feed: a snapshot of its open assignments, then every new or changed one.

    Authenticate with 'Authorization: Bearer <token>', or as the first message: {"token": "<token>"}.
    The session is checked again before every message, every KEEPALIVE_S and at once when it is revoked:
    then an error message and close code 4401 (4403: a role without a team feed).
    """
    app = ws.app
    await ws.accept()
    try:
        token = await livefeed.websocket_token(ws)
        p = await _feed_principal(app, token)
    except livefeed.REFUSED as exc:
        await livefeed.refuse(ws, exc)
        return
    await livefeed.run_websocket(ws, p.team_id, p, *_team_feed(app, p, token))


def _team_feed(app: FastAPI, p: Principal, token: str | None) -> tuple[livefeed.Snapshot, livefeed.Recheck, livefeed.Render]:
    """A team's feed: its open assignments, then each new or changed one (the team re-checked each time)."""

    async def snapshot() -> dict:
        return _message("snapshot", await run_in_threadpool(_snapshot, app, p))

    async def recheck() -> Principal:
        return await _feed_principal(app, token, p.team_id)

    async def render(msg: dict) -> tuple[str, dict] | None:
        if "assignment_id" not in msg:
            return None
        detail = await run_in_threadpool(_read_assignment, app, p, msg["assignment_id"])
        return None if detail is None else ("assignment", _message("assignment", detail))

    return snapshot, recheck, render


@router.get("/me/feed", include_in_schema=False)
async def feed_sse(request: Request, p: PrincipalDep,
                   creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> StreamingResponse:
    """The same live feed as server-sent events (text/event-stream), for clients without WebSocket.
    The session is checked as on the WebSocket; when it ends, an ``error`` event, and the stream ends."""
    if not p.is_team:
        raise Forbidden(f"role {p.role!r} has no team feed", field="role",
                        fix="log in as the team's grid worker or volunteer")
    token = creds.credentials if creds else None
    return livefeed.sse_response(request, p.team_id, p, *_team_feed(request.app, p, token))
