"""HTTP adapter of the field app (外勤 app for grid workers and volunteers): its shell, service worker, manifest
and files (``/field``), its device session, start-up context and map (``/v1/field/*``), the team's photos
(``POST /v1/assignments/{id}/photos``), and photos for operators (``/v1/events/{id}/photos``, ``/v1/photos/{id}``
with a bearer token; ``/dashboard/api/...`` with the command centre's cookie).

The shell is public (it holds no data); everything it shows comes from ``/v1`` with the device session's bearer
token. The app keeps that token in IndexedDB (its offline queue must send actions after a reload without a
network); the pages run under a Content-Security-Policy that allows no inline or foreign script, which is what
keeps another script from reading it. Photos are refused (403) to every role but admins and operators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.dashboard import CSP, SECURITY_HEADERS, get_view, session_principal
from api.deps import ClientDep, PrincipalDep, SessionDep, precheck_login
from api.errors import ERROR_RESPONSES, status_of
from api.schemas import LoginIn
from gridmap.errors import InvalidInput
from gridmap.services.auth import Principal
from gridmap.services.field import FieldService
from gridmap.services.idempotency import Answer
from gridmap.services.photos import PhotoService
from gridmap.viz import field_page

BASE = "/field"
#: the field app's and the resident page's pages: the dashboard's policy, plus the manifest and photo previews
FIELD_CSP = CSP.replace("img-src 'self' data:", "img-src 'self' data: blob:") + "; manifest-src 'self'"
FIELD_HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": FIELD_CSP}
_STATIC_NAME = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$"
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", pattern=r"^[A-Za-z0-9_.:\-]{8,100}$",
                                              description="a random key made once per action; a retry with the "
                                                          "same key is applied once and answered the same")]
_ASSET: dict[int | str, dict[str, Any]] = {200: {"description": "the file", "content": {"text/javascript": {}, "text/css": {}, "image/png": {},
                                                        "application/manifest+json": {}}}}
_PHOTO: dict[int | str, dict[str, Any]] = {200: {"description": "the photo (JPEG)", "content": {"image/jpeg": {}}}}

shell = APIRouter(prefix=BASE, tags=["field app"], responses=ERROR_RESPONSES)
api = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
dash = APIRouter(prefix="/dashboard/api", tags=["dashboard"], responses=ERROR_RESPONSES)


def page_headers(path: str) -> dict[str, str]:
    if path == BASE or path.startswith(BASE + "/") or path.startswith("/q/") or path.startswith("/r/"):
        return FIELD_HEADERS
    return {}


def body_limit(photo_max_bytes: int) -> Callable[[str], int | None]:
    """The request-size limit of the photo routes (a photo and a form's few fields); None elsewhere."""
    def limit(path: str) -> int | None:
        if (path.startswith("/v1/assignments/") and path.endswith("/photos")) or (
                path.startswith("/q/") and path.endswith("/report")):
            return photo_max_bytes + 64_000
        return None

    return limit


def get_field(request: Request) -> FieldService:
    return request.app.state.field


def get_photos(request: Request) -> PhotoService:
    return request.app.state.photos


def answer_response(a: Answer) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if a.replayed else None
    return JSONResponse(a.body, status_code=a.status, headers=headers)


# -- the shell -----------------------------------------------------------------------------------------------
@shell.get("/", response_class=HTMLResponse)
def app_page() -> HTMLResponse:
    """The field app (a PWA): sign-in, duty, live assignments, the map, offline queue. No data in the page.
    (At /field/, inside the service worker's scope /field/.)"""
    return HTMLResponse(field_page.index_html(BASE), headers={"Cache-Control": "no-cache"})


@shell.get("", response_class=RedirectResponse, status_code=307, responses={307: {"description": "to /field/"}})
def app_redirect() -> RedirectResponse:
    """To /field/ (the page must lie inside the service worker's scope)."""
    return RedirectResponse(f"{BASE}/", status_code=307)


@shell.get("/sw.js", response_class=Response, responses=_ASSET)
def service_worker() -> Response:
    """The service worker (scope /field/): a versioned cache of the shell and the street's map."""
    return Response(field_page.service_worker(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": f"{BASE}/"})


@shell.get("/manifest.webmanifest", response_class=Response, responses=_ASSET)
def manifest() -> Response:
    return Response(field_page.field_file("manifest.webmanifest").read_bytes(),
                    media_type="application/manifest+json", headers={"Cache-Control": "no-cache"})


@shell.get("/static/{name}", response_class=Response, responses=_ASSET)
def asset(name: Annotated[str, Path(pattern=_STATIC_NAME)],
          v: Annotated[str | None, Query(max_length=64, description="the app version (cache key); ignored")] = None
          ) -> Response:
    try:
        p = field_page.field_file(name)
    except FileNotFoundError:
        raise HTTPException(404, f"no file {name!r}") from None
    cache = "public, max-age=31536000, immutable" if v == field_page.version() else "no-cache"
    return Response(p.read_bytes(), media_type=field_page.media_type(p), headers={"Cache-Control": cache})


# -- the app's data ------------------------------------------------------------------------------------------
class DeviceTokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: Any
    username: str
    role: str
    team: str | None


@api.post("/field/session", tags=["field app"])
async def device_session(request: Request, body: LoginIn, session: SessionDep, client: ClientDep) -> DeviceTokenOut:
    """Sign the field app in: a session of kind 'device' for a grid worker or volunteer (403 for other roles).
    Throttled like every login; it ends on logout, deactivation and any change of the user's role or team."""
    field: FieldService = request.app.state.field
    await precheck_login(request, body.username, client)
    tok, exp, p = await run_in_threadpool(field.login, session, body.username, body.password, client)
    return DeviceTokenOut(access_token=tok, expires_at=exp, username=p.username, role=p.role, team=p.team_code)


@api.get("/field/context", tags=["field app"])
def context(request: Request, session: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """What the app starts with: the team, categories, ladders (time limits), the map's version, the notice."""
    return get_field(request).context(session, p)


@api.get("/field/map", tags=["field app"], response_class=Response,
         responses={200: {"content": {"application/geo+json": {}}, "description": "roads and buildings"},
                    304: {"description": "not modified"}})
def field_map(request: Request, p: PrincipalDep) -> Response:
    """The street's roads and buildings (GeoJSON, coordinates to ~1 m), for the app's own map renderer."""
    md = get_field(request).map_data(p)
    etag = f'"{md.etag}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Accept-Encoding, Authorization"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(md.gz, media_type="application/geo+json", headers={**headers, "Content-Encoding": "gzip"})
    return Response(md.raw, media_type="application/geo+json", headers=headers)


class PhotoOut(BaseModel):
    id: int
    event_id: int
    assignment_id: int | None
    sha256: str
    media_type: str
    width: int
    height: int
    bytes: int
    lon: float | None = Field(description="where it was taken: kept only for a team's photo inside the street")
    lat: float | None
    source: str
    uploaded_at: Any
    action: str | None
    attached_at: Any
    pending: bool
    url: str
    thumb_url: str


@api.post("/assignments/{assignment_id}/photos", tags=["feed"], status_code=200, response_model=PhotoOut,
          openapi_extra={"requestBody": {"required": True, "content": {
              "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
              "image/png": {"schema": {"type": "string", "format": "binary"}},
              "image/webp": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_photo(request: Request, assignment_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
                       session: SessionDep, p: PrincipalDep, idempotency_key: IdempotencyKey = None) -> Response:
    """A photo for the team's assignment (the body is the picture: JPEG, PNG or WebP, at most 8 MB). It waits for
    the team's next resolve or hand-up, which attaches it (at most 4) to the audit trail."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not ctype.startswith("image/"):
        raise InvalidInput(f"content type {ctype or 'none'!r} is not a picture", field="Content-Type",
                           fix="send the photo's bytes as the body with Content-Type image/jpeg, image/png or image/webp")
    data = await request.body()
    field = get_field(request)
    a = await run_in_threadpool(field.upload_photo, session, p, assignment_id, data, key=idempotency_key,
                                status_of=status_of)
    return answer_response(a)


@api.get("/events/{event_id}/photos", tags=["events"])
def event_photos(request: Request, event_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep,
                 p: PrincipalDep) -> list[PhotoOut]:
    """The photos of an event (operators of its street, admins; each read logged)."""
    return [PhotoOut(**r) for r in get_photos(request).of_event(session, p, event_id)]


ThumbQuery = Annotated[bool, Query(description="the 320 px thumbnail")]


def _photo_response(request: Request, session: Any, p: Principal, photo_id: int, thumb: bool) -> Response:
    data, media = get_photos(request).read(session, p, photo_id, thumb=thumb)
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


@api.get("/photos/{photo_id}", tags=["events"], response_class=Response, responses=_PHOTO)
def photo(request: Request, photo_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep,
          p: PrincipalDep, thumb: ThumbQuery = False) -> Response:
    """A photo's bytes (operators of its event's street, admins; each read logged)."""
    return _photo_response(request, session, p, photo_id, thumb)


# -- the command centre's drill-down (the screen's cookie) -----------------------------------------------------
@dash.get("/events/{event_id}/photos")
def dashboard_event_photos(request: Request, event_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
                           session: SessionDep) -> list[PhotoOut]:
    """The photos of an event for the screen's drill-down (operators and admins; planners 403)."""
    p = session_principal(request)
    get_view(request, p)  # roles without the screen: 403
    rows = get_photos(request).of_event(session, p, event_id)
    return [PhotoOut(**{**r, "url": f"/dashboard/api/photos/{r['id']}",
                        "thumb_url": f"/dashboard/api/photos/{r['id']}?thumb=true"}) for r in rows]


@dash.get("/photos/{photo_id}", response_class=Response, responses=_PHOTO)
def dashboard_photo(request: Request, photo_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep,
                    thumb: ThumbQuery = False) -> Response:
    p = session_principal(request)
    get_view(request, p)
    return _photo_response(request, session, p, photo_id, thumb)
