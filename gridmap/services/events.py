"""Events: intake from every channel, placement, near-duplicates, the lifecycle and its audit trail.

Intake (:meth:`EventService.intake`) writes the event, its reporter (personal data, apart) and the first
audit row in ONE transaction and returns only after the commit; the same (channel, external id) again
returns the same event. Dispatch to the nearest team runs after that commit, through the
:class:`~gridmap.services.dispatch.Dispatcher`. Every status change writes an audit row in the same
transaction (a trigger on ``events`` reads who/why/where from :func:`gridmap.storage.events.set_actor`).

Free text (titles, descriptions, addresses, notes in the audit trail) is shown as typed only to roles with
the right to personal data (operators, admins); every other reader gets it through
:func:`gridmap.core.privacy.redact_text`, with the reporter's own name blanked too.

Operators read and act inside their area (a district, a street or a community; the condition comes from
:mod:`gridmap.services.scopes`); unit members read the events that stand or stood at their unit. A call or
walk-in answered on the spot (``Report.answered``) is closed in the intake's own transaction, never
dispatched; a first rung that names a unit (a mall's merchants) puts the event in that unit's inbox.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.config import MEASURE_CRS, Settings
from gridmap.core.crs import transformer
from gridmap.core.lifecycle import is_open, legal_actions, next_status
from gridmap.core.location import check_lonlat
from gridmap.core.privacy import redact_text
from gridmap.core.vocabulary import ANSWERABLE_CHANNELS, LOCAL_TZ, OPEN_EVENT_STATUSES, WGS84
from gridmap.core.vocabulary import CHANNELS as ALL_CHANNELS
from gridmap.errors import Conflict, Forbidden, GridmapError, InvalidInput, NotFound
from gridmap.services import rungs
from gridmap.services import scopes as scope_rules
from gridmap.services.auth import Principal
from gridmap.services.escalation import due_for, escalate_in
from gridmap.storage import assignments as assignments_sql
from gridmap.storage import events as events_sql
from gridmap.storage import people as people_sql
from gridmap.storage import registry as registry_sql
from gridmap.storage import teams as teams_sql
from gridmap.storage import units as units_sql
from gridmap.storage.db import open_pool

if TYPE_CHECKING:
    from gridmap.services.dispatch import Dispatcher

Clock = Callable[[], dt.datetime]
CHANNELS = ALL_CHANNELS
#: which roles may report through which channel (operators also take walk-ins at the centre's one door and the
#: director's public line)
CHANNEL_ROLES = {"admin": CHANNELS, "intake": CHANNELS,
                 "operator": ("hotline_12345", "chat_group", "patrol", "walk_in", "director_hotline"),
                 "grid_worker": ("patrol",), "volunteer": ("patrol",)}


class _Raced(Exception):
    """A concurrent intake committed the same (channel, external id) first."""


def system_clock() -> dt.datetime:
    return dt.datetime.now(LOCAL_TZ)


@dataclass
class IntakePolicy:
    dedup_radius_m: float = 100.0
    dedup_window: dt.timedelta = dt.timedelta(minutes=30)
    max_clock_skew: dt.timedelta = dt.timedelta(minutes=5)
    max_age: dt.timedelta = dt.timedelta(days=30)


@dataclass
class Location:
    lon: float | None = None
    lat: float | None = None
    coords: str = "wgs84"
    building_code: str | None = None
    address: str | None = None
    place_code: str | None = None


@dataclass
class Report:
    channel: str
    external_id: str
    category: str
    location: Location
    severity: int | None = None
    title: str | None = None
    description: str | None = None
    reported_at: dt.datetime | None = None
    reporter_name: str | None = None
    reporter_phone: str | None = None
    dispatch: bool = True
    #: answered on the spot (答复即办结): the answer given; the event is closed at once and never dispatched
    answered: str | None = None

    def fingerprint(self) -> str:
        """A hash of what was reported (everything but ``dispatch``): a retry must send the same.

        The same dict as ``dataclasses.asdict`` gives (the stored hashes of earlier reports must still
        match), built without its deep copy, which cost a fifth of a millisecond per report. ``answered`` is in
        it only when given (so the hashes of reports made before it existed still match).
        """
        d = {f.name: getattr(self, f.name) for f in fields(self)
             if f.name != "dispatch" and (f.name != "answered" or self.answered is not None)}
        d["location"] = {f.name: getattr(self.location, f.name) for f in fields(self.location)}
        d["reported_at"] = self.reported_at.isoformat() if self.reported_at else None
        return hashlib.sha256(json.dumps(d, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass
class IntakeResult:
    event: dict
    created: bool
    dispatch: dict | None = None
    duplicate: dict | None = None
    notes: list[str] = field(default_factory=list)


def _known(names: dict[int, str] | None, event_id: int) -> tuple[str, ...]:
    """The known name(s) of an event's reporter, from :meth:`EventService._names`."""
    return (names[event_id],) if names and event_id in names else ()


R = TypeVar("R")


def _exists(row: R | None) -> R:
    """``row``, read by the id of an event or assignment this request has already seen: they are never deleted."""
    if row is None:
        raise RuntimeError("an event or assignment read a moment ago is gone")
    return row


def _text(value: str | None, clear: bool, names: Sequence[str | None]) -> str | None:
    return value if clear else redact_text(value, names)


def event_out(row: RowMapping | Mapping[str, Any], now: dt.datetime, *, reporter: dict | None = None,
              clear_text: bool = False, names: Sequence[str | None] = ()) -> dict:
    """An event as the API shows it: no personal data unless ``reporter`` is passed; its free text (title,
    description, address) redacted, with the known ``names`` (the reporter's) blanked, unless ``clear_text``
    (for roles with the right to personal data)."""
    overdue = bool(row["due_at"] is not None and is_open(row["status"]) and row["due_at"] < now
                   and row["duplicate_of"] is None)
    out = {
        "id": row["id"], "code": row["code"], "channel": row["channel"], "external_id": row["external_id"],
        "category": row["category"], "severity": row["severity"],
        "title": _text(row["title"], clear_text, names), "description": _text(row["description"], clear_text, names),
        "status": row["status"], "reported_at": row["reported_at"],
        "location": {"lon": row["lon"], "lat": row["lat"], "source": row["location_source"],
                     "address": _text(row["address"], clear_text, names), "place_code": row["place_code"], "building_code": row["building_code"]},
        "area": {"street": row["street_code"], "community": row["community_code"], "grid": row["grid_code"],
                 "grid_area_id": row["grid_area_id"]},
        "team": row["team_code"],
        "duplicate_of": None if row["duplicate_of"] is None else {"id": row["duplicate_of"],
                                                                   "code": row["duplicate_of_code"]},
        "milestones": {k: row[f"{k}_at"] for k in ("dispatched", "accepted", "on_site", "resolved", "closed")},
        "escalation": {"rung": row["escalation_rung"], "level": row["rung_level"], "handler": row["rung_name"],
                       "handler_zh": row["rung_name_zh"], "started_at": row["rung_started_at"],
                       "due_at": row["due_at"], "overdue": overdue, "unit": row.get("unit_code")},
        "outcome": row.get("outcome"),
        "legal_actions": [a for a in legal_actions(row["status"]) if a != "timeout"] if row["duplicate_of"] is None else [],
    }
    if reporter is not None:
        out["reporter"] = reporter
    return out


def assignment_out(row: RowMapping | Mapping[str, Any], *, clear_text: bool = False,
                   names: Sequence[str | None] = ()) -> dict:
    """An assignment for the team's phone: the task, where, how far; no personal data (the event's title and
    address redacted unless ``clear_text``, see :func:`event_out`)."""
    return {
        "id": row["id"], "status": row["status"], "team": row["team_code"], "rank": row["rank"],
        "eta_s": row["eta_s"], "distance_m": row["distance_m"], "method": row["method"],
        "offered_at": row["offered_at"], "respond_by": row["respond_by"], "responded_at": row["responded_at"],
        "route": json.loads(row["route_geojson"]) if row["route_geojson"] else None,
        "event": {"id": row["event_id"], "code": row["event_code"], "category": row["category"],
                  "severity": row["severity"], "title": _text(row["title"], clear_text, names),
                  "status": row["event_status"], "reported_at": row["reported_at"], "lon": row["lon"],
                  "lat": row["lat"], "address": _text(row["address"], clear_text, names),
                  "grid": row["grid_code"]},
    }


class EventService:
    """Use cases on events. Build one per app (it holds the dispatcher and the clock)."""

    def __init__(self, engine: Engine, settings: Settings, dispatcher: Dispatcher | None = None,
                 clock: Clock = system_clock,
                 policy: IntakePolicy | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.dispatcher = dispatcher
        self.clock = clock
        self.policy = policy or IntakePolicy()

    def warm_up(self) -> None:
        """Start-up work that would otherwise land on the first requests: open the connection pool (and plan
        the intake and dispatch statements on each connection) and load the dispatcher's compiled search
        kernels. The app's lifespan calls it before the server answers."""
        open_pool(self.engine, warm=events_sql.warm)
        d = self.dispatcher
        if d is not None and d.graph is not None and len(d.graph.node_xy):
            x, y = d.graph.node_xy[0]  # one ranking of the teams and of the fire equipment
            lon, lat = transformer(MEASURE_CRS, WGS84).transform(x, y)
            d.recommend(float(lon), float(lat), with_equipment=True)

    # -- intake -----------------------------------------------------------------------------------------
    def intake(self, session: Session, p: Principal, report: Report) -> IntakeResult:
        """Take an event in from a channel: validate, locate, place, link near-duplicates; commit; dispatch."""
        allowed = CHANNEL_ROLES.get(p.role, ())
        if report.answered is not None and report.channel not in ANSWERABLE_CHANNELS:
            raise InvalidInput(f"a report through {report.channel} cannot be answered on the spot", field="answered",
                               fix=f"only calls and walk-ins are ({', '.join(ANSWERABLE_CHANNELS)}); leave it out")
        if report.channel not in allowed:
            raise Forbidden(f"role {p.role!r} may not report through channel {report.channel!r}", field="channel",
                            fix=f"allowed: {', '.join(allowed)}" if allowed else "this role reports no events")
        now = self.clock()
        at = report.reported_at or now
        if at.tzinfo is None:
            raise InvalidInput(f"reported_at {at.isoformat()} has no time zone", field="reported_at",
                               fix="send ISO 8601 with an offset, e.g. 2026-11-22T09:30:00+08:00")
        if at > now + self.policy.max_clock_skew:
            raise InvalidInput(f"reported_at {at.isoformat()} is in the future (now {now.isoformat()})",
                               field="reported_at", fix="send the time the report was made, or leave it out")
        if at < now - self.policy.max_age:
            raise InvalidInput(f"reported_at {at.isoformat()} is more than {self.policy.max_age.days} days old",
                               field="reported_at", fix="enter old tickets with `gridmap load events`")
        fingerprint = report.fingerprint()
        try:
            return self._intake(session, p, report, at, fingerprint)
        except _Raced:  # the same (channel, external id) was committed meanwhile: answer with that event
            return self._intake(session, p, report, at, fingerprint)

    def _intake(self, session: Session, p: Principal, report: Report, at: dt.datetime,
                fingerprint: str) -> IntakeResult:
        now = self.clock()
        with session.begin():  # round trips: context (+ near-duplicate locks), insert (+ reporter, trail), commit
            conn = session.connection()
            loc = self._locate(conn, report)
            ctx = events_sql.intake_context(conn, channel=report.channel, external_id=report.external_id,
                                            category=report.category, lon=loc["lon"], lat=loc["lat"], at=at,
                                            dedup_radius_m=self.policy.dedup_radius_m)
            if p.role == "operator" and ctx["street_code"] is not None and \
                    not p.covers(ctx["street_code"], ctx["community_code"]):
                where = p.scope.describe() if p.scope is not None else "your area"
                raise Forbidden(f"({loc['lon']:.6f}, {loc['lat']:.6f}) is in street {ctx['street_code']} (community "
                                f"{ctx['community_code']}), outside {where}", field="location",
                                fix=f"report events of street {ctx['street_code']} through its operator or an "
                                    "admin (or check the location)")
            if ctx["existing_id"] is not None:
                return self._replay(conn, p, ctx, fingerprint, report, now)
            if ctx["category"] is None:
                raise InvalidInput(f"unknown category {report.category!r}", field="category",
                                   fix=f"use one of {', '.join(events_sql.category_codes(conn))}")
            if ctx["grid_area_id"] is None:
                raise InvalidInput(f"({loc['lon']:.6f}, {loc['lat']:.6f}) falls in no grid of the managed area "
                                   f"valid at {at.isoformat()}", field="location",
                                   fix="check the coordinates (send coords='gcj02' for Amap/Tencent points), "
                                       "or give building_code, address or place_code instead")
            due = at + dt.timedelta(minutes=ctx["time_limit_min"]) if ctx["time_limit_min"] else None
            values = {
                "channel": report.channel, "external_id": report.external_id, "category": report.category,
                "severity": report.severity or ctx["default_severity"], "title": report.title,
                "description": report.description, "reported_at": at, "street_code": ctx["street_code"],
                "community_code": ctx["community_code"], "grid_code": ctx["grid_code"],
                "grid_area_id": ctx["grid_area_id"], "building_id": loc["building_id"], "lon": loc["lon"],
                "lat": loc["lat"], "location_source": loc["source"], "address": loc["address"],
                "place_code": loc["place_code"], "due_at": due, "intake_sha256": fingerprint,
                "reporter_name": report.reporter_name, "reporter_phone": report.reporter_phone,
                "actor": p.username, "role": p.role, "auto_dispatch": report.dispatch,
            }
            row = events_sql.insert_reported(conn, values, radius_m=self.policy.dedup_radius_m,
                                             window=self.policy.dedup_window)
            if row is None:
                raise _Raced
            if report.answered is not None:  # answered on the spot: closed now, never dispatched
                events_sql.set_actor(conn, actor=p.username, role=p.role, action="answer_on_the_spot", note=report.answered,
                                     at=now)
                units_sql.settle_event(conn, row["id"], now, "answered_on_the_spot")
            elif row["dup_id"] is None and (ctx["unit_kind"] or ctx["unit_code"]):
                rungs.enter_first_rung(conn, row["id"], ctx, at=at, due_at=due)
        # committed: from here on the event exists whatever happens to dispatch
        duplicate = None
        if row["dup_id"] is not None:
            duplicate = {"id": row["dup_id"], "code": row["dup_code"], "distance_m": round(row["dup_distance_m"], 1),
                         "minutes_apart": round(abs((at - row["dup_reported_at"]).total_seconds()) / 60, 1)}
        if report.answered is not None:
            with session.begin():
                conn = session.connection()
                return IntakeResult(self._event_out(conn, p, _exists(events_sql.event(conn, row["id"])), self.clock()), True, None,
                                    duplicate, ["answered on the spot: closed without dispatch"])
        dispatch, at_dispatch = None, self.clock()
        if report.dispatch and duplicate is None:
            dispatch = self._dispatch(row["id"], at_dispatch, where={"lon": loc["lon"], "lat": loc["lat"],
                                                                    "category": report.category,
                                                                    "grid": ctx["grid_code"]})
        sent = dispatch is not None and dispatch["assignment_id"] is not None
        out = {**values, "id": row["id"], "code": row["code"], "status": "dispatched" if sent else "reported",
               "building_code": loc["building_code"], "team_id": None,
               "team_code": dispatch["team"] if sent and dispatch is not None else None,
               "duplicate_of": row["dup_id"], "duplicate_of_code": row["dup_code"],
               "dispatched_at": at_dispatch if sent else None, "accepted_at": None, "on_site_at": None,
               "resolved_at": None, "closed_at": None, "escalation_rung": 0, "rung_started_at": at,
               "due_at": None if duplicate else due, "rung_level": ctx["rung_level"], "rung_name": ctx["rung_name"],
               "rung_name_zh": ctx["rung_name_zh"]}
        return IntakeResult(event_out(out, self.clock(), clear_text=p.sees_personal_data,
                                      names=(report.reporter_name,)), True, dispatch, duplicate)

    def _replay(self, conn: Connection, p: Principal, existing: Mapping[str, Any], fingerprint: str, report: Report,
                now: dt.datetime) -> IntakeResult:
        if existing["existing_sha256"] not in (None, fingerprint):
            raise Conflict(f"external_id {report.external_id!r} of channel {report.channel} was used for a different "
                           "report", field="external_id",
                           fix="retry with exactly the same body, or give the new report its own external_id")
        return IntakeResult(self._event_out(conn, p, _exists(events_sql.event(conn, existing["existing_id"])), now), False)

    def _locate(self, conn: Connection, report: Report) -> dict:
        loc = report.location
        given = [n for n in ("place_code", "building_code", "address") if getattr(loc, n)]
        has_xy = loc.lon is not None or loc.lat is not None
        if report.channel == "qr_code" and not loc.place_code:
            raise InvalidInput("a QR-code report needs the scanned place code", field="location.place_code",
                               fix="send the code printed on the place's 余安码 (a business or building code)")
        if loc.place_code:
            place = registry_sql.place_location(conn, loc.place_code)
            if place is None:
                raise NotFound(f"no place with code {loc.place_code!r}", field="location.place_code",
                               fix="scan the code again; it is a business (S…) or building (B…) code")
            return {"lon": place["lon"], "lat": place["lat"], "building_id": place["building_id"],
                    "building_code": place["building_code"], "address": place["address"],
                    "place_code": place["code"], "source": "place"}
        if loc.building_code or loc.address:
            b = registry_sql.building_location(conn, code=loc.building_code) if loc.building_code else \
                registry_sql.building_location(conn, address=loc.address)
            if b is None:
                what = f"building {loc.building_code!r}" if loc.building_code else f"address {loc.address!r}"
                raise NotFound(f"no {what}", field=f"location.{given[0]}",
                               fix="check it against the building register, or send lon/lat instead")
            return {"lon": b["lon"], "lat": b["lat"], "building_id": b["id"], "building_code": b["code"],
                    "address": b["address"], "place_code": None,
                    "source": "building" if loc.building_code else "address"}
        if not has_xy or loc.lon is None or loc.lat is None:
            raise InvalidInput("no location", field="location",
                               fix="send lon and lat (WGS84, or coords='gcj02'), or building_code, address or "
                                   "place_code")
        if loc.coords not in ("wgs84", "gcj02"):
            raise InvalidInput(f"unknown coordinate system {loc.coords!r}", field="location.coords",
                               fix="use 'wgs84' (GPS) or 'gcj02' (Amap/Tencent maps)")
        lon, lat = check_lonlat(loc.lon, loc.lat, self.settings.area_bbox, gcj02=loc.coords == "gcj02")
        return {"lon": lon, "lat": lat, "building_id": None, "building_code": None, "address": None,
                "place_code": None, "source": loc.coords}

    # -- dispatch ---------------------------------------------------------------------------------------
    def _dispatch(self, event_id: int, now: dt.datetime | None = None, *, where: dict | None = None) -> dict:
        """Offer the event to the nearest available team. ``where`` (lon, lat, category, grid) lets the
        in-memory ranking answer 'nobody can take it' without a database round trip; whenever it sees a
        candidate, the dispatcher's atomic claim in the database decides."""
        if self.dispatcher is None:
            return {"assignment_id": None, "team": None, "waiting": True, "eta_s": None,
                    "message": "automatic dispatch is off: the road network is not loaded"}
        now = now or self.clock()
        rec = None
        if where is not None:
            try:
                rec = self.dispatcher.recommend(where["lon"], where["lat"], category=where["category"],
                                                grid=where["grid"], now=now)
            except GridmapError as exc:
                return {"assignment_id": None, "team": None, "waiting": True, "eta_s": None, "message": str(exc)}
            if not rec.picked:
                return {"assignment_id": None, "team": None, "waiting": True, "eta_s": None,
                        "message": f"event {event_id} is waiting: no available team can take it now"
                                   + (f" ({rec.note})" if rec.note else "")}
        try:
            r = self.dispatcher.dispatch(event_id, now=now, ranked=rec)  # the ranking above is not made twice
        except GridmapError as exc:
            return {"assignment_id": None, "team": None, "waiting": True, "eta_s": None, "message": str(exc)}
        eta = None
        if r.recommendation is not None and r.team:
            eta = next((c["eta_s"] for c in r.recommendation.picked if c["team"] == r.team), None)
        return {"assignment_id": r.assignment_id, "team": r.team, "waiting": r.waiting, "eta_s": eta,
                "message": r.message}

    def dispatch(self, session: Session, p: Principal, event_id: int) -> dict:
        """An operator (re-)dispatches an event to the nearest available team."""
        p.require("admin", "operator", what="dispatch events")
        with session.begin():
            ev = self._read(session.connection(), p, event_id)
            if ev["duplicate_of"] is not None:
                raise Conflict(f"event {ev['code']} is a near-duplicate of {ev['duplicate_of_code']}",
                               field="event_id", fix=f"dispatch {ev['duplicate_of_code']} instead")
            if ev["status"] != "dispatched":
                next_status(ev["status"], "dispatch")  # raises if dispatching is not legal now
        return self._dispatch(event_id)

    # -- reading ----------------------------------------------------------------------------------------
    def _read(self, conn: Connection, p: Principal, event_id: int, *, lock: bool = False) -> RowMapping:
        ev = events_sql.event(conn, event_id, lock=lock)
        if ev is None:
            raise NotFound(f"no event {event_id}", field="event_id", fix="check the id")
        if p.role == "admin":
            return ev
        if p.role in ("operator", "unit"):
            scope_rules.check_event(conn, p, ev)
            return ev
        if p.is_team:
            assert p.team_id is not None  # a team role always has its team (AuthService._principal)
            if ev["grid_code"] in p.grids or assignments_sql.team_ever_assigned(conn, ev["id"], p.team_id):
                return ev
            raise Forbidden(f"event {ev['code']} is neither in your grid nor assigned to your team", field="event_id",
                            fix="you see the events of your own grid(s) and your team's assignments")
        raise Forbidden(f"role {p.role!r} does not read individual events", field="role",
                        fix="planners use /v1/metrics; intake clients only report")

    def get(self, session: Session, p: Principal, event_id: int, *, purpose: str | None = None) -> dict:
        """One event. Operators and admins also get the reporter's contact: that read is logged."""
        with session.begin():
            conn = session.connection()
            ev = self._read(conn, p, event_id)
            rep = None
            if p.sees_personal_data:
                r = events_sql.reporter(conn, event_id)
                if r is not None:
                    rep = {"name": r["name"], "phone": r["phone"]}
                    people_sql.log_pii_access(conn, p.username, purpose or "event handling", "event_reporters", 1,
                                              {"event_id": event_id, "role": p.role})
            return self._event_out(conn, p, ev, self.clock(), reporter=rep)

    def list(self, session: Session, p: Principal, *, status: Sequence[str] | None = None, category: str | None = None,
             channel: str | None = None, area: str | None = None, overdue: bool | None = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None, limit: int = 100,
             offset: int = 0) -> builtins.list[dict]:
        where: builtins.list[str] = []
        params: dict[str, Any] = {}
        scoped = scope_rules.event_clause(p)
        if scoped is not None:  # operators: their area; unit members: what stands or stood at their unit
            where.append(scoped[0])
            params.update(scoped[1])
        elif p.is_team:
            where.append("e.grid_code = ANY(:scope_grids) OR EXISTS (SELECT 1 FROM assignments a "
                         "WHERE a.event_id = e.id AND a.team_id = :scope_team)")
            params.update(scope_grids=list(p.grids), scope_team=p.team_id)
        elif p.role != "admin":
            raise Forbidden(f"role {p.role!r} does not list individual events", field="role",
                            fix="planners use /v1/metrics")
        if status:
            where.append("e.status = ANY(:status)")
            params["status"] = status
        for name, value in (("category", category), ("channel", channel)):
            if value is not None:
                where.append(f"e.{name} = :{name}")
                params[name] = value
        if area is not None:
            where.append("e.street_code = :area OR e.community_code = :area OR e.grid_code = :area")
            params["area"] = area
        now = self.clock()
        if overdue is not None:
            cond = "e.due_at < :now AND e.status = ANY(:open_statuses) AND e.duplicate_of IS NULL"
            where.append(cond if overdue else f"NOT ({cond}) OR e.due_at IS NULL")
            params.update(now=now, open_statuses=list(OPEN_EVENT_STATUSES))
        if since is not None:
            where.append("e.reported_at >= :since")
            params["since"] = since
        if until is not None:
            where.append("e.reported_at < :until")
            params["until"] = until
        with session.begin():
            conn = session.connection()
            rows = events_sql.events(conn, where=where, params=params, limit=limit, offset=offset)
            names = self._names(conn, p, [r["id"] for r in rows])
        return [event_out(r, now, clear_text=names is None, names=_known(names, r["id"])) for r in rows]

    def history(self, session: Session, p: Principal, event_id: int) -> builtins.list[dict]:
        """The audit trail of an event, oldest first."""
        with session.begin():
            conn = session.connection()
            self._read(conn, p, event_id)
            rows = [dict(r) for r in events_sql.transitions(conn, event_id)]
            names = self._names(conn, p, [event_id])
        if names is not None:
            for r in rows:
                r["note"] = redact_text(r["note"], _known(names, event_id))
        return rows

    # -- the lifecycle ----------------------------------------------------------------------------------
    def act(self, session: Session, p: Principal, event_id: int, action: str, *, note: str | None = None,
            lon: float | None = None, lat: float | None = None) -> dict:
        """An operator moves an event along its lifecycle (on behalf of the rung responsible for it)."""
        p.require("admin", "operator", what=f"{action} events")
        now = self.clock()
        redispatch = False
        with session.begin():
            conn = session.connection()
            ev = self._read(conn, p, event_id, lock=True)
            if ev["duplicate_of"] is not None:
                raise Conflict(f"event {ev['code']} is a near-duplicate of {ev['duplicate_of_code']}", field="event_id",
                               fix=f"act on {ev['duplicate_of_code']}; duplicates close with it")
            new = next_status(ev["status"], action)
            events_sql.set_actor(conn, actor=p.username, role=p.role, action=action, note=note, lon=lon, lat=lat, at=now)
            active = assignments_sql.active_assignment(conn, event_id)
            team_status = None
            if action == "accept" and active is not None and active["status"] == "offered":
                assignments_sql.close_assignment(conn, active["id"], "accepted", now)
            elif action == "arrive" and active is not None:
                team_status = "on_site"
            elif action == "resolve" and active is not None:
                assignments_sql.close_assignment(conn, active["id"], "completed", now)
                team_status = "available"
            if team_status and active is not None:  # (a team status comes only with an active assignment)
                teams_sql.set_team_status(conn, active["team_id"], team_status)
            if action == "reopen":
                events_sql.reopen(conn, event_id, now, due_for(conn, ev["category"], ev["escalation_rung"], now))
                redispatch = True
            else:
                events_sql.set_status(conn, event_id, new, now)
            if action == "close":
                events_sql.set_action(conn, "close_with_master")
                events_sql.close_duplicates(conn, event_id, now)
        if team_status and active is not None:
            self._cache_team(active["team_code"], team_status)
        out = {"event": None, "dispatch": self._dispatch(event_id) if redispatch else None}
        with session.begin():
            conn = session.connection()
            out["event"] = self._event_out(conn, p, _exists(events_sql.event(conn, event_id)), self.clock())
        return out

    def respond(self, session: Session, p: Principal, assignment_id: int, action: str, *, note: str | None = None,
                lon: float | None = None, lat: float | None = None,
                within: Callable[[Connection, RowMapping], None] | None = None) -> dict:
        """A team answers its assignment: accept, decline, arrive (on site), resolve, or hand_up (escalate).

        ``within(conn, assignment)`` runs inside the answer's own transaction once it is known to be legal, before
        the change is written (the field app: mark the idempotency key applied, attach the photos to the audit row).
        """
        now = self.clock()
        team_status = None
        with session.begin():
            conn = session.connection()
            a = assignments_sql.assignment(conn, assignment_id, lock=True)
            if a is None:
                raise NotFound(f"no assignment {assignment_id}", field="assignment_id", fix="check the id")
            if p.is_team:
                if a["team_id"] != p.team_id:
                    raise Forbidden(f"assignment {assignment_id} belongs to another team", field="assignment_id",
                                    fix="answer only your own team's assignments (GET /v1/me/assignments)")
            elif p.role in ("admin", "operator"):
                ev0 = _exists(events_sql.event(conn, a["event_id"]))
                p.check_street(ev0["street_code"], f"assignment {assignment_id}", ev0["community_code"])
            else:
                raise Forbidden(f"role {p.role!r} does not answer assignments", field="role",
                                fix="the team's grid worker or volunteer answers it")
            ev = _exists(events_sql.event(conn, a["event_id"], lock=True))
            want = {"accept": ("offered",), "decline": ("offered",), "arrive": ("accepted",),
                    "resolve": ("accepted",), "hand_up": ("offered", "accepted")}[action]
            if a["status"] not in want:
                raise Conflict(f"assignment {assignment_id} is {a['status']}", field="assignment_id",
                               fix=f"'{action}' needs an assignment that is {' or '.join(want)}")
            if a["status"] == "offered" and a["respond_by"] is not None and a["respond_by"] < now:
                raise Conflict(f"the offer of assignment {assignment_id} expired at {a['respond_by'].isoformat()}",
                               field="assignment_id", fix="the event goes to the next team; wait for a new offer")
            events_sql.set_actor(conn, actor=p.username, role=p.role, action=action, note=note, lon=lon, lat=lat, at=now)
            if within is not None:
                within(conn, a)
            if action == "hand_up":
                assignments_sql.close_assignment(conn, assignment_id, "cancelled", now)
                teams_sql.set_team_status(conn, a["team_id"], "available")
                team_status = "available"
                escalate_in(conn, ev, at=now, actor=p.username, role=p.role, action="hand_up", note=note, lon=lon,
                            lat=lat)
            else:
                new = next_status(ev["status"], action)
                if action == "accept":
                    assignments_sql.close_assignment(conn, assignment_id, "accepted", now)
                elif action == "decline":
                    assignments_sql.close_assignment(conn, assignment_id, "declined", now)
                    team_status = "available"
                elif action == "arrive":
                    team_status = "on_site"
                elif action == "resolve":
                    assignments_sql.close_assignment(conn, assignment_id, "completed", now)
                    team_status = "available"
                if team_status:
                    teams_sql.set_team_status(conn, a["team_id"], team_status)
                events_sql.set_status(conn, ev["id"], new, now)
        if team_status:
            self._cache_team(a["team_code"], team_status)
        redispatch = self._dispatch(a["event_id"]) if action == "decline" else None
        with session.begin():
            conn = session.connection()
            return {"assignment": self._assignment_out(conn, p, _exists(assignments_sql.assignment(conn, assignment_id))),
                    "event": self._event_out(conn, p, _exists(events_sql.event(conn, a["event_id"])), self.clock()),
                    "dispatch": redispatch}

    def reopen_for_reporter(self, session: Session, event_id: int, *, actor: str, note: str | None = None,
                            within: Callable[[Connection], None] | None = None) -> dict:
        """The reporter says a resolved event is not fixed (the QR receipt's "no"): reopen it and offer it again.
        The audit row names ``actor`` with the role 'resident'; no staff principal is involved."""
        now = self.clock()
        with session.begin():
            conn = session.connection()
            ev = events_sql.event(conn, event_id, lock=True)
            if ev is None:
                raise NotFound(f"no event {event_id}", field="event_id", fix="check the link")
            if ev["duplicate_of"] is not None or ev["status"] not in ("resolved", "closed"):
                raise Conflict(f"event {ev['code']} is {ev['status']}: only a resolved event can be reopened",
                               field="status", fix="wait until it is marked resolved")
            next_status(ev["status"], "reopen")
            events_sql.set_actor(conn, actor=actor, role="resident", action="reopen", note=note, at=now)
            if within is not None:
                within(conn)
            events_sql.reopen(conn, event_id, now, due_for(conn, ev["category"], ev["escalation_rung"], now))
        return {"dispatch": self._dispatch(event_id)}

    def _cache_team(self, code: str, status: str) -> None:
        """Tell this process's dispatch cache at once (other processes hear it through LISTEN/NOTIFY)."""
        if self.dispatcher is not None:
            set_cached_team_status(self.dispatcher, code, status)

    # -- the team's feed --------------------------------------------------------------------------------
    def my_assignments(self, session: Session, p: Principal, *, active_only: bool = True,
                       limit: int = 50) -> builtins.list[dict]:
        if not p.is_team:
            raise Forbidden(f"role {p.role!r} has no team feed", field="role",
                            fix="log in as the team's grid worker or volunteer")
        assert p.team_id is not None  # a team role always has its team (AuthService._principal)
        statuses = ("offered", "accepted") if active_only else ("offered", "accepted", "declined", "timeout",
                                                                 "cancelled", "completed")
        with session.begin():
            conn = session.connection()
            rows = assignments_sql.team_assignments(conn, p.team_id, statuses, limit)
            names = self._names(conn, p, [r["event_id"] for r in rows])
        return [assignment_out(r, clear_text=names is None, names=_known(names, r["event_id"])) for r in rows]

    def assignment(self, session: Session, p: Principal, assignment_id: int) -> dict:
        with session.begin():
            conn = session.connection()
            a = assignments_sql.assignment(conn, assignment_id)
            # (the reporter's name, to blank it in the text: read in the same round trip, shown to nobody)
            names = self._names(conn, p, [a["event_id"]]) if a is not None else None
        if a is None:
            raise NotFound(f"no assignment {assignment_id}", field="assignment_id", fix="check the id")
        if p.is_team and a["team_id"] != p.team_id:
            raise Forbidden(f"assignment {assignment_id} belongs to another team", field="assignment_id",
                            fix="read only your own team's assignments (GET /v1/me/assignments)")
        if p.role in ("planner", "intake", "unit"):
            raise Forbidden(f"role {p.role!r} does not read assignments", field="role",
                            fix="unit members read their unit's inbox (GET /v1/units/{code}/inbox)" if p.role == "unit"
                            else "use /v1/metrics")
        if p.role == "operator":
            with session.begin():
                ev = _exists(events_sql.event(session.connection(), a["event_id"]))
            p.check_street(ev["street_code"], f"assignment {assignment_id}", ev["community_code"])
        return assignment_out(a, clear_text=names is None, names=_known(names, a["event_id"]))

    # -- what a reader is shown -------------------------------------------------------------------------
    @staticmethod
    def _names(conn: Connection, p: Principal, event_ids: Sequence[int]) -> dict[int, str] | None:
        """None for a reader with the right to personal data (free text shown as typed); for anyone else the
        reporters' names of these events, to blank them in the redacted text."""
        return None if p.sees_personal_data else events_sql.reporter_names(conn, event_ids)

    def _event_out(self, conn: Connection, p: Principal, row: RowMapping, now: dt.datetime, *,
                   reporter: dict | None = None) -> dict:
        names = self._names(conn, p, [row["id"]])
        return event_out(row, now, reporter=reporter, clear_text=names is None, names=_known(names, row["id"]))

    def _assignment_out(self, conn: Connection, p: Principal, row: RowMapping) -> dict:
        names = self._names(conn, p, [row["event_id"]])
        return assignment_out(row, clear_text=names is None, names=_known(names, row["event_id"]))


def set_cached_team_status(dispatcher: Dispatcher, code: str, status: str) -> None:
    """Update a dispatcher's in-memory team index (the database already holds the new status)."""
    dispatcher.cached_status_changed(code, status)


def set_cached_team_position(dispatcher: Dispatcher, code: str, lon: float, lat: float, at_epoch: float) -> None:
    """Move a team in a dispatcher's in-memory index (a position another process stored), unless the index holds
    a newer fix already: the announcement of an older one, handled late, must not move the team back."""
    dispatcher.cached_position_changed(code, lon, lat, at_epoch)
