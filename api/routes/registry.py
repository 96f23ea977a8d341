"""The registry and access to it over HTTP: health, layers (public columns only), places (余安码),
residents; logging in and out, who am I, one's own password, and users (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.deps import ClientDep, PrincipalDep, SessionDep, precheck_login
from api.errors import ERROR_RESPONSES, database_unavailable, request_id, unavailable_response
from api.schemas import (
    NO_NUL,
    Code,
    LoginIn,
    MeOut,
    OwnPasswordIn,
    PasswordIn,
    PlaceOut,
    ResidentOut,
    SessionsEndedOut,
    TokenOut,
    UserDetailOut,
    UserIn,
    UserOut,
    UserPatchIn,
)
from gridmap.core.encode import dumps, feature_collection
from gridmap.core.location import parse_bbox
from gridmap.services import auth, people, users
from gridmap.services.registry import Registry

router = APIRouter(responses=ERROR_RESPONSES)
LayerName = Annotated[str, Path(pattern=r"^[a-z_]{1,40}$", description="a layer name, see GET /layers")]


@router.get("/health", tags=["registry"], response_model=None,
            responses={503: {"description": "the database is down"}})
def health(request: Request) -> Response | dict:
    """Liveness, the registry's row counts, and whether automatic dispatch is on; 503 when the database is down."""
    state = request.app.state
    try:
        counts = state.registry.counts()
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        return unavailable_response(request_id(request), status="unavailable", database="down",
                                    dispatch=state.dispatcher is not None)
    return {"status": "ok", "database": "up", "counts": counts, "dispatch": state.dispatcher is not None}


@router.get("/layers", tags=["registry"])
def layers() -> list[str]:
    """Names of the layers that can be read."""
    return Registry.layers()


@router.get("/layers/{name}", response_class=Response, tags=["registry"],
            responses={200: {"content": {"application/geo+json": {}}}})
def layer(
    request: Request, name: LayerName, p: PrincipalDep,
    area: Annotated[Code | None, Query(description="street/community/grid code")] = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat", max_length=200,
                                      pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """A layer as GeoJSON (public columns only), filtered by area or bbox. Every role reads the registry's base
    layers; teams and events only admins, planners and operators (their street); the free text of events is
    redacted for everyone but operators and admins."""
    gdf = request.app.state.registry.layer_for(p, name, area=area, bbox=parse_bbox(bbox), limit=limit)
    return Response(dumps(feature_collection(gdf)), media_type="application/geo+json")


@router.get("/v1/places/{code}", tags=["registry"])
def place(request: Request, code: Annotated[Code, Path()], session: SessionDep, p: PrincipalDep) -> PlaceOut:
    """What scanning a place's QR code (余安码) fills in: the place, its address, location and grid."""
    return PlaceOut(**people.place(session, code, request.app.state.clock()))


@router.get("/v1/residents", tags=["registry"])
def residents(
    request: Request, p: PrincipalDep,
    area: Annotated[Code, Query(description="a street, community or grid code")],
    personal: Annotated[bool, Query(description="add masked name, ID card and phone (operators/admins; logged)")]
    = False,
    purpose: Annotated[str | None, Query(max_length=200, pattern=NO_NUL, description="why (logged)")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="the next page: residents with an id "
                                                                       "above this (the last id of a page)")] = None,
) -> list[ResidentOut]:
    """Residents of an area, by id. Personal fields only for operators/admins, masked, and every read is logged.
    Page with ``limit`` and ``after`` (the last id of the previous page)."""
    rows = people.residents(request.app.state.registry, p, area=area, personal=personal, purpose=purpose, limit=limit,
                            after=after)
    return [ResidentOut(**r) for r in rows]


# -- access ---------------------------------------------------------------------------------------------
UserName = Annotated[str, Path(pattern=r"^[a-z0-9_.\-]{1,64}$", description="a username")]


@router.post("/v1/auth/token", tags=["access"])
async def token(request: Request, body: LoginIn, session: SessionDep, client: ClientDep) -> TokenOut:
    """Exchange a username and password for a bearer token (a new session). Throttled: after 5 failures for a
    name (20 from an address) within 15 minutes, 429 with Retry-After."""
    state = request.app.state
    await precheck_login(request, body.username, client)  # a known lock or a full queue: 429 on the loop
    tok, exp, p = await run_in_threadpool(state.auth.login, session, body.username, body.password, state.clock(),
                                          kind="api", client=client)  # Argon2: never on the event loop
    return TokenOut(access_token=tok, expires_at=exp, username=p.username, role=p.role)


@router.post("/v1/auth/logout", tags=["access"])
def logout(request: Request, session: SessionDep, p: PrincipalDep) -> SessionsEndedOut:
    """End the calling session: its token is refused from now on, in every API process."""
    state = request.app.state
    return SessionsEndedOut(sessions_ended=int(state.auth.logout(session, p.session_id, state.clock())))


@router.post("/v1/auth/logout-all", tags=["access"])
def logout_all(request: Request, session: SessionDep, p: PrincipalDep) -> SessionsEndedOut:
    """End every session of the caller (all devices, the dashboard too)."""
    state = request.app.state
    return SessionsEndedOut(sessions_ended=state.auth.logout_all(session, p, state.clock()))


@router.get("/v1/me", tags=["access"])
def me(p: PrincipalDep) -> MeOut:
    """The caller: role, street (operators), team and grids (grid workers, volunteers), and the scope (an
    operator's level and area, a unit member's unit)."""
    scope = None if p.scope is None else {"level": p.scope.level, "code": p.scope.code,
                                          "streets": sorted(p.scope.streets), "communities": sorted(p.scope.communities)}
    return MeOut(username=p.username, role=p.role, street=p.street, team=p.team_code, grids=list(p.grids), scope=scope)


@router.post("/v1/me/password", tags=["access"])
def change_password(request: Request, body: OwnPasswordIn, session: SessionDep, p: PrincipalDep,
                    client: ClientDep) -> TokenOut:
    """Change your own password (the old one is checked, throttled like a login). Every session of yours ends,
    this one too; the answer carries the token of a new session."""
    state = request.app.state
    tok, exp, p2 = state.auth.change_own_password(session, p, body.old_password, body.new_password, state.clock(),
                                                  client=client)
    return TokenOut(access_token=tok, expires_at=exp, username=p2.username, role=p2.role)


@router.get("/v1/users", tags=["access"])
def list_users(request: Request, session: SessionDep, p: PrincipalDep) -> list[UserDetailOut]:
    """Every user, with their open sessions and when they were last seen (admins)."""
    return [UserDetailOut(**u) for u in users.list_users(session, p, request.app.state.clock())]


@router.post("/v1/users", status_code=201, tags=["access"])
def create_user(request: Request, body: UserIn, session: SessionDep, p: PrincipalDep) -> UserOut:
    """Create a user (admins). Operators need one of district_code, street_code, community_code (their level);
    grid workers and volunteers member_code; unit members unit_code."""
    p.require("admin", what="create users")
    uid = auth.create_user(session, username=body.username, password=body.password, role=body.role,
                           street_code=body.street_code, member_code=body.member_code,
                           district_code=body.district_code, community_code=body.community_code,
                           unit_code=body.unit_code, passwords=request.app.state.auth.passwords)
    return UserOut(id=uid, username=body.username, role=body.role)


@router.patch("/v1/users/{username}", tags=["access"])
def update_user(request: Request, username: UserName, body: UserPatchIn, session: SessionDep,
                p: PrincipalDep) -> UserDetailOut:
    """Deactivate or reactivate a user, change their role, street or team member (admins). Any change ends
    every session of the user at once."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items()
               if v is not None or k in ("street_code", "member_code", "district_code", "community_code", "unit_code")}
    state = request.app.state
    return UserDetailOut(**users.update_user(session, p, username, changes, state.clock(), state.auth.cache))


@router.post("/v1/users/{username}/password", tags=["access"])
def reset_password(request: Request, username: UserName, body: PasswordIn, session: SessionDep,
                   p: PrincipalDep) -> SessionsEndedOut:
    """Set a user's password (admins); every session of the user ends."""
    state = request.app.state
    n = users.reset_password(session, p, username, body.password, state.clock(), state.auth.passwords, state.auth.cache)
    return SessionsEndedOut(sessions_ended=n)


@router.delete("/v1/users/{username}/sessions", tags=["access"])
def end_sessions(request: Request, username: UserName, session: SessionDep, p: PrincipalDep) -> SessionsEndedOut:
    """Log a user out everywhere (admins)."""
    state = request.app.state
    return SessionsEndedOut(sessions_ended=users.end_sessions(session, p, username, state.clock(), state.auth.cache))


@router.delete("/v1/users/{username}", status_code=204, tags=["access"])
def delete_user(request: Request, username: UserName, session: SessionDep, p: PrincipalDep) -> Response:
    """Delete a user and end their sessions (admins). What they read stays in the access log under their name."""
    state = request.app.state
    users.delete_user(session, p, username, state.clock(), state.auth.cache)
    return Response(status_code=204)
