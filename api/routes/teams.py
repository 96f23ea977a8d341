"""Teams and volunteers: positions, status, their own assignments (feed + live push) and the answers to them."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import EventsDep, PrincipalDep, SessionDep
from api.errors import ERROR_RESPONSES
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
from gridmap.errors import GridmapError, Unauthorized
from gridmap.services.auth import Principal

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
TeamCode = Annotated[Code, Path(description="the team's code, e.g. T001")]
AssignmentId = Annotated[int, Path(ge=1, le=2**63 - 1)]
KEEPALIVE_S = 15.0


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


def _respond(action: str):
    def handler(assignment_id: AssignmentId, body: ActionIn, session: SessionDep, p: PrincipalDep,
                events: EventsDep) -> RespondOut:
        out = events.respond(session, p, assignment_id, action, note=body.note, lon=body.lon, lat=body.lat)
        return RespondOut(**out)

    handler.__name__ = f"assignment_{action}"
    return handler


for _action, _doc in (("accept", "Accept the offer."),
                      ("decline", "Decline the offer: the event goes to the next nearest team."),
                      ("arrive", "On site (到场)."),
                      ("resolve", "Resolved on site (处置完毕); an operator closes it after verification."),
                      ("hand_up", "Cannot be settled here: hand it up one rung of the escalation ladder (上报).")):
    router.add_api_route(f"/assignments/{{assignment_id}}/{_action.replace('_', '-')}", _respond(_action),
                         methods=["POST"], tags=["feed"], summary=_doc.split(":")[0].rstrip("."), description=_doc,
                         response_model=RespondOut)


# -- live push ----------------------------------------------------------------------------------------------
def _read_assignment(app, p: Principal, assignment_id: int) -> dict | None:
    with Session(app.state.engine) as session:
        try:
            return jsonable_encoder(app.state.events.assignment(session, p, assignment_id))
        except GridmapError:
            return None


def _snapshot(app, p: Principal) -> list[dict]:
    with Session(app.state.engine) as session:
        return jsonable_encoder(app.state.events.my_assignments(session, p))


def _message(kind: Literal["snapshot", "assignment"], payload) -> dict:
    if kind == "snapshot":
        return {"type": "snapshot", "assignments": payload}
    return {"type": "assignment", "assignment": payload}


@router.websocket("/me/feed/ws")
async def feed_ws(ws: WebSocket) -> None:
    """A team's live feed: a snapshot of its open assignments, then every new or changed one.

    Authenticate with 'Authorization: Bearer <token>', or as the first message: {"token": "<token>"}.
    """
    app = ws.app
    await ws.accept()
    header = ws.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else None
    try:
        if token is None:
            first = await asyncio.wait_for(ws.receive_json(), timeout=10.0)
            token = first.get("token") if isinstance(first, dict) else None
        p = app.state.auth.authenticate(token, app.state.clock())
        if not p.is_team:
            raise Unauthorized(f"role {p.role!r} has no team feed", field="role",
                               fix="log in as the team's grid worker or volunteer")
    except (GridmapError, TimeoutError, ValueError, WebSocketDisconnect) as exc:
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "error", **(exc.to_dict() if isinstance(exc, GridmapError) else
                                                    {"message": "send {\"token\": ...} first"})})
            await ws.close(code=4401)
        return
    hub = app.state.feed
    q = hub.subscribe(p.team_id)

    async def pump() -> None:
        await ws.send_json(_message("snapshot", await run_in_threadpool(_snapshot, app, p)))
        while True:
            msg = await q.get()
            detail = await run_in_threadpool(_read_assignment, app, p, msg["assignment_id"])
            if detail is not None:
                await ws.send_json(_message("assignment", detail))

    task = asyncio.create_task(pump())
    try:
        while True:
            m = await ws.receive()
            if m["type"] == "websocket.disconnect":
                break
    finally:
        task.cancel()
        hub.unsubscribe(p.team_id, q)


@router.get("/me/feed", include_in_schema=False)
async def feed_sse(request: Request, p: PrincipalDep) -> StreamingResponse:
    """The same live feed as server-sent events (text/event-stream), for clients without WebSocket."""
    if not p.is_team:
        raise Unauthorized(f"role {p.role!r} has no team feed", field="role",
                           fix="log in as the team's grid worker or volunteer")
    app = request.app
    hub = app.state.feed

    async def stream():
        q = hub.subscribe(p.team_id)
        try:
            snap = await run_in_threadpool(_snapshot, app, p)
            yield f"event: snapshot\ndata: {json.dumps(_message('snapshot', snap), ensure_ascii=False)}\n\n"
            while not await request.is_disconnected():
                try:
                    msg = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                detail = await run_in_threadpool(_read_assignment, app, p, msg["assignment_id"])
                if detail is not None:
                    data = json.dumps(_message("assignment", detail), ensure_ascii=False)
                    yield f"event: assignment\ndata: {data}\n\n"
        finally:
            hub.unsubscribe(p.team_id, q)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
