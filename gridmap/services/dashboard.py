"""The command-centre dashboard's use cases: what each map layer, drill-down and the side panel show.

Reads only; every call opens one short read transaction. Layers come back as GeoDataFrames in
EPSG:4326 (for :mod:`gridmap.viz`), buildings as GeoJSON tiles (cached until the registry is reloaded).
Residents appear only as counts. ``at`` is the dashboard's clock: the current time by default, or any
past instant to replay (the sample street's events end on its generation day).

Who sees what (:meth:`Dashboard.view_for`): admins and planners the whole screen (or any area they drill into);
an operator a view confined to their area — a district, a street or a community — or to an area inside it
they drill into (every layer, drill-down and figure filtered in SQL); nobody else. The screen
carries no personal data for anyone: residents and team members as counts, events without their reporter
or free-text description, and the title redacted for every role (:func:`gridmap.core.privacy.redact_text`:
phone, ID-card and bank-card numbers, e-mails, the reporter's own name and recognisable name forms).

>>> from gridmap.services.dashboard import Dashboard
>>> dash = Dashboard(gm.connect().engine)          # doctest: +SKIP
>>> dash.grids().plot(column="safety_index")       # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine

from gridmap.core.levels import OPERATOR_LEVELS
from gridmap.core.location import BBox, check_bbox
from gridmap.core.privacy import redact_text, redact_values
from gridmap.core.vocabulary import LOCAL_TZ, WGS84
from gridmap.errors import Forbidden, InvalidInput, NotFound
from gridmap.services.auth import Principal
from gridmap.storage import areas as areas_sql
from gridmap.storage import assignments as assignments_sql
from gridmap.storage import dataset as dataset_sql
from gridmap.storage import events as events_sql
from gridmap.storage import layers as layers_sql
from gridmap.storage import metrics as metrics_sql
from gridmap.storage import registry as registry_sql
from gridmap.storage import teams as teams_sql
from gridmap.storage.layers import layer_spec

if TYPE_CHECKING:
    from gridmap.services.dispatch import Dispatcher

CRS = WGS84
#: The range of the dashboard's clock ``at``.
MIN_AT = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
MAX_AT = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
#: The one redaction of free text (gridmap.core.privacy), under the name this module has always exported.
redact = redact_text


def _redact_titles(sa: Connection, df: pd.DataFrame, id_column: str = "id") -> None:
    """Redact ``df["title"]`` in place, each row with its event's reporter's name blanked too."""
    if "title" not in df.columns:
        return
    ids = [int(i) for i in df[id_column].dropna().tolist()] if len(df) else []
    names = events_sql.reporter_names(sa, ids) if ids else {}
    known = [(names[int(i)],) if not pd.isna(i) and int(i) in names else () for i in df[id_column].tolist()]
    df["title"] = pd.Series(redact_values(df["title"].tolist(), known), index=df.index, dtype=object)


def _redact_title(sa: Connection, d: dict, id_key: str = "id") -> None:
    eid = d.get(id_key)
    names = events_sql.reporter_names(sa, [eid]) if eid is not None else {}
    d["title"] = redact_text(d.get("title"), (names[eid],) if eid in names else ())


@dataclass
class DashboardPolicy:
    """What counts as stale, overdue, recent; how much one request may return."""

    stale_after_s: float = 300.0
    #: time to get on site, by severity (4 = most severe)
    onsite_sla_s: dict[int, float] = field(default_factory=lambda: {4: 900, 3: 1800, 2: 3600, 1: 7200})
    #: time to resolve, by severity
    resolve_sla_s: dict[int, float] = field(default_factory=lambda: {4: 4 * 3600, 3: 12 * 3600, 2: 24 * 3600,
                                                                      1: 72 * 3600})
    safety_window_days: int = 90
    closure_period_days: int = 30
    resolved_visible_h: float = 2.0
    min_tile_zoom: int = 11
    max_tile_zoom: int = 20
    tile_cache_tiles: int = 4096
    version_check_s: float = 5.0
    responder_cache_s: float = 300.0
    max_equipment: int = 20_000
    max_teams: int = 5_000
    max_events: int = 5_000
    max_routes: int = 2_000
    max_panel_events: int = 200
    max_businesses: int = 30


def _aware(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(LOCAL_TZ)
    if at.tzinfo is None:
        raise InvalidInput(f"time {at.isoformat()} has no time zone", field="at",
                           fix="give an ISO 8601 time with an offset, e.g. 2026-10-31T23:00:00+08:00")
    if not (MIN_AT <= at <= MAX_AT):  # the screen subtracts days and converts zones: year 1 or 9999 overflow
        raise InvalidInput(f"time {at.isoformat()} is outside {MIN_AT.year}–{MAX_AT.year}", field="at",
                           fix="give a time of the registry's years, e.g. 2026-10-31T23:00:00+08:00, or leave it out")
    return at


def _points(df: pd.DataFrame) -> gpd.GeoDataFrame:
    geom = gpd.points_from_xy(df.pop("lon").astype(float), df.pop("lat").astype(float), crs=CRS)
    return gpd.GeoDataFrame(df, geometry=geom, crs=CRS)


def _seconds(now: dt.datetime, then: pd.Series) -> pd.Series:
    t = pd.to_datetime(then, utc=True)
    return (pd.Timestamp(now).tz_convert("UTC") - t).dt.total_seconds()


class Dashboard:
    """Read model of the command-centre map. Thread-safe; one per app (or notebook)."""

    def __init__(self, engine: Engine, policy: DashboardPolicy | None = None, *, street: str | None = None,
                 dispatcher: Dispatcher | None = None, confine: bool = False) -> None:
        """``street``: the street the grids, boundaries and figures show (default: the most populous).
        ``confine``: show nothing outside ``street`` (an operator's view): every layer and drill-down is
        filtered to it in SQL. ``dispatcher``: a running :class:`~gridmap.services.dispatch.Dispatcher` to
        ask for road ETAs (the app's); without one, the dashboard builds its own on first use and refreshes
        it now and then."""
        if confine and not street:
            raise InvalidInput("a confined dashboard needs its street", field="street",
                               fix="give the street's area code, e.g. street='330106900'")
        self.engine = engine
        self.policy = policy or DashboardPolicy()
        self._street = street
        self._confine = confine
        self._views: dict[str, Dashboard] = {}
        self._parent: Dashboard | None = None
        self._lock = threading.RLock()
        self._tiles: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self._version: tuple | None = None
        self._version_checked = 0.0
        self._static: dict[str, Any] = {}
        self._shared_dispatcher = dispatcher
        self._dispatcher: Dispatcher | None = None
        self._dispatcher_at = 0.0

    # -- plumbing ---------------------------------------------------------------------------------------
    def _read(self) -> Connection:
        return self.engine.connect()

    def _fresh(self, conn: Connection) -> None:
        """Drop cached tiles and static layers when the registry has been reloaded."""
        if time.monotonic() - self._version_checked < self.policy.version_check_s:
            return
        version = dataset_sql.data_version(conn)
        with self._lock:
            self._version_checked = time.monotonic()
            if version != self._version:
                self._version = version
                self._tiles.clear()
                self._static.clear()

    @property
    def street(self) -> str | None:
        if self._street is None:
            with self._read() as sa:
                self._street = areas_sql.main_street(sa)
        return self._street

    @property
    def scope(self) -> str | None:
        """The street every read is confined to, or None (the whole registry)."""
        return self._street if self._confine else None

    def confined_to(self, street: str) -> Dashboard:
        """The view of one street (cached: one per street, sharing this one's engine, policy and responders)."""
        with self._lock:
            view = self._views.get(street)
            if view is None:
                view = Dashboard(self.engine, self.policy, street=street, dispatcher=self._shared_dispatcher,
                                 confine=True)
                view._parent = self
                self._views[street] = view
            return view

    def view_for(self, principal: Principal, area: str | None = None) -> Dashboard:
        """What ``principal`` may see: admins and planners this dashboard, an operator their area's view
        (district, street or community). ``area`` drills into a street or community: inside the operator's
        area only (403 otherwise; 404 for no such district, street or community).

        Grid workers, volunteers, intake accounts and unit members are refused: they have their own API feed
        (unit members: their unit's inbox page).
        """
        if principal.role in ("admin", "planner"):
            return self if area is None else self.confined_to(self._area(area))
        if principal.role == "operator":
            own = principal.area
            if not own:
                raise Forbidden(f"operator {principal.username} has no area", field="street",
                                fix="an admin must give the operator a district, street or community (gridmap "
                                    "users add ... --street)")
            if area is None or area == own:
                return self.confined_to(own)
            self._area(area)
            with self._read() as sa:
                inside = areas_sql.area_within(sa, area, own)
            if not inside:
                where = principal.scope.describe() if principal.scope is not None else own
                raise Forbidden(f"area {area} is outside {where}", field="area",
                                fix=f"drill into an area inside {own}, or leave area out")
            return self.confined_to(area)
        raise Forbidden(f"the command-centre screen is for operators, planners and admins, not role "
                        f"{principal.role!r}", field="role",
                        fix="grid workers and volunteers read their assignments at GET /v1/me/assignments (live: "
                            "/v1/me/feed); intake accounts report at POST /v1/events")

    def _area(self, area: str) -> str:
        """``area`` if it is a current district, street or community (the views a screen confines to)."""
        with self._read() as sa:
            level = areas_sql.area_level(sa, area)
        if level not in OPERATOR_LEVELS:
            raise NotFound(f"no district, street or community {area!r}", field="area",
                           fix="give the code of a district, street or community (the screen's boundaries list them)")
        return area

    def clock(self, at: dt.datetime | None = None) -> dt.datetime:
        return _aware(at)

    def version(self) -> str:
        """A short token that changes when the static layers change (for cache-busting URLs)."""
        with self._read() as sa:
            self._fresh(sa)
        return format(abs(hash(self._version)) % (1 << 40), "x")

    def extent(self) -> BBox:
        """The bbox of the buildings (or of the street when there are none); of the street's boundary when
        the view is confined to it."""
        with self._lock:
            if "extent" in self._static:
                return self._static["extent"]
        with self._read() as sa:
            self._fresh(sa)
            box = areas_sql.extent(sa, self.scope)
        if box is None:
            raise NotFound("there is nothing to show: no buildings and no street", field="buildings",
                           fix="load the registry first (gridmap sample load, or gridmap load)")
        with self._lock:
            self._static["extent"] = box
        return box

    def _where(self) -> str:
        return f" in your street {self.scope}" if self.scope is not None else ""

    # -- layers -----------------------------------------------------------------------------------------
    def building_tile(self, z: int, x: int, y: int) -> bytes:
        """GeoJSON of the buildings of tile z/x/y, serialised by PostGIS (counts, never personal data)."""
        p = self.policy
        if not (p.min_tile_zoom <= z <= p.max_tile_zoom):
            raise InvalidInput(f"tile zoom {z} is outside {p.min_tile_zoom}–{p.max_tile_zoom}", field="z",
                               fix=f"request zoom {p.min_tile_zoom} to {p.max_tile_zoom}")
        if not (0 <= x < 2**z and 0 <= y < 2**z):
            raise InvalidInput(f"tile {z}/{x}/{y} does not exist", field="x/y", fix=f"x and y are 0 to {2**z - 1}")
        key = (z, x, y)
        with self._read() as sa:
            self._fresh(sa)
            with self._lock:
                if key in self._tiles:
                    self._tiles.move_to_end(key)
                    return self._tiles[key]
            tile = registry_sql.building_tile(sa, z, x, y, self.scope)
        with self._lock:
            self._tiles[key] = tile
            while len(self._tiles) > p.tile_cache_tiles:
                self._tiles.popitem(last=False)
        return tile

    def boundaries(self) -> gpd.GeoDataFrame:
        """The street, its communities and the district(s) around it (current boundaries)."""
        with self._read() as sa:
            self._fresh(sa)
            with self._lock:
                if "boundaries" in self._static:
                    return self._static["boundaries"]
            gdf = areas_sql.boundaries(sa, self.street)
        with self._lock:
            self._static["boundaries"] = gdf
        return gdf

    def grids(self, at: dt.datetime | None = None) -> gpd.GeoDataFrame:
        """Grids with ``open_events`` and a ``safety_index`` (0–100, higher is safer).

        The index weighs two things, each against the street itself: the events of the last
        ``safety_window_days`` (severity-weighted, per 1,000 residents; a grid at or above the street's
        90th percentile loses all 70 points of this part) and key places without a smart fire alarm
        (5 or more lose all 30 points).
        """
        now = _aware(at)
        since = now - dt.timedelta(days=self.policy.safety_window_days)
        with self._read() as sa:
            self._fresh(sa)
            with self._lock:
                shapes = self._static.get("grids")
            if shapes is None:  # population and key places change only with a load: cached
                shapes = areas_sql.grid_shapes(sa, self.street)
                with self._lock:
                    self._static["grids"] = shapes
            live = metrics_sql.grid_events(sa, now=now, since=since, street=self.scope)
        df = shapes.merge(live, on="code", how="left")
        df[["open_events", "recent_weighted"]] = df[["open_events", "recent_weighted"]].fillna(0).astype(int)
        df = df[["code", "name", "name_zh", "community_code", "residents", "open_events", "recent_weighted",
                 "key_places_unprotected", "geometry"]]
        load = df["recent_weighted"] / np.maximum(df["residents"], 200) * 1000.0
        p90 = float(np.percentile(load, 90)) if len(load) else 0.0
        load_part = np.minimum(load / p90, 1.0) if p90 > 0 else np.zeros(len(df))
        places_part = np.minimum(df["key_places_unprotected"] / 5.0, 1.0)
        df["safety_index"] = np.round(100.0 - 70.0 * load_part - 30.0 * places_part, 1)
        return gpd.GeoDataFrame(df, geometry="geometry", crs=CRS)

    def equipment(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        with self._read() as sa:
            df = registry_sql.equipment_in_view(sa, check_bbox(bbox), limit=self.policy.max_equipment,
                                                street=self.scope)
        return _points(df)

    def teams(self, bbox: BBox | None = None, at: dt.datetime | None = None) -> gpd.GeoDataFrame:
        """Teams with ``state``: their status, or ``stale`` when the last position is too old."""
        now = _aware(at)
        with self._read() as sa:
            df = teams_sql.teams_in_view(sa, check_bbox(bbox), limit=self.policy.max_teams,
                                         street=self.scope)
        df["age_s"] = _seconds(now, df["position_at"]).round(0)
        stale = (df["age_s"].isna() | (df["age_s"] > self.policy.stale_after_s)) & (df["status"] != "off_duty")
        df["state"] = np.where(stale, "stale", df["status"])
        df["event_id"] = df["event_id"].astype("Int64")
        return _points(df)

    def _overdue(self, now: dt.datetime, df: pd.DataFrame) -> pd.Series:
        age = _seconds(now, df["reported_at"])
        onsite = df["severity"].map(self.policy.onsite_sla_s).fillna(3600.0)
        resolve = df["severity"].map(self.policy.resolve_sla_s).fillna(86400.0)
        before_site = df["status"].isin(["reported", "dispatched", "accepted"])
        on_site = df["status"] == "on_site"
        return (before_site & (age > onsite)) | (on_site & (age > resolve))

    def events(self, bbox: BBox | None = None, at: dt.datetime | None = None) -> gpd.GeoDataFrame:
        """Open events (and recently resolved ones) with ``age_s`` and ``overdue``."""
        now = _aware(at)
        with self._read() as sa:
            df = events_sql.events_in_view(sa, check_bbox(bbox), now=now,
                                           resolved_since=now - dt.timedelta(hours=self.policy.resolved_visible_h),
                                           limit=self.policy.max_events, street=self.scope)
            _redact_titles(sa, df)
        df["age_s"] = _seconds(now, df["reported_at"]).round(0)
        df["overdue"] = self._overdue(now, df)
        return _points(df)

    def routes(self, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        """Road routes of the active dispatches (offered or accepted)."""
        with self._read() as sa:
            return assignments_sql.routes_in_view(sa, check_bbox(bbox), limit=self.policy.max_routes,
                                                  street=self.scope)

    def buildings(self, area: str | None = None, bbox: BBox | None = None) -> gpd.GeoDataFrame:
        """Buildings with resident and business counts, for a notebook (the page uses tiles)."""
        if self.scope is not None and area is None:
            area = self.scope
        with self._read() as sa:
            gdf = layers_sql.select_layer(sa, layer_spec("buildings"), areas_sql.AreaFilter(area=area, bbox=check_bbox(bbox)))
            counts = registry_sql.building_counts(sa, [int(i) for i in gdf["id"]])
        gdf = gdf.merge(counts, on="id", how="left")
        gdf[["residents", "businesses"]] = gdf[["residents", "businesses"]].fillna(0).astype(int)
        gdf["height"] = gdf["height_m"].fillna(gdf["floors"] * 3.0)
        return gdf

    # -- drill-down -------------------------------------------------------------------------------------
    def _responders(self) -> Dispatcher:
        """The dispatch service, built once and refreshed every few minutes (equipment status)."""
        from gridmap.services.dispatch import Dispatcher

        if self._shared_dispatcher is not None:
            return self._shared_dispatcher
        if self._parent is not None:
            return self._parent._responders()
        with self._lock:
            if self._dispatcher is None or time.monotonic() - self._dispatcher_at > self.policy.responder_cache_s:
                self._dispatcher = Dispatcher.from_database(self.engine)
                self._dispatcher_at = time.monotonic()
            return self._dispatcher

    def nearest_responder(self, lon: float, lat: float, at: dt.datetime | None = None) -> dict | None:
        """The in-service micro fire station or truck with the shortest road ETA to (lon, lat), and its route
        (in a confined view: the nearest of the dispatcher's picks that belongs to the street)."""
        try:
            responders = self._responders()
        except NotFound:  # no road network loaded: no road ETA to give
            return None
        if responders is None:
            return None
        rec = responders.recommend(lon, lat, k=1, with_equipment=True, now=_aware(at))
        found = rec.equipment.get("responders") or []
        if not found:
            return None
        with self._read() as sa:
            known = registry_sql.equipment_by_codes(sa, [f["team"] for f in found], self.scope)
        found = [f for f in found if f["team"] in known] if self.scope is not None else found
        if not found:
            return None
        best = found[0]
        info = known.get(best["team"], {})
        return {"code": best["team"], "kind": best.get("kind") or info.get("kind"), "name": info.get("name"),
                "status": info.get("status"), "eta_s": best["eta_s"], "distance_m": best["distance_m"],
                "method": best["method"], "route": best["route"]}

    def building(self, code: str, at: dt.datetime | None = None) -> dict:
        """Address, resident COUNT, businesses inside and the nearest responder (no personal data)."""
        with self._read() as sa:
            bid = registry_sql.building_id_by_code(sa, code, self.scope)
            if bid is None:
                raise NotFound(f"no building {code!r}{self._where()}", field="code", fix="pick a building on the map")
            b = registry_sql.building(sa, bid)
            assert b is not None  # found by its code just above
            biz = registry_sql.businesses_in(sa, bid, limit=self.policy.max_businesses)
            total = registry_sql.business_count(sa, bid)
        b["businesses"] = biz.to_dict("records")
        b["businesses_total"] = total
        b["nearest_responder"] = self.nearest_responder(b["lon"], b["lat"], at)
        return b

    def event(self, event_id: int, at: dt.datetime | None = None) -> dict:
        """An event with its timeline, team, current assignment (ETA, route) and overdue flag."""
        now = _aware(at)
        with self._read() as sa:
            e = events_sql.event_card(sa, event_id, self.scope)
            if e is None:
                raise NotFound(f"no event {event_id}{self._where()}", field="event_id", fix="pick an event on the map")
            asg = assignments_sql.assignments_of_event(sa, event_id)
            _redact_title(sa, e)
        timeline = [{"at": e[k], "what": k.removesuffix("_at").replace("_", " ")}
                    for k in ("reported_at", "dispatched_at", "accepted_at", "on_site_at", "resolved_at", "closed_at")
                    if e[k] is not None]
        a: Any  # a frame's row: one attribute per column (pandas cannot type them)
        for a in asg.itertuples():
            timeline.append({"at": a.offered_at, "what": f"offered to {a.team} (ETA {a.eta_s or 0:.0f} s)"})
            if a.responded_at is not None and not pd.isna(a.responded_at):
                timeline.append({"at": a.responded_at, "what": f"{a.team}: {a.status}"})
        timeline.sort(key=lambda t: pd.Timestamp(t["at"]))
        active = asg[asg["status"].isin(["offered", "accepted"])]
        current = active.iloc[-1] if len(active) else (asg.iloc[-1] if len(asg) else None)
        e["timeline"] = timeline
        e["assignment"] = None if current is None else {
            "id": int(current["id"]), "team": current["team"], "status": current["status"],
            "eta_s": current["eta_s"], "distance_m": current["distance_m"],
            "route": current["route"]}
        e["age_s"] = (now - e["reported_at"]).total_seconds()
        e["overdue"] = bool(self._overdue(now, pd.DataFrame([e])).iloc[0])
        return e

    def team(self, code: str, at: dt.datetime | None = None) -> dict:
        """A team, its state and its current assignment (event, ETA, route)."""
        now = _aware(at)
        with self._read() as sa:
            t = teams_sql.team_card(sa, code, self.scope)
            if t is None:
                raise NotFound(f"no team {code!r}{self._where()}", field="code", fix="pick a team on the map")
            a = assignments_sql.team_current(sa, t["id"], self.scope)
            if a is not None:
                _redact_title(sa, a, "event_id")
        age = None if t["position_at"] is None else (now - t["position_at"]).total_seconds()
        stale = t["status"] != "off_duty" and (age is None or age > self.policy.stale_after_s)
        t["age_s"] = age
        t["state"] = "stale" if stale else t["status"]
        t["assignment"] = a
        return t

    # -- side panel -------------------------------------------------------------------------------------
    def summary(self, at: dt.datetime | None = None) -> dict:
        """Headline figures and the open-events list (state, age, overdue), most urgent first."""
        now = _aware(at)
        day_start = now.astimezone(LOCAL_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
        period_start = now - dt.timedelta(days=self.policy.closure_period_days)
        with self._read() as sa:
            unplaced = self.scope is None  # events placed in no street: only on the unconfined screen
            fig = metrics_sql.figures(sa, self.street, now=now, day_start=day_start, period_start=period_start,
                                      unplaced=unplaced)
            df = events_sql.open_events(sa, self.street, now=now, limit=self.policy.max_panel_events, unplaced=unplaced)
            _redact_titles(sa, df)
        df["age_s"] = _seconds(now, df["reported_at"]).round(0)
        df["overdue"] = self._overdue(now, df)
        df = df.sort_values(["overdue", "severity", "age_s"], ascending=[False, False, False])
        closure = fig["closed_period"] / fig["reported_period"] if fig["reported_period"] else None
        return {
            "now": now.isoformat(),
            "figures": {"open_events": int(fig["open_events"]),
                        "median_response_s_today": fig["median_response_s_today"],
                        "reported_today": int(fig["reported_today"]), "closure_rate": closure,
                        "closure_period_days": self.policy.closure_period_days,
                        "overdue": int(df["overdue"].sum())},
            "events": df.to_dict("records"),
        }
