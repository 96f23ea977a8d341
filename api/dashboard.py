"""HTTP adapter of the command-centre dashboard: the page, its deck, its data per viewport, its tiles.

Everything the page needs comes from here (no CDN): the deck.gl bundle of the pydeck wheel, the page's
script and stylesheet, the deck (pydeck JSON), vector tiles of buildings and small per-viewport JSON
layers. Large responses are gzip-compressed; JSON is written by orjson; every list is bounded.
"""

from __future__ import annotations

import datetime as dt
import gzip
import threading
from typing import Annotated

import pydeck
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

import gridmap.viz as gv
from gridmap.errors import InvalidInput
from gridmap.services.dashboard import Dashboard
from gridmap.viz import page as viz_page

router = APIRouter(prefix="/dashboard", tags=["dashboard"])
BASE = "/dashboard"
REFRESH_MS = 3000
_lock = threading.Lock()
_bundle: dict[str, bytes] = {}


def get_dashboard(request: Request) -> Dashboard:
    """One Dashboard (caches: tiles, static layers, responders) per app, made on first use."""
    state = request.app.state
    with _lock:
        if getattr(state, "dashboard", None) is None:
            state.dashboard = Dashboard(state.registry.engine, dispatcher=getattr(state, "dispatcher", None))
    return state.dashboard


DashDep = Annotated[Dashboard, Depends(get_dashboard)]
AtQuery = Annotated[dt.datetime | None, Query(description="the dashboard clock (ISO 8601 with offset); default now")]
BBoxQuery = Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat (the viewport)")]


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        box = tuple(float(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise InvalidInput(f"{text!r} is not four numbers", field="bbox",
                           fix="give min_lon,min_lat,max_lon,max_lat, e.g. 120.09,30.27,120.10,30.28")
    return box


def _send(request: Request, body: bytes, media_type: str, *, cache: str = "no-store",
          precompressed: bytes | None = None) -> Response:
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "") and (precompressed is not None or len(body) > 1400):
        headers["Content-Encoding"] = "gzip"
        body = precompressed if precompressed is not None else gzip.compress(body, compresslevel=5)
    return Response(body, media_type=media_type, headers=headers)


def _json(request: Request, obj, *, cache: str = "no-store") -> Response:
    return _send(request, gv.dumps(obj), "application/json", cache=cache)


def _urls(dash: Dashboard, at: dt.datetime | None) -> dict[str, str]:
    q = f"?at={at.isoformat().replace('+', '%2B')}" if at else ""
    api = f"{BASE}/api"
    return {"grids": f"{api}/grids.json{q}", "boundaries": f"{api}/boundaries.json",
            "buildings": f"{BASE}/tiles/buildings/{{z}}/{{x}}/{{y}}.json?v={dash.version()}",
            "equipment": f"{api}/equipment.json", "routes": f"{api}/routes.json",
            "teams": f"{api}/teams.json{q}", "events": f"{api}/events.json{q}"}


# -- the page and its assets ------------------------------------------------------------------------------
@router.get("", response_class=HTMLResponse)
def dashboard_page(dash: DashDep, at: AtQuery = None,
                   grid_color: Annotated[str, Query(pattern="^(open_events|safety)$")] = "open_events") -> HTMLResponse:
    """The command-centre map (指挥中心): 3D buildings, grids, equipment, teams, events, live side panel."""
    config = {"deckUrl": f"{BASE}/deck.json", "api": f"{BASE}/api", "refreshMs": REFRESH_MS,
              "at": at.isoformat() if at else None, "gridColor": grid_color, "extent": list(dash.extent()),
              "viewport": ["equipment", "teams", "events", "routes"], "live": ["grids", "teams", "events", "routes"]}
    return HTMLResponse(gv.dashboard_html(config, bundle_url=f"{BASE}/static/deckgl-{pydeck.__version__}.js",
                                          static_url=f"{BASE}/static"), headers={"Cache-Control": "no-store"})


@router.get("/deck.json")
def deck_json(request: Request, dash: DashDep, at: AtQuery = None,
              grid_color: Annotated[str, Query(pattern="^(open_events|safety)$")] = "open_events") -> Response:
    """The deck (pydeck JSON, no basemap): layers with the URLs of their data."""
    d = gv.dashboard_deck(_urls(dash, at), dash.extent(), grid_color=grid_color)
    return _send(request, d.to_json().encode(), "application/json")


@router.get("/static/deckgl-{version}.js")
def deck_bundle(request: Request, version: str) -> Response:
    """deck.gl as shipped in the pydeck wheel (served here: the page never touches a CDN)."""
    with _lock:
        if not _bundle:
            raw = gv.bundle_path().read_bytes()
            _bundle.update(raw=raw, gz=gzip.compress(raw, compresslevel=6))
    return _send(request, _bundle["raw"], "text/javascript", cache="public, max-age=86400",
                 precompressed=_bundle["gz"])


@router.get("/static/{name}")
def static_asset(request: Request, name: str) -> Response:
    try:
        path = viz_page.static_file(name)
    except FileNotFoundError:
        raise HTTPException(404, f"no static file {name!r}") from None
    media = {"js": "text/javascript", "css": "text/css", "html": "text/html"}.get(path.suffix[1:], "text/plain")
    return _send(request, path.read_bytes(), media, cache="no-cache")


# -- data ------------------------------------------------------------------------------------------------
@router.get("/tiles/buildings/{z}/{x}/{y}.json")
def building_tile(request: Request, dash: DashDep, z: int, x: int, y: int) -> Response:
    """The buildings of one web-mercator tile as GeoJSON (resident and business counts; no personal data)."""
    return _send(request, dash.building_tile(z, x, y), "application/json", cache="public, max-age=300")


@router.get("/api/boundaries.json")
def boundaries(request: Request, dash: DashDep) -> Response:
    """District, street and community boundaries (GeoJSON)."""
    return _json(request, gv.features(dash.boundaries(), ["code", "level", "name", "name_zh"]), cache="max-age=60")


@router.get("/api/grids.json")
def grids(request: Request, dash: DashDep, at: AtQuery = None) -> Response:
    """Grids with open events and safety index (GeoJSON)."""
    return _json(request, gv.features(dash.grids(at)))


@router.get("/api/equipment.json")
def equipment(request: Request, dash: DashDep, bbox: BBoxQuery = None) -> Response:
    """Fire equipment in the viewport (points)."""
    return _json(request, gv.points(dash.equipment(_bbox(bbox)), ["code", "kind", "status", "name"]))


@router.get("/api/teams.json")
def teams(request: Request, dash: DashDep, bbox: BBoxQuery = None, at: AtQuery = None) -> Response:
    """Teams in the viewport with their state (points)."""
    return _json(request, gv.points(dash.teams(_bbox(bbox), at),
                                    ["code", "name", "kind", "status", "state", "age_s", "event_id"]))


@router.get("/api/events.json")
def events(request: Request, dash: DashDep, bbox: BBoxQuery = None, at: AtQuery = None) -> Response:
    """Open (and just resolved) events in the viewport (points)."""
    return _json(request, gv.points(dash.events(_bbox(bbox), at),
                                    ["id", "code", "category", "category_zh", "severity", "status", "title",
                                     "age_s", "overdue", "team"]))


@router.get("/api/routes.json")
def routes(request: Request, dash: DashDep, bbox: BBoxQuery = None) -> Response:
    """Routes of active dispatches in the viewport (paths)."""
    return _json(request, gv.paths(dash.routes(_bbox(bbox)),
                                   ["assignment_id", "event_id", "team", "status", "eta_s", "distance_m", "severity"]))


def _route(d: dict | None) -> dict | None:
    if d is None:
        return None
    out = dict(d)
    out["path"] = gv.line_coords(out.pop("route", None))
    return out


@router.get("/api/buildings/{code}")
def building(request: Request, dash: DashDep, code: str, at: AtQuery = None) -> Response:
    """A building: address, resident count, businesses, nearest micro fire station/truck and its road ETA."""
    b = dash.building(code, at)
    b["nearest_responder"] = _route(b["nearest_responder"])
    return _json(request, b)


@router.get("/api/events/{event_id}")
def event(request: Request, dash: DashDep, event_id: int, at: AtQuery = None) -> Response:
    """An event: timeline, team, ETA and route."""
    e = dash.event(event_id, at)
    e["assignment"] = _route(e["assignment"])
    return _json(request, e)


@router.get("/api/teams/{code}")
def team(request: Request, dash: DashDep, code: str, at: AtQuery = None) -> Response:
    """A team and its current assignment."""
    t = dash.team(code, at)
    t["assignment"] = _route(t["assignment"])
    return _json(request, t)


@router.get("/api/summary")
def summary(request: Request, dash: DashDep, at: AtQuery = None) -> Response:
    """Headline figures and the open events (state, age, overdue)."""
    return _json(request, dash.summary(at))
