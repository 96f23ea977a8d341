"""HTTP adapter of the command-centre dashboard: the login, the page, its deck, its data per viewport, its tiles.

Everything the page needs comes from here (no CDN): the deck.gl bundle of the pydeck wheel, the page's
script and stylesheet, the deck (pydeck JSON), vector tiles of buildings and small per-viewport JSON
layers. Large responses are gzip-compressed; JSON is written by orjson; every list is bounded.

Sessions. ``POST /dashboard/login`` checks the password with the API's own user store
(:class:`~gridmap.services.auth.AuthService`: Argon2 hashes, the same login throttle as ``/v1/auth/token``),
opens a session of kind ``dashboard`` and puts its signed token (a JWT naming the session) in a cookie:
``HttpOnly`` (no script on the page can read it), ``SameSite=Strict`` (no other site's page, link or form
makes the browser send it), ``Path=/dashboard`` (never sent to ``/v1``), and ``Secure`` when the app is
reached over https. A cookie rather than a bearer header because deck.gl fetches the tiles and layer data
itself: a cookie rides along on every one of those requests without custom headers, and the token never
sits in JavaScript (no localStorage to steal). The cookie is accepted only
by GET (read) endpoints; this router has no write endpoint, ``/v1`` never reads the cookie (anything that
changes state needs ``Authorization: Bearer``), and login/logout, the two POSTs here, refuse another
site's Origin. A bearer header works on every data endpoint too (scripts, the benchmark). Every request
checks the session as ``/v1`` does (revoked? user deactivated, changed, deleted? expired?), and logout
revokes the session behind the cookie, then clears the cookie.

Headers. Every response under ``/dashboard`` carries a Content-Security-Policy that lets the page load
scripts, styles, data and workers from this app only (:data:`CSP`, applied by :func:`page_headers` through
the app's :class:`~api.errors.RequestGuard`), may not be framed by any site (clickjacking), and no MIME
sniffing. All JSON is written by the one encoder (:func:`gridmap.core.encode.dumps`, via ``gv.dumps``).

Who sees what is the service's rule (:meth:`~gridmap.services.dashboard.Dashboard.view_for`): admins and
planners everything, operators their area — a district, a street or a community — (filtered in SQL), other
roles a 403. ``?area=`` drills the whole screen into a street or community (inside an operator's area); the
page shows where it sits among the levels (up to the district screen, down to the communities). Without a session every
data endpoint answers 401 with a JSON error naming the fix; the page itself answers with the login form.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import pydeck
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

import gridmap.viz as gv
from api.deps import get_client, precheck_login
from api.errors import ERROR_RESPONSES, error_headers, error_response, status_of
from api.schemas import Code, Time
from gridmap.core.location import parse_bbox
from gridmap.errors import Forbidden, GridmapError, InvalidInput, TooManyRequests, Unauthorized
from gridmap.services.auth import Principal
from gridmap.services.dashboard import Dashboard
from gridmap.viz import page as viz_page


def _cache_keys(v: Annotated[str | None, Query(max_length=64, description="a cache key the page adds to its live "
                                                                          "requests; ignored")] = None,
                view: Annotated[str | None, Query(max_length=64, description="the view a tile URL is cached for; "
                                                                             "ignored")] = None) -> None:
    """The query parameters the page adds to its own URLs only to keep browser caches apart."""


router = APIRouter(prefix="/dashboard", tags=["dashboard"], responses=ERROR_RESPONSES,
                   dependencies=[Depends(_cache_keys)])
#: What the HTML routes answer besides their page: the login form (with the message) for a refused login or a
#: role without the screen, a JSON error for a script that asked for JSON.
_HTML_OR_JSON = {"content": {"text/html": {}, "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
#: The errors of an HTML route are JSON all the same (a route's response class would otherwise relabel them).
_JSON_ERRORS: dict[int | str, dict] = {
    code: {"description": spec["description"],
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for code, spec in ERROR_RESPONSES.items()}
_PAGE_RESPONSES: dict[int | str, dict] = {
    **_JSON_ERRORS,
    403: {"description": "the role has no command-centre screen: the login form with the message", **_HTML_OR_JSON},
}
_LOGIN_RESPONSES: dict[int | str, dict] = {
    200: {"description": "JSON in: the session as JSON (and the cookie)",
          "content": {"application/json": {}, "text/html": {}}},
    303: {"description": "a form in: to the screen (and the cookie)"},
    **{code: {"description": desc, **_HTML_OR_JSON} for code, desc in (
        (401, "unknown user or wrong password"), (403, "another site's page, or a role without the screen"),
        (422, "a field is missing or the body is no login form"),
        (429, "too many failed logins: wait Retry-After seconds"))},
}
_LOGOUT_RESPONSES: dict[int | str, dict] = {
    200: {"description": "Accept: application/json: {logged_out: true}", "content": {"application/json": {}}},
    303: {"description": "to the login form"},
}
_ASSET: dict[int | str, dict[str, Any]] = {200: {"description": "the file", "content": {"text/javascript": {}, "text/css": {}, "text/html": {},
                                                        "text/plain": {}}}}
BASE = "/dashboard"
LOGIN_URL = f"{BASE}/login"
LOGOUT_URL = f"{BASE}/logout"
COOKIE = "gridmap_dashboard"
LOGIN_FIX = (f"log in at {LOGIN_URL} (the browser keeps the session in a cookie), or send "
             "'Authorization: Bearer <token>' with a token from POST /v1/auth/token")
REFRESH_MS = 3000
#: The page's Content-Security-Policy: everything from this app only, no inline script or style, no eval. The
#: deck.gl bundle of the pydeck wheel is served from here too; the browser tests (tests/dashboard/
#: test_dashboard_browser.py, test_dashboard_csp.py) fail on any violation. What that showed:
#: - no 'unsafe-eval' is needed: the deck has no string-compiled accessors, and without a basemap maplibre's
#:   blob: workers never start (so no worker-src blob: either);
#: - no 'wasm-unsafe-eval': the only WebAssembly the bundle compiles is a start-up probe of loaders.gl's 3D-tiles
#:   code (Long.js int64 helpers) that falls back to JavaScript when refused; the screen draws no 3D tiles;
#: - no inline style: the legend's swatches get their colour through the CSSOM (static/dashboard.js), which a
#:   policy does not restrict, and deck.gl styles its canvas and tooltip the same way;
#: - img-src data: only for the page's empty favicon (``<link rel="icon" href="data:,">``).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin"}
#: A static file's name: letters, digits, dot, dash, underscore (no path, no NUL).
_STATIC_NAME = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$"
#: A building or team code in a path.
_CODE = r"^[A-Za-z0-9_.:\-]{1,64}$"
_lock = threading.Lock()
_bundle: dict[str, bytes] = {}


def page_headers(path: str) -> dict[str, str]:
    """The headers of every response of the screen (the page, its assets, its data, the login form)."""
    return SECURITY_HEADERS if path == BASE or path.startswith(BASE + "/") else {}


def get_dashboard(request: Request) -> Dashboard:
    """One Dashboard (caches: tiles, static layers, responders) per app, made on first use."""
    state = request.app.state
    with _lock:
        if getattr(state, "dashboard", None) is None:
            state.dashboard = Dashboard(state.registry.engine, dispatcher=getattr(state, "dispatcher", None))
    return state.dashboard


DashDep = Annotated[Dashboard, Depends(get_dashboard)]


# -- sessions ----------------------------------------------------------------------------------------------
def _token(request: Request) -> str | None:
    """A bearer header anywhere; the session cookie only on reads (GET/HEAD)."""
    scheme, _, cred = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and cred.strip():
        return cred.strip()
    if request.method in ("GET", "HEAD"):
        return request.cookies.get(COOKIE) or None
    return None


def session_principal(request: Request) -> Principal:
    """The signed-in user of the screen, or 401 naming the fix (log in at /dashboard/login)."""
    state = request.app.state
    token = _token(request)
    if not token:
        raise Unauthorized("no command-centre session", field="session", fix=LOGIN_FIX)
    try:
        return state.auth.authenticate(token, state.clock())  # the /v1 check: session open, user as they are now
    except Unauthorized as exc:
        msg = exc.message if "ended" in exc.message else f"{exc.message}: the session has ended"
        raise Unauthorized(msg, field="session", fix=LOGIN_FIX) from None


AreaQuery = Annotated[Code | None, Query(description="a street or community to drill into (inside an operator's "
                                                      "area); default: the caller's whole view")]


def get_view(request: Request, p: Annotated[Principal, Depends(session_principal)], area: AreaQuery = None) -> Dashboard:
    """The dashboard as the caller may see it (403 for roles without the screen, or an area outside theirs)."""
    return get_dashboard(request).view_for(p, area)


ViewDep = Annotated[Dashboard, Depends(get_view)]


def _same_origin(request: Request) -> None:
    """Refuse a POST sent by another site's page (the browser names it in Origin)."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser, or a same-origin form in an old browser; SameSite=Strict still holds
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc != host:
        raise Forbidden(f"a request from {origin} to the command-centre login", field="Origin",
                        fix=f"open the screen at its own address ({request.url.scheme}://{host}{BASE}) and log in there")


def _safe_next(value: str | None) -> str:
    """Where to go after login: a path of this screen only (never another host)."""
    if not value or not isinstance(value, str):
        return BASE
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith(BASE) or "\\" in value or value.startswith("//"):
        return BASE
    return value


def _login_page(request: Request, *, next_url: str, error: str | None = None, notice: str | None = None,
                status: int = 200) -> HTMLResponse:
    body = gv.login_html(action=LOGIN_URL, next_url=_safe_next(next_url), static_url=f"{BASE}/static", error=error,
                         notice=notice)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _set_session(response: Response, request: Request, token: str, expires: dt.datetime) -> None:
    max_age = max(int((expires - request.app.state.clock()).total_seconds()), 0)
    response.set_cookie(COOKIE, token, max_age=max_age, path=BASE, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def _clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=BASE, httponly=True, samesite="strict", secure=request.url.scheme == "https")


async def _credentials(request: Request) -> tuple[dict, bool]:
    """The login body, JSON or an HTML form (urlencoded); and whether the caller wants JSON back."""
    ctype = request.headers.get("content-type", "")
    raw = await request.body()
    if "application/json" in ctype:
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise InvalidInput("the body is not a JSON object", field="body",
                               fix='send {"username": "...", "password": "..."}')
        return data, True
    if "application/x-www-form-urlencoded" in ctype or not ctype:
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
        except (UnicodeDecodeError, ValueError):
            raise InvalidInput("the form is not readable", field="body", fix="send username and password") from None
        wants_json = "application/json" in request.headers.get("accept", "")
        return {k: v[0] for k, v in form.items()}, wants_json
    raise InvalidInput(f"content type {ctype!r} is not a login form", field="Content-Type",
                       fix="send application/json or application/x-www-form-urlencoded")


def _login_fields(data: dict) -> tuple[str, str]:
    out = []
    for name, limit in (("username", 100), ("password", 200)):
        v = data.get(name)
        if not isinstance(v, str) or not v or len(v) > limit or "\x00" in v:
            raise InvalidInput(f"{name} is missing or not a string of 1 to {limit} characters", field=name,
                               fix=f"fill in the {name}")
        out.append(v)
    return out[0], out[1]


# -- login and logout --------------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse, responses=_JSON_ERRORS)
def login_page(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None,  # noqa: A002
               expired: bool = False) -> HTMLResponse:
    """The login form of the command-centre screen."""
    notice = "会话已结束 your session has ended (expired or logged out): log in again" if expired else None
    return _login_page(request, next_url=next or BASE, notice=notice)


@router.post("/login", response_model=None, responses=_LOGIN_RESPONSES)
async def login(request: Request) -> Response:
    """Check username and password; on success set the session cookie (HttpOnly, SameSite=Strict).

    JSON in, JSON out (``{username, role, street, expires_at, next}``) for the page's script; an HTML form
    in, a redirect (303) to the screen out, or the form again with the message.
    """
    state = request.app.state
    wants_json = True
    next_url = BASE
    try:
        _same_origin(request)
        data, wants_json = await _credentials(request)
        next_url = _safe_next(data.get("next"))
        username, password = _login_fields(data)

        client = await get_client(request)
        await precheck_login(request, username, client)  # a known lock or a full queue: 429 on the loop

        def check() -> tuple[str, dt.datetime, Principal]:
            with Session(state.engine, expire_on_commit=False) as session:
                return state.auth.login(session, username, password, state.clock(), kind="dashboard", client=client)

        token, expires, p = await run_in_threadpool(check)
        try:
            if p.role != "unit":  # unit members have their unit's inbox page
                get_dashboard(request).view_for(p)  # a role without the screen keeps no session at all
        except Forbidden:
            await run_in_threadpool(_end, state, p.session_id, "no command-centre screen for this role")
            raise
        if next_url == BASE:  # each level's home: the district screen, a unit's inbox
            next_url = home_of(p)
    except GridmapError as exc:
        if wants_json:
            return error_response(exc)
        if isinstance(exc, Unauthorized):
            msg = "用户名或密码错误 unknown user or wrong password"
        elif isinstance(exc, TooManyRequests):
            msg = f"登录尝试过多 {exc.message}. {exc.fix or ''}".strip()
        else:
            msg = f"{exc.message}. {exc.fix or ''}".strip()
        page = _login_page(request, next_url=next_url, error=msg, status=status_of(exc))
        if isinstance(exc, TooManyRequests):
            page.headers.update(error_headers(exc) or {})  # Retry-After
        return page
    if wants_json:
        response: Response = JSONResponse({"username": p.username, "role": p.role, "street": p.street,
                                           "expires_at": expires.isoformat(), "next": next_url})
    else:
        response = RedirectResponse(next_url, status_code=303)
    _set_session(response, request, token, expires)
    response.headers["Cache-Control"] = "no-store"
    return response


def _end(state: State, sid: str | None, reason: str) -> None:
    if sid:
        with Session(state.engine, expire_on_commit=False) as session:
            state.auth.logout(session, sid, state.clock(), reason)


@router.post("/logout", response_model=None, responses=_LOGOUT_RESPONSES)
def logout(request: Request) -> Response:
    """End the browser's session (revokes it and clears the cookie); then the login form."""
    _same_origin(request)
    state = request.app.state
    with Session(state.engine, expire_on_commit=False) as session:
        state.auth.logout_token(session, request.cookies.get(COOKIE) or _token(request), state.clock())
    if "application/json" in request.headers.get("accept", ""):
        response: Response = JSONResponse({"logged_out": True})
    else:
        response = RedirectResponse(LOGIN_URL, status_code=303)
    _clear_session(response, request)
    return response
AtQuery = Annotated[Time | None, Query(description="the dashboard clock (ISO 8601 with offset); default now")]
BBoxQuery = Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat (the viewport)")]


def _at(request: Request, at: dt.datetime | None) -> dt.datetime | None:
    """The screen's clock: ``at`` if given; else now, which on an API driven by a simulation's clock is the
    simulation's (the service reads the wall clock for None)."""
    if at is None and getattr(request.app.state, "sim_clock", None) is not None:
        return request.app.state.clock()
    return at


def _send(request: Request, body: bytes, media_type: str, *, cache: str = "no-store",
          precompressed: bytes | None = None) -> Response:
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "") and (precompressed is not None or len(body) > 1400):
        headers["Content-Encoding"] = "gzip"
        body = precompressed if precompressed is not None else gzip.compress(body, compresslevel=5)
    return Response(body, media_type=media_type, headers=headers)


def _json(request: Request, obj: object, *, cache: str = "no-store") -> Response:
    return _send(request, gv.dumps(obj), "application/json", cache=cache)


def home_of(p: Principal) -> str:
    """Where a user's screen starts: a district's operator at the district screen, a unit member at the unit's
    inbox, everyone else on the map."""
    if p.role == "unit":
        return f"{BASE}/unit"
    if p.role == "operator" and p.scope is not None and p.scope.level == "district":
        return f"{BASE}/district"
    return BASE


def _urls(dash: Dashboard, at: dt.datetime | None) -> dict[str, str]:
    q = f"?at={at.isoformat().replace('+', '%2B')}" if at else ""
    if dash.scope is not None:  # a drilled-into area: the page adds it to every URL too
        q = f"{q}&area={dash.scope}" if q else f"?area={dash.scope}"
    api = f"{BASE}/api"
    return {"grids": f"{api}/grids.json{q}", "boundaries": f"{api}/boundaries.json",
            # the view in the URL too: a browser shared by two accounts never reuses one's cached tiles for the other
            "buildings": f"{BASE}/tiles/buildings/{{z}}/{{x}}/{{y}}.json?v={dash.version()}&view={dash.scope or 'all'}",
            "equipment": f"{api}/equipment.json", "routes": f"{api}/routes.json",
            "teams": f"{api}/teams.json{q}", "events": f"{api}/events.json{q}"}


# -- the page and its assets ------------------------------------------------------------------------------
def _here(request: Request) -> str:
    """Where the user was going (path and query), to come back to after logging in."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def forbidden_page(request: Request, exc: Forbidden) -> Response:
    """The login form with why this screen is not the user's (403): they may log in as someone else."""
    return _login_page(request, next_url=_here(request), error=f"{exc.message}. {exc.fix}", status=403)


def page_principal(request: Request) -> Principal | Response:
    """The signed-in user of a screen, or the login form (a stale cookie cleared)."""
    try:
        return session_principal(request)
    except Unauthorized:
        stale = COOKIE in request.cookies
        page = _login_page(request, next_url=_here(request), notice="会话已结束 your session has ended (expired or not valid): "
                                                          "log in again" if stale else None)
        if stale:
            _clear_session(page, request)
        return page


@router.get("", response_class=HTMLResponse, responses=_PAGE_RESPONSES)
def dashboard_page(request: Request, base: DashDep, at: AtQuery = None,
                   grid_color: Annotated[str, Query(pattern="^(open_events|safety)$")] = "open_events",
                   area: AreaQuery = None) -> Response:
    """The command-centre map (指挥中心): 3D buildings, grids, equipment, teams, events, live side panel.
    Without a valid session: the login form (and a stale cookie is cleared)."""
    p = page_principal(request)
    if not isinstance(p, Principal):
        return p
    if p.role == "unit":  # a unit member's screen is the unit's inbox
        return RedirectResponse(f"{BASE}/unit", status_code=303)
    try:
        dash = base.view_for(p, area)
    except Forbidden as exc:
        return forbidden_page(request, exc)
    config = {"deckUrl": f"{BASE}/deck.json", "api": f"{BASE}/api", "refreshMs": REFRESH_MS,
              "at": at.isoformat() if at else None, "gridColor": grid_color, "extent": list(dash.extent()),
              "viewport": ["equipment", "teams", "events", "routes"], "live": ["grids", "teams", "events", "routes"],
              "loginUrl": LOGIN_URL, "user": {"username": p.username, "role": p.role, "street": dash.scope},
              "area": area, "nav": _nav(request, p, dash.scope)}
    who = f"{p.username} · {p.role}" + (f" · 街道 street {dash.scope}" if dash.scope else "")
    return HTMLResponse(gv.dashboard_html(config, bundle_url=f"{BASE}/static/deckgl-{pydeck.__version__}.js",
                                          static_url=f"{BASE}/static", user=who, logout_url=LOGOUT_URL),
                        headers={"Cache-Control": "no-store"})


def _nav(request: Request, p: Principal, scope: str | None) -> dict:
    """Links to the levels around this view: up (the district screen, or the street of a community), down (the
    communities of a street, the streets of a district)."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        n = request.app.state.levels.nav(session, p, scope)
    here = n["here"]
    if here is None:
        return {}
    level_zh = {"district": "区", "street": "街道", "community": "社区"}
    out: dict = {"here": f"{level_zh.get(here['level'], '')} {here['name_zh'] or here['code']}"}
    parent = n["parent"]
    if here["level"] == "community" and parent is not None:
        out["up"] = {"label": f"街道 {parent['name_zh']} street map", "url": f"{BASE}?area={parent['code']}"}
    elif p.role in ("admin", "planner") or p.role == "operator":
        target = here["code"] if here["level"] == "district" else (parent["code"] if parent else None)
        out["up"] = {"label": "区级总览 district screen" if target else "总览 overview",
                     "url": f"{BASE}/district" + (f"?area={target}" if target else "")}
    if n["children"]:
        out["down_label"] = "街道 streets:" if here["level"] == "district" else "社区 communities:"
        out["down"] = [{"code": c["code"], "label": c["name_zh"] or c["code"], "url": f"{BASE}?area={c['code']}"}
                       for c in n["children"]]
    return out


@router.get("/deck.json")
def deck_json(request: Request, dash: ViewDep, at: AtQuery = None,
              grid_color: Annotated[str, Query(pattern="^(open_events|safety)$")] = "open_events") -> Response:
    """The deck (pydeck JSON, no basemap): layers with the URLs of their data."""
    d = gv.dashboard_deck(_urls(dash, at), dash.extent(), grid_color=grid_color)
    return _send(request, d.to_json().encode(), "application/json")


@router.get("/static/deckgl-{version}.js", response_class=Response, responses=_ASSET)
def deck_bundle(request: Request, version: Annotated[str, Path(pattern=_STATIC_NAME)]) -> Response:
    """deck.gl as shipped in the pydeck wheel (served here: the page never touches a CDN)."""
    with _lock:
        if not _bundle:
            raw = gv.bundle_path().read_bytes()
            _bundle.update(raw=raw, gz=gzip.compress(raw, compresslevel=6))
    return _send(request, _bundle["raw"], "text/javascript", cache="public, max-age=86400",
                 precompressed=_bundle["gz"])


@router.get("/static/{name}", response_class=Response, responses=_ASSET)
def static_asset(request: Request, name: Annotated[str, Path(pattern=_STATIC_NAME)]) -> Response:
    try:
        path = viz_page.static_file(name)
    except FileNotFoundError:
        raise HTTPException(404, f"no static file {name!r}") from None
    media = {"js": "text/javascript", "css": "text/css", "html": "text/html"}.get(path.suffix[1:], "text/plain")
    return _send(request, path.read_bytes(), media, cache="no-cache")


# -- data ------------------------------------------------------------------------------------------------
@router.get("/tiles/buildings/{z}/{x}/{y}.json")
def building_tile(request: Request, dash: ViewDep, z: int, x: int, y: int) -> Response:
    """The buildings of one web-mercator tile as GeoJSON (resident and business counts; no personal data)."""
    # private: what a tile holds depends on who asks (an operator's street), so no shared cache may keep it
    return _send(request, dash.building_tile(z, x, y), "application/json", cache="private, max-age=300")


@router.get("/api/boundaries.json")
def boundaries(request: Request, dash: ViewDep) -> Response:
    """District, street and community boundaries (GeoJSON)."""
    return _json(request, gv.features(dash.boundaries(), ["code", "level", "name", "name_zh"]),
                 cache="private, max-age=60")


@router.get("/api/grids.json")
def grids(request: Request, dash: ViewDep, at: AtQuery = None) -> Response:
    """Grids with open events and safety index (GeoJSON)."""
    return _json(request, gv.features(dash.grids(_at(request, at))))


@router.get("/api/equipment.json")
def equipment(request: Request, dash: ViewDep, bbox: BBoxQuery = None) -> Response:
    """Fire equipment in the viewport (points)."""
    return _json(request, gv.points(dash.equipment(parse_bbox(bbox)), ["code", "kind", "status", "name"]))


@router.get("/api/teams.json")
def teams(request: Request, dash: ViewDep, bbox: BBoxQuery = None, at: AtQuery = None) -> Response:
    """Teams in the viewport with their state (points)."""
    return _json(request, gv.points(dash.teams(parse_bbox(bbox), _at(request, at)),
                                    ["code", "name", "kind", "status", "state", "age_s", "event_id"]))


@router.get("/api/events.json")
def events(request: Request, dash: ViewDep, bbox: BBoxQuery = None, at: AtQuery = None) -> Response:
    """Open (and just resolved) events in the viewport (points)."""
    return _json(request, gv.points(dash.events(parse_bbox(bbox), _at(request, at)),
                                    ["id", "code", "category", "category_zh", "severity", "status", "title",
                                     "age_s", "overdue", "team"]))


@router.get("/api/routes.json")
def routes(request: Request, dash: ViewDep, bbox: BBoxQuery = None) -> Response:
    """Routes of active dispatches in the viewport (paths)."""
    return _json(request, gv.paths(dash.routes(parse_bbox(bbox)),
                                   ["assignment_id", "event_id", "team", "status", "eta_s", "distance_m", "severity"]))


def _with_path(request: Request, d: dict, key: str) -> Response:
    """``d`` as JSON, its ``key`` (an assignment or a responder, or None) with the route as the map's path."""
    if d[key] is not None:
        d[key] = dict(d[key])
        d[key]["path"] = gv.line_coords(d[key].pop("route", None))
    return _json(request, d)


@router.get("/api/buildings/{code}")
def building(request: Request, dash: ViewDep, code: Annotated[str, Path(pattern=_CODE)], at: AtQuery = None) -> Response:
    """A building: address, resident count, businesses, nearest micro fire station/truck and its road ETA."""
    return _with_path(request, dash.building(code, _at(request, at)), "nearest_responder")


@router.get("/api/events/{event_id}")
def event(request: Request, dash: ViewDep, event_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
          at: AtQuery = None) -> Response:
    """An event: timeline, team, ETA and route."""
    return _with_path(request, dash.event(event_id, _at(request, at)), "assignment")


@router.get("/api/teams/{code}")
def team(request: Request, dash: ViewDep, code: Annotated[str, Path(pattern=_CODE)], at: AtQuery = None) -> Response:
    """A team and its current assignment."""
    return _with_path(request, dash.team(code, _at(request, at)), "assignment")


@router.get("/api/summary")
def summary(request: Request, dash: ViewDep, at: AtQuery = None) -> Response:
    """Headline figures and the open events (state, age, overdue)."""
    return _json(request, dash.summary(_at(request, at)))
