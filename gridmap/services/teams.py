"""Teams in the field: position reports (single and batched), status, the list an operator sees.

Positions go through the :class:`~gridmap.services.dispatch.Dispatcher` (database first, then its cache).
A grid worker or volunteer reports only for their own team; an operator for the teams of their street.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from gridmap.core.crs import gcj02_to_wgs84
from gridmap.errors import Conflict, DatabaseError, Forbidden, InvalidInput, NotFound
from gridmap.services.auth import Principal
from gridmap.storage import events_sql as sql


class TeamService:
    def __init__(self, engine: Engine, dispatcher, clock: Callable[[], dt.datetime]) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.clock = clock

    def _need_dispatcher(self):
        if self.dispatcher is None:
            raise DatabaseError("positions and team status need the road network, which is not loaded",
                                field="road_edges", fix="load it (gridmap sample load, or gridmap load road_edges)")
        return self.dispatcher

    def _check_scope(self, session: Session, p: Principal, codes: list[str]) -> None:
        if p.role == "admin":
            return
        if p.is_team:
            other = sorted(set(codes) - {p.team_code})
            if other:
                raise Forbidden(f"you may report only for your team {p.team_code}, not {', '.join(other[:5])}",
                                field="team", fix=f"send team={p.team_code}")
            return
        if p.role != "operator":
            raise Forbidden(f"role {p.role!r} does not report team positions", field="role",
                            fix="the team's phone or an operator does")
        with session.begin():
            rows = {r["code"]: r for r in sql.teams_in_street(session.connection(), None, sorted(set(codes)))}
        unknown = sorted(set(codes) - set(rows))
        if unknown:
            raise NotFound(f"unknown team(s) {', '.join(unknown[:5])}", field="team", fix="check the codes")
        outside = sorted(c for c, r in rows.items() if r["street_code"] != p.street)
        if outside:
            raise Forbidden(f"team(s) {', '.join(outside[:5])} are outside your street {p.street}", field="team",
                            fix="report only for the teams of your street")

    def report_positions(self, session: Session, p: Principal, positions: list[dict]) -> dict:
        """Record positions (single or batched); a fix older than the stored one is ignored."""
        d = self._need_dispatcher()
        self._check_scope(session, p, [q["team"] for q in positions])
        now = self.clock()
        updates = []
        for i, q in enumerate(positions):
            lon, lat, at = q["lon"], q["lat"], q.get("at") or now
            if at.tzinfo is None:
                raise InvalidInput(f"positions[{i}].at {at.isoformat()} has no time zone", field=f"positions[{i}].at",
                                   fix="send ISO 8601 with an offset")
            if at > now + dt.timedelta(minutes=5):
                raise InvalidInput(f"positions[{i}].at {at.isoformat()} is in the future", field=f"positions[{i}].at",
                                   fix="send the time of the fix (check the phone's clock)")
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                fix = "send longitude first" if -90 <= lon <= 90 and -180 <= lat <= 180 else "send WGS84 degrees"
                raise InvalidInput(f"positions[{i}] ({lon}, {lat}) is not lon/lat", field=f"positions[{i}].lon/lat",
                                   fix=fix)
            if q.get("coords") == "gcj02":
                x, y = gcj02_to_wgs84(lon, lat)
                lon, lat = float(x), float(y)
            updates.append((q["team"], lon, lat, at))
        return {"received": len(updates), "updated": d.report_positions(updates)}

    def set_status(self, session: Session, p: Principal, code: str, status: str) -> dict:
        """A team goes on or off duty; 'assigned' and 'on_site' follow from its assignments."""
        self._check_scope(session, p, [code])
        with session.begin():
            conn = session.connection()
            team = sql.team(conn, code)
            if team is None:
                raise NotFound(f"unknown team {code!r}", field="team", fix="check the code")
            busy = sql.team_assignments(conn, team["id"], ("offered", "accepted"), 1)
        if busy:
            raise Conflict(f"team {code} holds assignment {busy[0]['id']} ({busy[0]['status']})", field="status",
                           fix="resolve, decline or hand up the assignment first")
        self._need_dispatcher().set_team_status(code, status)
        return self.get(session, p, code)

    def get(self, session: Session, p: Principal, code: str) -> dict:
        with session.begin():
            row = sql.team(session.connection(), code)
        if row is None:
            raise NotFound(f"unknown team {code!r}", field="team", fix="check the code")
        if p.is_team and code != p.team_code:
            raise Forbidden(f"team {code} is not yours", field="team", fix=f"read your own team {p.team_code}")
        if p.role in ("planner", "intake"):
            raise Forbidden(f"role {p.role!r} does not read teams", field="role", fix="use the teams layer (/layers/teams)")
        p.check_street(row["street_code"], f"team {code}")
        return _team_out(row)

    def list(self, session: Session, p: Principal) -> list[dict]:
        p.require("admin", "operator", what="list teams")
        with session.begin():
            rows = sql.teams_in_street(session.connection(), p.street if p.role == "operator" else None)
        return [_team_out(r) for r in rows]


def _team_out(r) -> dict:
    return {"code": r["code"], "name": r["name"], "kind": r["kind"], "status": r["status"], "skills": list(r["skills"]),
            "home_grid": r["home_grid_code"], "street": r["street_code"], "position_at": r["position_at"],
            "lon": r["lon"], "lat": r["lat"]}
