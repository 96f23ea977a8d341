"""Teams in the field: position reports (single and batched), status, the list an operator sees.

Positions go through the :class:`~gridmap.services.dispatch.Dispatcher` (database first, then its cache).
A grid worker or volunteer reports only for their own team; an operator for the teams of their area (a
district's streets, a street, or a community: the teams whose home grid lies there).

A fix must be plausible before it moves a team:

* **where**: within ``area_tolerance_m`` (2 km) of the managed area — the current street polygons in the
  database (the configured ``area_bbox`` when there are none). Anything else (0,0; London; lat/lon swapped)
  is refused with a 422 that names the fix and says what to send; the batch is all or nothing, as for every
  other bad value in it.
* **how fast**: a fix implying a speed above ``max_speed_kmh`` (150 km/h: no road vehicle in a city) from the
  team's last accepted fix is a GPS glitch or a spoof. It is reported back as *flagged* and used for nothing:
  the stored position (the dispatcher's source, which the database also announces to the other API
  processes) and the dispatch index keep the last plausible fix, so a glitch never sends the wrong team and
  never hides the right one. The team is not stuck: the allowed distance grows with the time since its last
  accepted fix, so a real move is accepted within minutes (10 km after 4 minutes), and meanwhile the team
  turns stale (5 minutes) like any team that has not reported. GPS noise (``jitter_m``, plus the fix's own
  ``accuracy_m`` when the phone sends it) is never counted as movement.

Each accepted fix's accuracy is kept beside the position (``teams.position_accuracy_m``), and every flagged fix
is recorded in ``team_fix_flags`` (who sent it, where, how fast it implied): a spoofing phone leaves a trail.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely
from sqlalchemy import Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.config import HANGZHOU_BBOX, MEASURE_CRS
from gridmap.core.crs import gcj02_to_wgs84, transformer
from gridmap.core.vocabulary import ACTIVE_ASSIGNMENT_STATUSES, WGS84
from gridmap.errors import Conflict, DatabaseError, Forbidden, InvalidInput, NotFound
from gridmap.services.auth import Principal
from gridmap.storage import areas as areas_sql
from gridmap.storage import assignments as assignments_sql
from gridmap.storage import teams as teams_sql

if TYPE_CHECKING:
    from gridmap.services.dispatch import Dispatcher

log = logging.getLogger(__name__)


@dataclass
class PositionPolicy:
    """When a team's fix is refused (outside the area) or flagged (an implausible jump)."""

    area_tolerance_m: float = 2000.0
    max_speed_kmh: float = 150.0
    jitter_m: float = 50.0
    #: how long the managed area (the street polygons) is cached before it is read again
    area_ttl_s: float = 600.0


@dataclass
class _Area:
    zone: shapely.Geometry | None  # EPSG:4549, buffered by the tolerance, prepared; None: use the bbox
    streets: list[str]
    read_at: float


class TeamService:
    def __init__(self, engine: Engine, dispatcher: Dispatcher | None, clock: Callable[[], dt.datetime], *,
                 policy: PositionPolicy | None = None,
                 area_bbox: tuple[float, float, float, float] = HANGZHOU_BBOX) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.clock = clock
        self.policy = policy or PositionPolicy()
        self.area_bbox = area_bbox
        self._area: _Area | None = None
        self._area_lock = threading.Lock()

    def _need_dispatcher(self) -> Dispatcher:
        if self.dispatcher is None:
            raise DatabaseError("positions and team status need the road network, which is not loaded",
                                field="road_edges", fix="load it (gridmap sample load, or gridmap load road_edges)")
        return self.dispatcher

    def _check_scope(self, session: Session, p: Principal, codes: list[str]) -> dict:
        """Refuse what ``p`` may not report for; returns the teams (code -> row with street and last fix)."""
        if not p.is_team and p.role not in ("admin", "operator"):
            raise Forbidden(f"role {p.role!r} does not report team positions", field="role",
                            fix="the team's phone or an operator does")
        if p.is_team:
            other = sorted(set(codes) - {p.team_code})
            if other:
                raise Forbidden(f"you may report only for your team {p.team_code}, not {', '.join(other[:5])}",
                                field="team", fix=f"send team={p.team_code}")
        with session.begin():
            rows = {r["code"]: r for r in teams_sql.teams_in_street(session.connection(), None, sorted(set(codes)))}
        unknown = sorted(set(codes) - set(rows))
        if unknown:
            raise NotFound(f"unknown team(s) {', '.join(unknown[:5])}", field="team", fix="check the codes")
        if p.role == "operator":
            outside = sorted(c for c, r in rows.items() if not p.covers(r["street_code"], r["community_code"]))
            if outside:
                where = p.scope.describe() if p.scope is not None else "your area"
                raise Forbidden(f"team(s) {', '.join(outside[:5])} are outside {where}",
                                field="team", fix="report only for the teams of your area")
        return rows

    # -- plausibility ---------------------------------------------------------------------------
    def managed_area(self, session: Session | None = None) -> _Area:
        """The current street polygons, buffered by the tolerance (EPSG:4549), cached for ``area_ttl_s``."""
        a = self._area
        if a is not None and time.monotonic() - a.read_at < self.policy.area_ttl_s:
            return a
        with self._area_lock:
            if session is None:
                with Session(self.engine) as s, s.begin():
                    rows = areas_sql.current_streets(s.connection())
            else:
                with session.begin():
                    rows = areas_sql.current_streets(session.connection())
            zone = None
            if len(rows):
                t = transformer(WGS84, MEASURE_CRS)
                geoms = rows.geometry.to_numpy()
                local = shapely.transform(geoms, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))
                zone = shapely.buffer(shapely.union_all(local), self.policy.area_tolerance_m, quad_segs=4)
                shapely.prepare(zone)
            self._area = _Area(zone, list(rows["code"]), time.monotonic())
            return self._area

    def _check_area(self, session: Session, fixes: list[dict], field: Callable[[int, str], str]) -> None:
        """Refuse (422) the first fix that lies outside the managed area and its tolerance."""
        lon = np.array([f["lon"] for f in fixes], dtype=float)
        lat = np.array([f["lat"] for f in fixes], dtype=float)
        area = self.managed_area(session)
        if area.zone is None:
            minx, miny, maxx, maxy = self.area_bbox
            inside = (lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)
            swapped = (lat >= minx) & (lat <= maxx) & (lon >= miny) & (lon <= maxy)
            where = f"the configured area (lon {minx}..{maxx}, lat {miny}..{maxy})"
        else:
            t = transformer(WGS84, MEASURE_CRS)
            x, y = t.transform(lon, lat)
            sx, sy = t.transform(lat, lon)
            inside = shapely.contains_xy(area.zone, x, y)
            swapped = shapely.contains_xy(area.zone, sx, sy)
            km = self.policy.area_tolerance_m / 1000
            names = ", ".join(area.streets[:5]) + (" ..." if len(area.streets) > 5 else "")
            where = f"the managed area (street {names}, and {km:g} km around it)"
        bad = np.flatnonzero(~inside)
        if len(bad) == 0:
            return
        i = int(bad[0])
        more = f" (and {len(bad) - 1} more fix(es) of this batch)" if len(bad) > 1 else ""
        if swapped[i]:
            fix = f"send longitude first: lon={lat[i]}, lat={lon[i]}"
        else:
            fix = ("check the phone's location fix (WGS84 degrees; coords='gcj02' for Amap/Tencent); a team "
                   "reports only from where it works")
        raise InvalidInput(f"team {fixes[i]['team']}'s fix ({lon[i]}, {lat[i]}) is outside {where}{more}",
                           field=field(fixes[i]["index"], "lon/lat"), fix=fix)

    def _flag_jumps(self, fixes: list[dict], last: dict) -> list[dict]:
        """Flag the fixes that imply an implausible speed from the team's last accepted fix (``last``: code ->
        (lon, lat, at) or None). Fixes of a team are judged in time order; an accepted one becomes the next
        fix's reference. A fix not newer than the stored one is left to the dispatcher (which ignores it)."""
        pol = self.policy
        t = transformer(WGS84, MEASURE_CRS)
        lon = np.array([f["lon"] for f in fixes], dtype=float)
        lat = np.array([f["lat"] for f in fixes], dtype=float)
        xs, ys = t.transform(lon, lat)
        known = [c for c, prev in last.items() if prev is not None]
        px, py = t.transform(np.array([last[c][0] for c in known], dtype=float),
                             np.array([last[c][1] for c in known], dtype=float))
        ref: dict[str, tuple[float, float, dt.datetime] | None] = {
            c: (float(x), float(y), last[c][2]) for c, x, y in zip(known, px, py, strict=True)}
        flagged = []
        for j in sorted(range(len(fixes)), key=lambda j: (fixes[j]["team"], fixes[j]["at"])):
            f = fixes[j]
            r = ref.get(f["team"])
            if r is not None and f["at"] <= r[2]:
                continue  # older than the accepted fix: the dispatcher ignores it
            if r is not None:
                dist = float(np.hypot(xs[j] - r[0], ys[j] - r[1]))
                secs = (f["at"] - r[2]).total_seconds()
                slack = pol.jitter_m + (f.get("accuracy_m") or 0.0)
                kmh = max(dist - slack, 0.0) / max(secs, 1.0) * 3.6
                if kmh > pol.max_speed_kmh:
                    f["flag"] = {"index": f["index"], "team": f["team"], "at": f["at"], "speed_kmh": round(kmh, 1),
                                 "distance_m": round(dist, 1), "seconds": round(secs, 1),
                                 "reason": f"{dist / 1000:.2f} km in {secs:.0f} s since the team's last accepted fix "
                                           f"({kmh:.0f} km/h, more than {pol.max_speed_kmh:.0f} km/h): a GPS glitch? "
                                           "Not used; the team stays at its last plausible position"}
                    flagged.append(f["flag"])
                    continue
            ref[f["team"]] = (float(xs[j]), float(ys[j]), f["at"])
        return flagged

    def report_positions(self, session: Session, p: Principal, positions: list[dict], *,
                         single: bool = False) -> dict:
        """Record positions (single or batched): refuse fixes outside the managed area, flag implausible jumps
        (not used), and store the rest; a fix older than the stored one is ignored."""
        d = self._need_dispatcher()

        def field(i: int, name: str) -> str:
            return name if single else f"positions[{i}].{name}"

        rows = self._check_scope(session, p, [q["team"] for q in positions])
        now = self.clock()
        fixes = []
        for i, q in enumerate(positions):
            lon, lat, at = q["lon"], q["lat"], q.get("at") or now
            if at.tzinfo is None:
                raise InvalidInput(f"{field(i, 'at')} {at.isoformat()} has no time zone", field=field(i, "at"),
                                   fix="send ISO 8601 with an offset")
            if at > now + dt.timedelta(minutes=5):
                raise InvalidInput(f"{field(i, 'at')} {at.isoformat()} is in the future", field=field(i, "at"),
                                   fix="send the time of the fix (check the phone's clock)")
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                fix = "send longitude first" if -90 <= lon <= 90 and -180 <= lat <= 180 else "send WGS84 degrees"
                raise InvalidInput(f"({lon}, {lat}) is not lon/lat", field=field(i, "lon/lat"), fix=fix)
            if q.get("coords") == "gcj02":
                x, y = gcj02_to_wgs84(lon, lat)
                lon, lat = float(x), float(y)
            fixes.append({"index": i, "team": q["team"], "lon": lon, "lat": lat, "at": at,
                          "accuracy_m": q.get("accuracy_m")})
        self._check_area(session, fixes, field)
        last = {c: None if r["position_at"] is None or r["lon"] is None else (r["lon"], r["lat"], r["position_at"])
                for c, r in rows.items()}
        flagged = self._flag_jumps(fixes, last)
        for f in flagged:
            log.warning("team %s: implausible fix at %s (%s km/h over %s m): not used", f["team"], f["at"],
                        f["speed_kmh"], f["distance_m"])
        updates = [(f["team"], f["lon"], f["lat"], f["at"]) for f in fixes if "flag" not in f]
        updated = d.report_positions(updates) if updates else 0
        with session.begin():  # the accuracy of the fixes that became positions, and the flagged ones
            conn = session.connection()
            teams_sql.save_accuracy(conn, [(f["team"], f["accuracy_m"], f["at"]) for f in fixes if "flag" not in f])
            teams_sql.insert_flags(conn, [{**f["flag"], "lon": f["lon"], "lat": f["lat"], "accuracy_m": f["accuracy_m"]}
                                          for f in fixes if "flag" in f], p.username)
        return {"received": len(fixes), "updated": updated, "flagged": sorted(flagged, key=lambda f: f["index"])}

    def set_status(self, session: Session, p: Principal, code: str, status: str) -> dict:
        """A team goes on or off duty; 'assigned' and 'on_site' follow from its assignments."""
        self._check_scope(session, p, [code])
        with session.begin():
            conn = session.connection()
            team = teams_sql.team(conn, code)
            if team is None:
                raise NotFound(f"unknown team {code!r}", field="team", fix="check the code")
            busy = assignments_sql.team_assignments(conn, team["id"], ACTIVE_ASSIGNMENT_STATUSES, 1)
        if busy:
            raise Conflict(f"team {code} holds assignment {busy[0]['id']} ({busy[0]['status']})", field="status",
                           fix="resolve, decline or hand up the assignment first")
        self._need_dispatcher().set_team_status(code, status)
        return self.get(session, p, code)

    def get(self, session: Session, p: Principal, code: str) -> dict:
        with session.begin():
            row = teams_sql.team(session.connection(), code)
        if row is None:
            raise NotFound(f"unknown team {code!r}", field="team", fix="check the code")
        if p.is_team and code != p.team_code:
            raise Forbidden(f"team {code} is not yours", field="team", fix=f"read your own team {p.team_code}")
        if p.role in ("planner", "intake"):
            raise Forbidden(f"role {p.role!r} does not read teams", field="role", fix="use the teams layer (/layers/teams)")
        if p.role == "unit":
            raise Forbidden(f"role {p.role!r} does not read teams", field="role", fix="read your unit's inbox")
        p.check_street(row["street_code"], f"team {code}", row["community_code"])
        return _team_out(row)

    def list(self, session: Session, p: Principal) -> list[dict]:
        p.require("admin", "operator", what="list teams")
        with session.begin():
            rows = teams_sql.teams_in_street(session.connection(), (p.area or "-") if p.role == "operator" else None)
        return [_team_out(r) for r in rows]


def _team_out(r: RowMapping) -> dict:
    return {"code": r["code"], "name": r["name"], "kind": r["kind"], "status": r["status"], "skills": list(r["skills"]),
            "home_grid": r["home_grid_code"], "street": r["street_code"], "position_at": r["position_at"],
            "lon": r["lon"], "lat": r["lat"]}
