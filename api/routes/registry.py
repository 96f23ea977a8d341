"""The registry and access to it over HTTP: health, layers (public columns only), places (余安码),
residents; logging in, who am I, and users (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.deps import PrincipalDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import NO_NUL, Code, LoginIn, MeOut, PlaceOut, ResidentOut, TokenOut, UserIn, UserOut
from gridmap.errors import InvalidInput
from gridmap.services import auth, people
from gridmap.services.registry import Registry

router = APIRouter(responses=ERROR_RESPONSES)
LayerName = Annotated[str, Path(pattern=r"^[a-z_]{1,40}$", description="a layer name, see GET /layers")]


@router.get("/health", tags=["registry"])
def health(request: Request) -> dict:
    """Liveness, the registry's row counts, and whether automatic dispatch is on."""
    state = request.app.state
    return {"status": "ok", "counts": state.registry.counts(), "dispatch": state.dispatcher is not None}


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
    """A layer as GeoJSON (public columns only: never personal data), filtered by area or bbox."""
    box = None
    if bbox is not None:
        try:
            box = tuple(float(v) for v in bbox.split(","))
        except ValueError:
            box = ()
        if len(box) != 4 or not all(abs(v) < 1e6 for v in box):
            raise InvalidInput(f"{bbox!r} is not four numbers", field="bbox",
                               fix="give min_lon,min_lat,max_lon,max_lat, e.g. 120.09,30.27,120.10,30.28")
    gdf = request.app.state.registry.layer(name, area=area, bbox=box, limit=limit)
    return Response(gdf.to_json(drop_id=True, to_wgs84=False), media_type="application/geo+json")


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
@router.post("/v1/auth/token", tags=["access"])
def token(request: Request, body: LoginIn, session: SessionDep) -> TokenOut:
    """Exchange a username and password for a bearer token."""
    state = request.app.state
    tok, exp, p = state.auth.login(session, body.username, body.password, state.clock())
    return TokenOut(access_token=tok, expires_at=exp, username=p.username, role=p.role)


@router.get("/v1/me", tags=["access"])
def me(p: PrincipalDep) -> MeOut:
    """The caller: role, street (operators), team and grids (grid workers, volunteers)."""
    return MeOut(username=p.username, role=p.role, street=p.street, team=p.team_code, grids=list(p.grids))


@router.post("/v1/users", status_code=201, tags=["access"])
def create_user(body: UserIn, session: SessionDep, p: PrincipalDep) -> UserOut:
    """Create a user (admins). Operators need street_code; grid workers and volunteers member_code."""
    p.require("admin", what="create users")
    uid = auth.create_user(session, username=body.username, password=body.password, role=body.role,
                           street_code=body.street_code, member_code=body.member_code)
    return UserOut(id=uid, username=body.username, role=body.role)
