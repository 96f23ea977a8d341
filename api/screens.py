"""The screens of the levels of command, beside the command-centre map (same session cookie, same headers and
Content-Security-Policy, nothing from outside this app):

* ``/dashboard/district``: the areas one level below the caller's (a district's streets side by side, a
  street's communities, a community's grids) with open events, overdue, response time, closure rate and the
  safety index; each drills down to its map (``/dashboard?area=``) and to its own areas;
* ``/dashboard/unit``: a unit member's inbox, the events at the unit's rung with the rung's clock, the
  member's actions on them (take, settle with a note) and the unit's figures per rung (taken, settled,
  escalated, referred, returned, resolution rate, time to settle; a mediation room's cases by outcome).

Who sees what is the services' rule: the overview for admins, planners and operators (inside their area),
the inbox for the unit's members and admins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from api.dashboard import (
    _JSON_ERRORS,
    _PAGE_RESPONSES,
    BASE,
    COOKIE,
    LOGIN_FIX,
    LOGIN_URL,
    LOGOUT_URL,
    REFRESH_MS,
    _cache_keys,
    _json,
    _same_origin,
    forbidden_page,
    page_principal,
    session_principal,
)
from api.errors import ERROR_RESPONSES
from api.routes.levels import overview_with_safety
from api.schemas import Code, Time
from api.schemas_levels import UnitAction, UnitActionIn
from gridmap.core.levels import MEDIATION_KINDS
from gridmap.errors import Forbidden, InvalidInput, Unauthorized
from gridmap.services.auth import Principal
from gridmap.services.levels import PERIOD_DAYS, LevelsService
from gridmap.viz.screens import levels_html, unit_html

router = APIRouter(prefix=BASE, tags=["dashboard"], responses=ERROR_RESPONSES, dependencies=[Depends(_cache_keys)])
DISTRICT_URL = f"{BASE}/district"
UNIT_URL = f"{BASE}/unit"
AreaQuery = Annotated[Code | None, Query(description="a district, street or community (default: the caller's)")]
UnitQuery = Annotated[Code | None, Query(description="the unit (default: the caller's; admins must name one)")]
SessionPrincipal = Annotated[Principal, Depends(session_principal)]


def _who(p: Principal) -> str:
    scope = f" · {p.scope.level} {p.scope.code}" if p.scope is not None else ""
    return f"{p.username} · {p.role}{scope}"


@router.get("/district", response_class=HTMLResponse, responses=_PAGE_RESPONSES)
def district_page(request: Request, area: AreaQuery = None) -> Response:
    """The district screen (区级指挥): the streets of a district side by side (or a street's communities, a
    community's grids), each drilling down to its map. Without a session: the login form."""
    p = page_principal(request)
    if not isinstance(p, Principal):
        return p
    if p.role == "unit":
        return RedirectResponse(UNIT_URL, status_code=303)
    state = request.app.state
    try:
        with Session(state.engine, expire_on_commit=False) as session:
            code, level = state.levels.resolve(session, p, area)
            nav = state.levels.nav(session, p, code)
    except Forbidden as exc:
        return forbidden_page(request, exc)
    up = None
    if nav["parent"] is not None:
        up = {"label": f"{nav['parent']['name_zh'] or nav['parent']['code']} 总览 overview",
              "url": f"{DISTRICT_URL}?area={nav['parent']['code']}"}
    config = {"dataUrl": f"{BASE}/api/levels.json?area={code}", "mapUrl": BASE, "selfUrl": DISTRICT_URL,
              "loginUrl": LOGIN_URL, "refreshMs": REFRESH_MS, "periodDays": PERIOD_DAYS, "area": code,
              "level": level, "up": up}
    return HTMLResponse(levels_html(config, static_url=f"{BASE}/static", user=_who(p), logout_url=LOGOUT_URL),
                        headers={"Cache-Control": "no-store"})


@router.get("/api/levels.json")
def levels_data(request: Request, p: SessionPrincipal, area: AreaQuery = None,
                at: Annotated[Time | None, Query(description="the screen's clock; default now")] = None) -> Response:
    """The district screen's data: the areas one level below, with their figures and safety index."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        out = overview_with_safety(request.app.state.levels, session, p, area, at)
    return _json(request, out)


def _unit_of(p: Principal, unit: str | None) -> str:
    if p.role == "unit":
        if unit not in (None, p.unit):
            raise Forbidden(f"unit {unit} is not yours", field="unit", fix=f"open your own unit {p.unit}")
        return p.unit or "-"
    if p.role == "admin":
        if unit is None:
            raise InvalidInput("which unit?", field="unit", fix="add ?unit=<code> (GET /v1/units lists them)")
        return unit
    raise Forbidden(f"the unit inbox is for the unit's members, not role {p.role!r}", field="role",
                    fix="operators see a unit's inbox at GET /v1/units/{code}/inbox")


@router.get("/unit", response_class=HTMLResponse, responses=_PAGE_RESPONSES)
def unit_page(request: Request, unit: UnitQuery = None) -> Response:
    """A unit's inbox (单位待办): the events at its rung with the rung's clock, live."""
    p = page_principal(request)
    if not isinstance(p, Principal):
        return p
    try:
        code = _unit_of(p, unit)
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            u = request.app.state.units.get(session, p, code)  # 404 for no such unit
    except Forbidden as exc:
        return forbidden_page(request, exc)
    config = {"dataUrl": f"{BASE}/api/unit/inbox.json?unit={code}&recent_h=24", "loginUrl": LOGIN_URL,
              "refreshMs": REFRESH_MS, "unit": code, "actUrl": f"{BASE}/api/unit/inbox",
              "mediation": u["kind"] in MEDIATION_KINDS}  # a room settles with the agreement: its case closes
    return HTMLResponse(unit_html(config, static_url=f"{BASE}/static", user=_who(p), logout_url=LOGOUT_URL),
                        headers={"Cache-Control": "no-store"})


def unit_figures(levels: LevelsService, session: Session, p: Principal, code: str) -> dict:
    """A unit's figures of the last year (:meth:`LevelsService.units`, confined to the unit in SQL): per rung it
    stands on (``category:rung``) and in all (with a mediation room's cases by outcome)."""
    rungs = levels.units(session, p, group_by="unit_rung", unit=code)
    total = levels.units(session, p, group_by="unit", unit=code)
    for r in rungs["rows"]:
        r["rung"] = r["key"].split("/", 1)[1] if r["key"] else None
    return {"start": rungs["start"], "end": rungs["end"], "rungs": rungs["rows"],
            "total": total["rows"][0] if total["rows"] else None}


@router.get("/api/unit/inbox.json", responses=_JSON_ERRORS)
def unit_inbox(request: Request, p: SessionPrincipal, unit: UnitQuery = None,
               recent_h: Annotated[float, Query(ge=0, le=720)] = 0) -> Response:
    """The unit inbox page's data (the unit's members and admins): the inbox and the unit's figures."""
    code = _unit_of(p, unit)
    state = request.app.state
    with Session(state.engine, expire_on_commit=False) as session:
        out = state.units.inbox(session, p, code, recent_h=recent_h)
        out["figures"] = unit_figures(state.levels, session, p, code)
    return _json(request, out)


def action_principal(request: Request) -> Principal:
    """The caller of the inbox page's buttons. A bearer token as anywhere; else the screen's session cookie,
    which the screen's other routes take on reads only, here on a write too, but only when the browser names
    this app's own page as its origin (``Origin`` present and same host; the cookie is ``SameSite=Strict`` as
    well) and the body is JSON, which no other site's form can send."""
    if request.headers.get("authorization"):
        return session_principal(request)
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthorized("no command-centre session", field="session", fix=LOGIN_FIX)
    if request.headers.get("origin") is None:
        raise Forbidden("a write with the screen's session must come from the screen's own page", field="Origin",
                        fix=f"use the buttons of {UNIT_URL}, or send 'Authorization: Bearer <token>'")
    _same_origin(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise InvalidInput("the screen's actions are sent as JSON", field="Content-Type", fix="send application/json")
    state = request.app.state
    try:
        return state.auth.authenticate(token, state.clock())
    except Unauthorized as exc:
        raise Unauthorized(exc.message, field="session", fix=LOGIN_FIX) from None


@router.post("/api/unit/inbox/{event_id}/{action}", responses=_JSON_ERRORS)
def unit_act(request: Request, p: Annotated[Principal, Depends(action_principal)], body: UnitActionIn,
             event_id: Annotated[int, Path(ge=1, le=2**63 - 1)], action: Annotated[UnitAction, Path()],
             unit: UnitQuery = None) -> Response:
    """The inbox page's buttons: a unit member takes or settles (…) an event at the unit's rung, as
    ``POST /v1/units/{code}/inbox/{event_id}/{action}`` does (same service, same rules), with the screen's
    session; refused when another site's page sends it."""
    _same_origin(request)
    code = _unit_of(p, unit)
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        out = request.app.state.units.act(session, p, code, event_id, action, note=body.note, agreement=body.agreement)
    return _json(request, out)
