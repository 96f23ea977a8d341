"""Units behind the escalation rungs: the list, one unit, its inbox (the events at its rung with the rung's
clock, live over WebSocket or server-sent events), its members' actions (take, ask for information, settle,
return, escalate) and the rungs an event stood on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Path, Query, Request, Security, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import livefeed
from api.deps import PrincipalDep, SessionDep, UnitsDep, bearer
from api.errors import ERROR_RESPONSES
from api.schemas import Code
from api.schemas_levels import InboxOut, RungClockOut, UnitAction, UnitActionIn, UnitActionOut, UnitOut
from gridmap.errors import Forbidden, Unauthorized
from gridmap.services.auth import Principal
from gridmap.services.feed import unit_key

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES, tags=["units"])
UnitCode = Annotated[Code, Path(description="the unit's code, e.g. MR-330106900001 or MALL1-DESK")]
EventId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the event's id")]


@router.get("/units")
def list_units(session: SessionDep, svc: UnitsDep, p: PrincipalDep,
               area: Annotated[Code | None, Query(description="units serving this area, one inside it or above it")] = None,
               kind: Annotated[Code | None, Query(description="e.g. community_mediation")] = None) -> list[UnitOut]:
    """Units: admins and planners all; operators those around their area; unit members their own."""
    return [UnitOut(**u) for u in svc.list(session, p, area=area, kind=kind)]


@router.get("/units/{code}")
def get_unit(code: UnitCode, session: SessionDep, svc: UnitsDep, p: PrincipalDep) -> UnitOut:
    return UnitOut(**svc.get(session, p, code))


@router.get("/units/{code}/inbox")
def unit_inbox(code: UnitCode, session: SessionDep, svc: UnitsDep, p: PrincipalDep,
               recent_h: Annotated[float, Query(ge=0, le=720, description="also what left it in the last hours")] = 0,
               limit: Annotated[int, Query(ge=1, le=500)] = 200) -> InboxOut:
    """The events at the unit's rung, with each rung's clock (the unit's members and admins; operators: the
    events of their area). Live: WebSocket /v1/units/{code}/feed/ws or SSE GET /v1/units/{code}/feed."""
    return InboxOut(**svc.inbox(session, p, code, recent_h=recent_h, limit=limit))


@router.post("/units/{code}/inbox/{event_id}/{action}")
def unit_act(code: UnitCode, event_id: EventId, action: Annotated[UnitAction, Path()],
             body: UnitActionIn, session: SessionDep, svc: UnitsDep, p: PrincipalDep) -> UnitActionOut:
    """A unit member acts on an event at the unit's rung: take (it is theirs), ask_info (a question, in the
    trail), settle (closes it resolved; at a mediation room the agreement closes the case), return (to the
    rung below), escalate (to the rung above). 409 when the event is not at this unit's rung."""
    out = svc.act(session, p, code, event_id, action, note=body.note, agreement=body.agreement)
    return UnitActionOut(**out)


@router.get("/events/{event_id}/rungs", tags=["escalation"])
def event_rungs(event_id: EventId, session: SessionDep, svc: UnitsDep, p: PrincipalDep) -> list[RungClockOut]:
    """The rungs the event stood on, each with its unit and clock (entered, due, taken, left and how)."""
    return [RungClockOut(**r) for r in svc.rungs(session, p, event_id)]


# -- live --------------------------------------------------------------------------------------------------
def _snapshot(app: FastAPI, p: Principal, code: str) -> dict:
    with Session(app.state.engine) as session:
        return app.state.units.inbox(session, p, code)


async def _feed_principal(app: FastAPI, token: str | None, code: str, user_id: int | None = None) -> Principal:
    """The feed's caller, checked as every request is: a member of the unit (or an admin)."""
    p = await livefeed.caller(app, token)
    if p.role != "admin" and not (p.role == "unit" and p.unit == code):
        raise Forbidden(f"the feed of unit {code} is for its members", field="role",
                        fix="log in as a member of the unit")
    if user_id is not None and p.user_id != user_id:
        raise Unauthorized("the session changed", field="Authorization", fix="connect to the feed again")
    return p


@router.websocket("/units/{code}/feed/ws")
async def unit_feed_ws(ws: WebSocket, code: str) -> None:
    """A unit's live inbox: a snapshot, then the inbox again each time an event enters, is taken or leaves.

    Authenticate with 'Authorization: Bearer <token>', or as the first message {"token": "<token>"}. The
    session is checked before every message and every KEEPALIVE_S; close code 4401 when it ends, 4403 for
    someone who is not a member of the unit."""
    app = ws.app
    await ws.accept()
    try:
        token = await livefeed.websocket_token(ws)
        p = await _feed_principal(app, token, code)
        snap = await run_in_threadpool(_snapshot, app, p, code)
    except livefeed.REFUSED as exc:
        await livefeed.refuse(ws, exc)
        return
    await livefeed.run_websocket(ws, unit_key(code), p, *_unit_feed(app, p, token, code, snap))


def _unit_feed(app: FastAPI, p: Principal, token: str | None, code: str,
               first: dict) -> tuple[livefeed.Snapshot, livefeed.Recheck, livefeed.Render]:
    """A unit's inbox: ``first`` (read before the feed starts, so a wrong code is refused at once), then the
    whole inbox again with the change that moved it (the member re-checked each time)."""

    async def snapshot() -> dict:
        return {"type": "snapshot", "inbox": first}

    async def recheck() -> Principal:
        return await _feed_principal(app, token, code, p.user_id)

    async def render(msg: dict) -> tuple[str, dict] | None:
        if "event_id" not in msg:
            return None
        inbox = await run_in_threadpool(_snapshot, app, p, code)
        return "inbox", {"type": "inbox", "change": msg, "inbox": inbox}

    return snapshot, recheck, render


@router.get("/units/{code}/feed", include_in_schema=False)
async def unit_feed_sse(request: Request, code: UnitCode, p: PrincipalDep,
                        creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> StreamingResponse:
    """The same live inbox as server-sent events: ``snapshot``, then ``inbox`` on every change."""
    app = request.app
    token = creds.credentials if creds else None
    await _feed_principal(app, token, code)
    snap = await run_in_threadpool(_snapshot, app, p, code)  # 404 before the stream starts
    return livefeed.sse_response(request, unit_key(code), p, *_unit_feed(app, p, token, code, snap))
