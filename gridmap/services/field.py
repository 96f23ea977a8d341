"""The field app's use cases: a device session for a team's phone, what the app needs to start (its team,
categories, ladders, the map's version), the street's map as compact vector data, and the team's answers and
photos made idempotent (each carries an ``Idempotency-Key``; see :mod:`gridmap.services.idempotency`).

A device session is a session of kind ``device`` (:mod:`gridmap.services.auth`): it ends on logout, on
deactivation and on a change of role, street or team member like every other, and only the team roles
(grid_worker, volunteer) may open one; anyone else's login is ended at once and refused (403).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.errors import Forbidden, GridmapError, NotFound
from gridmap.services.auth import AuthService, Client, Principal
from gridmap.services.events import EventService
from gridmap.services.idempotency import Answer, Idempotency, Mark
from gridmap.services.photos import PhotoService
from gridmap.storage import areas as areas_sql
from gridmap.storage import escalation as escalation_sql
from gridmap.storage import events as events_sql
from gridmap.storage import roads as roads_sql
from gridmap.storage import teams as teams_sql

#: what the app says about positions, on screen and in its context
BACKGROUND_NOTICE = ("网页应用无法在后台上报位置：锁屏或切换应用后位置共享会暂停。 A web app cannot report its position in "
                     "the background: sharing pauses while the screen is off or another app is in front.")
MAP_TTL_S = 600.0


@dataclass(frozen=True)
class MapData:
    street: str
    etag: str
    raw: bytes
    gz: bytes
    built: float


class FieldService:
    def __init__(self, engine: Engine, auth: AuthService, events: EventService, photos: PhotoService,
                 idempotency: Idempotency, clock: Callable[[], dt.datetime]) -> None:
        self.engine = engine
        self.auth = auth
        self.events = events
        self.photos = photos
        self.idempotency = idempotency
        self.clock = clock
        self._maps: dict[str, MapData] = {}
        self._lock = threading.Lock()

    # -- the device session -------------------------------------------------------------------------------
    def login(self, session: Session, username: str, password: str, client: Client) -> tuple[str, dt.datetime,
                                                                                            Principal]:
        token, expires, p = self.auth.login(session, username, password, self.clock(), kind="device", client=client)
        if not p.is_team:
            if p.session_id:
                self.auth.logout(session, p.session_id, self.clock(), "no field app for this role")
            raise Forbidden(f"role {p.role!r} has no field app", field="role",
                            fix="the field app is for grid workers and volunteers; the command centre is at /dashboard")
        return token, expires, p

    # -- what the app starts with ----------------------------------------------------------------------
    def _street_of(self, conn: Connection, p: Principal) -> str:
        if p.is_team:
            team = teams_sql.team_row(conn, p.team_id) if p.team_id is not None else None
            street = areas_sql.street_of_grid(conn, team["home_grid_code"] if team else None)
            if street is None and p.grids:
                street = areas_sql.street_of_grid(conn, p.grids[0])
        elif p.role == "operator":  # a preview of their street's (a community's street, a district's first)
            street = areas_sql.street_of_area(conn, p.area)
        elif p.role == "admin":
            street = next(iter(areas_sql.streets(conn)), None)
        else:
            raise Forbidden(f"role {p.role!r} has no field map", field="role",
                            fix="the field app is for grid workers and volunteers")
        if street is None:
            raise NotFound("the team's home grid lies in no current street", field="team",
                           fix="ask an admin to check the team's home grid")
        return street

    def context(self, session: Session, p: Principal) -> dict[str, Any]:
        with session.begin():
            conn = session.connection()
            street = self._street_of(conn, p)
            team = teams_sql.team_row(conn, p.team_id) if p.team_id is not None else None
            cats = events_sql.categories(conn)
            ladders = escalation_sql.ladders(conn)
            extent = areas_sql.street_extent(conn, street)
        md = self.map_data(p, street=street)
        ladder: dict[str, list[dict[str, Any]]] = {}
        for r in ladders:
            ladder.setdefault(r["category"], []).append({"rung": r["rung"], "name": r["name"], "name_zh": r["name_zh"],
                                                          "time_limit_min": r["time_limit_min"]})
        return {
            "user": {"username": p.username, "role": p.role},
            "team": None if team is None else _team_out(team),
            "street": street, "extent": extent,
            "categories": {c["code"]: {"name": c["name"], "name_zh": c["name_zh"]} for c in cats},
            "ladders": ladder,
            "map": {"url": "/v1/field/map", "version": md.etag},
            "position_every_s": 30, "notice": BACKGROUND_NOTICE,
        }

    def map_data(self, p: Principal, *, street: str | None = None) -> MapData:
        """The street's roads and buildings (GeoJSON, gzip'd too), built once per street and kept 10 minutes."""
        if street is None:
            with Session(self.engine) as s, s.begin():
                street = self._street_of(s.connection(), p)
        with self._lock:
            md = self._maps.get(street)
            if md is not None and time.monotonic() - md.built < MAP_TTL_S:
                return md
        with Session(self.engine) as s, s.begin():
            text = roads_sql.street_map_geojson(s.connection(), street)
        raw = text.encode()
        md = MapData(street, hashlib.sha256(raw).hexdigest()[:16], raw, gzip.compress(raw, 6), time.monotonic())
        with self._lock:
            self._maps[street] = md
        return md

    # -- answers and photos, idempotent --------------------------------------------------------------------
    def respond(self, session: Session, p: Principal, assignment_id: int, action: str, *, note: str | None,
                lon: float | None, lat: float | None, key: str | None, fingerprint: str,
                shape: Callable[[dict[str, Any]], Any], status_of: Callable[[GridmapError], int]) -> Answer:
        """A team's answer (accept, decline, arrive, resolve, hand_up) applied once per key. A resolve or hand-up
        takes the photos uploaded for the assignment since its last answer (named in its audit row).
        ``shape`` turns the service's answer into the JSON the API sends (the same, stored, on a replay)."""

        def run(mark: Mark) -> Any:
            def within(conn: Connection, _a: RowMapping) -> None:
                mark(conn)
                self.photos.attach_pending(conn, assignment_id, action)

            out = self.events.respond(session, p, assignment_id, action, note=note, lon=lon, lat=lat, within=within)
            return shape(out)

        def recover() -> Any:  # the answer was lost after the action committed: the state it left
            a = self.events.assignment(session, p, assignment_id)
            return shape({"assignment": a, "event": self.events.get(session, p, a["event"]["id"]), "dispatch": None})

        return self.idempotency.run(session, p, key, fingerprint, run, status_of=status_of, recover=recover)

    def upload_photo(self, session: Session, p: Principal, assignment_id: int, data: bytes, *, key: str | None,
                     status_of: Callable[[GridmapError], int]) -> Answer:
        fingerprint = hashlib.sha256(f"photo:{assignment_id}:".encode() + data).hexdigest()

        def run(mark: Mark) -> Any:
            return self.photos.upload_for_assignment(session, p, assignment_id, data, mark=mark)

        return self.idempotency.run(session, p, key, fingerprint, run, status_of=status_of)


def _team_out(t: RowMapping) -> dict[str, Any]:
    return {"code": t["code"], "name": t["name"], "kind": t["kind"], "status": t["status"],
            "home_grid": t["home_grid_code"], "position_at": t["position_at"],
            "accuracy_m": t["position_accuracy_m"], "lon": t["lon"], "lat": t["lat"]}

