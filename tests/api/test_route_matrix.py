"""Every route x every identity, with the expected outcome in one table.

The identities: nobody (no token), a forged token, each role (admin, an operator of the sample street,
planner, intake, a grid worker, a volunteer), an operator of ANOTHER street, and a user who was deleted after
logging in (their token must be dead); and the levels of command (issue 14): an operator of the district,
an operator of the grid worker's community, and a member of that community's mediation room. So the table is
also the scope matrix: district / street / community operators, unit members and another street's operator
x every route. Each row of :data:`TABLE` names one route (method and path template as
the app declares it), how to call it with realistic data (a real team, an event in the grid worker's grid, a
fresh offer to the volunteer's team ...), and the status every identity must get.

The route list is read from the app itself (every HTTP route and WebSocket, documented or not): a route
without a row fails :func:`test_every_route_has_a_row`, so a new route cannot ship without saying who may
call it.

The app runs on its own copy of the sample street (``<test db>_matrix``) with a fixed clock.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.routing import Route
from starlette.websockets import WebSocketDisconnect

from api.app import create_app
from gridmap.services import auth
from gridmap.services.registry import Registry
from tests.api.conftest import PASSWORD, START, Clock, login, refresh_positions

pytestmark = [pytest.mark.db]

UNAUTHENTICATED = ("nobody", "forged", "deleted")
ROLES = ("admin", "operator", "other_operator", "planner", "intake", "grid_worker", "volunteer",
         "district_operator", "community_operator", "unit_member")
IDENTITIES = UNAUTHENTICATED + ROLES
OTHER_STREET = "330106998"
_ids = itertools.count(1)


def allow(*who: str, ok: int = 200, denied: int = 403, **special: int) -> dict[str, int]:
    """``ok`` for the identities named, 401 for the unauthenticated, ``denied`` for the other roles, and
    ``special`` where one identity differs (e.g. ``other_operator=404``)."""
    out = {i: 401 for i in UNAUTHENTICATED}
    out.update({r: (ok if r in who else denied) for r in ROLES})
    out.update(special)
    return out


def everyone(ok: int = 200) -> dict[str, int]:
    return dict.fromkeys(IDENTITIES, ok)


SIGNED_IN = ROLES
#: operators whose area holds the sample street's data the rows act on (the community: the grid worker's)
AREA_OPS = ("district_operator", "community_operator")
OPERATORS = ("admin", "operator", *AREA_OPS)


# -- the world the requests act on ------------------------------------------------------------------------
@dataclass
class World:
    app: Any
    client: TestClient
    engine: Any
    clock: Clock
    tokens: dict[str, dict]
    street: str
    team: str  # the volunteer's team: fresh offers at its position go to it
    spot: dict  # its position
    gw_grid: str  # the grid worker's grid
    gw_event: int  # an event in the grid worker's grid (not the volunteer's team's)
    usernames: dict[str, str] = field(default_factory=dict)
    room: str = ""  # the mediation room of the grid worker's community (the unit member's unit)
    room_event: int = 0  # an event at that room's rung (escalated there), with its case
    case: int = 0  # that case

    def headers(self, who: str) -> dict:
        return self.tokens[who]

    def sql(self, q: str, **params):
        with self.engine.begin() as conn:
            result = conn.execute(text(q), params)
            return result.all() if result.returns_rows else []

    def first(self, table: str) -> str:
        """The first code of a registry table (a real building or business)."""
        return self.sql(f"SELECT code FROM {table} ORDER BY code LIMIT 1")[0][0]

    def place(self) -> str:
        """The first business of the grid worker's community: a report from its QR page is an event inside every
        area operator's scope (district, street and community)."""
        return self.sql("SELECT b.code FROM businesses b JOIN buildings bl ON bl.id = b.building_id "
                        "WHERE bl.community_code = (SELECT parent_code FROM areas WHERE code = :g "
                        "AND valid_to IS NULL) ORDER BY b.code LIMIT 1", g=self.gw_grid)[0][0]

    def reset(self) -> None:
        """An hour later (no near-duplicate of the last report), no open assignment, teams back to their loaded
        status, every team where it is, now."""
        self.clock.advance(hours=1)
        self.sql("UPDATE assignments SET status = 'cancelled' WHERE status IN ('offered', 'accepted')")
        self.sql("UPDATE teams t SET status = b.status FROM testkit_matrix b WHERE b.id = t.id")
        self.app.state.dispatcher.rebuild(self.clock())
        refresh_positions(self.client, self.engine, self.tokens["admin"], self.clock())

    def report(self, *, dispatch: bool, where: dict | None = None, category: str = "neighbour_dispute") -> dict:
        body = {"channel": "hotline_12345", "external_id": f"MX-{next(_ids):05d}", "category": category,
                "location": where or self.spot, "dispatch": dispatch,
                "reporter": {"name": "钱七", "phone": "13900001111"}}
        r = self.client.post("/v1/events", json=body, headers=self.tokens["admin"])
        assert r.status_code == 201, r.text
        return r.json()

    def offer(self) -> tuple[int, int]:
        """A fresh offer to the volunteer's team: (event id, assignment id)."""
        self.reset()
        out = self.report(dispatch=True)
        assert out["dispatch"]["team"] == self.team, f"the offer went to {out['dispatch']['team']}, not {self.team}"
        return out["event"]["id"], out["dispatch"]["assignment_id"]

    def accepted(self, *, arrived: bool = False) -> tuple[int, int]:
        """A fresh offer, accepted (and the team on site)."""
        eid, aid = self.offer()
        for action in ("accept", "arrive") if arrived else ("accept",):
            r = self.client.post(f"/v1/assignments/{aid}/{action}", json={}, headers=self.tokens["admin"])
            assert r.status_code == 200, r.text
        return eid, aid

    def at_room(self) -> int:
        """A fresh neighbour dispute in the grid worker's grid, escalated to the community's mediation room
        (which opens its case on arrival)."""
        self.reset()
        eid = self.report(dispatch=False, where=_point_in_grid(self.engine, self.gw_grid))["event"]["id"]
        r = self.client.post(f"/v1/events/{eid}/escalate", json={}, headers=self.tokens["admin"])
        assert r.status_code == 200 and r.json()["unit"] == self.room, r.text
        return eid

    def fresh_case(self) -> int:
        return self.sql("SELECT id FROM mediation_cases WHERE event_id = :e", e=self.at_room())[0][0]

    def spare_user(self) -> str:
        name = f"spare{next(_ids)}"
        with Session(self.engine) as s:
            auth.create_user(s, username=name, password=PASSWORD, role="planner")
        return name

    def log_in_again(self) -> None:
        for who in ROLES:
            self.tokens[who] = login(self.client, self.usernames[who])["headers"]

    def fresh_token(self, who: str) -> dict:
        """A second session of ``who`` (for the calls that end sessions), or their usual headers."""
        if who in UNAUTHENTICATED:
            return self.tokens[who]
        return login(self.client, self.usernames[who])["headers"]


# -- the table --------------------------------------------------------------------------------------------
@dataclass
class Row:
    method: str
    path: str
    expect: dict[str, int]
    #: builds (url, kwargs) for one identity; default: the path as it is, no body
    build: Callable[[World, str], tuple[str, dict]] | None = None
    #: instead of an HTTP request (WebSocket, streams): returns the status the identity got
    call: Callable[[World, str], int] | None = None
    #: the identity's headers come from a fresh session (the call ends it)
    fresh_session: bool = False
    #: the call ends every session of the caller: log every identity in again afterwards
    ends_all_sessions: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path


def _get(url: str, **kw) -> Callable[[World, str], tuple[str, dict]]:
    return lambda w, who: (url, kw)


def _json(url_of: Callable[[World], str], body_of: Callable[[World], Any]) -> Callable:
    return lambda w, who: (url_of(w), {"json": body_of(w)})


def _ws(url_of: Callable[[World], str]) -> Callable[[World, str], int]:
    """A live feed over WebSocket: 101 and a snapshot, or the refusal's close code as a status."""
    def call(w: World, who: str) -> int:
        try:
            with w.client.websocket_connect(url_of(w), headers=dict(w.headers(who))) as ws:
                first = ws.receive_json()
                if first.get("type") == "snapshot":
                    return 101
                ws.receive_json()  # the close that follows the error
        except WebSocketDisconnect as exc:
            return {4401: 401, 4403: 403}.get(exc.code, exc.code)
        return 0
    return call


def _sse(url_of: Callable[[World], str]) -> Callable[[World, str], int]:
    """A live feed as server-sent events: its status, and with 200 a snapshot first."""
    def call(w: World, who: str) -> int:
        with w.client.stream("GET", url_of(w), headers=w.headers(who)) as r:
            if r.status_code == 200:
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        assert line == "event: snapshot", line
                        break
            return r.status_code
    return call


def _case_to_open(w: World, who: str) -> tuple[str, dict]:
    """An event at the room whose case was not opened on arrival (its case removed, as for an event that
    reached the room before cases existed)."""
    eid = w.at_room()
    w.sql("DELETE FROM mediation_cases WHERE event_id = :e", e=eid)
    return "/v1/mediation/cases", {"json": {"event_id": eid}}


def _positions(w: World) -> dict:
    return {"positions": [{"team": w.team, "lon": w.spot["lon"], "lat": w.spot["lat"], "at": w.clock().isoformat()}]}


def _new_event_body(w: World) -> dict:
    return {"channel": "patrol", "external_id": f"MXP-{next(_ids):05d}", "category": "environment",
            "location": w.spot, "dispatch": False}


def _fresh(kind: str, action: str) -> Callable:
    """A fresh event or assignment in the state the action needs, for each identity."""
    def build(w: World, who: str) -> tuple[str, dict]:
        if kind == "assignment":
            _eid, aid = {"arrive": w.accepted, "resolve": lambda: w.accepted(arrived=True)}.get(action, w.offer)()
            return f"/v1/assignments/{aid}/{action}", {"json": {}}
        if action == "dispatch":
            w.reset()
            return f"/v1/events/{w.report(dispatch=False)['event']['id']}/dispatch", {}
        if action == "transitions":
            eid, _aid = w.offer()
            return f"/v1/events/{eid}/transitions", {"json": {"action": "accept"}}
        if action == "escalate":
            w.reset()
            return f"/v1/events/{w.report(dispatch=False)['event']['id']}/escalate", {"json": {}}
        raise AssertionError(action)

    return build


def _user_call(action: str) -> Callable:
    def build(w: World, who: str) -> tuple[str, dict]:
        name = w.spare_user()
        if action == "patch":
            return f"/v1/users/{name}", {"json": {"active": False}}
        if action == "password":
            return f"/v1/users/{name}/password", {"json": {"password": "another good passphrase"}}
        return f"/v1/users/{name}" + ("/sessions" if action == "sessions" else ""), {}

    return build


def _own_password(w: World, who: str) -> tuple[str, dict]:
    """Change the identity's password and back (the second call, not checked, restores it)."""
    return "/v1/me/password", {"json": {"old_password": PASSWORD, "new_password": PASSWORD + "!"},
                               "restore": {"old_password": PASSWORD + "!", "new_password": PASSWORD}}


def _team_status(w: World, who: str) -> tuple[str, dict]:
    w.reset()  # the team holds no assignment, so it may change its status
    return f"/v1/teams/{w.team}/status", {"json": {"status": "available"}}


def _tile(spot: dict, z: int) -> str:
    """The web-mercator tile holding ``spot`` at zoom ``z``."""
    n = 2 ** z
    lat = math.radians(spot["lat"])
    x = int((spot["lon"] + 180) / 360 * n)
    y = int((1 - math.log(math.tan(lat) + 1 / math.cos(lat)) / math.pi) / 2 * n)
    return f"/dashboard/tiles/buildings/{z}/{x}/{y}.json"


def _dash_login(w: World, who: str) -> tuple[str, dict]:
    return "/dashboard/login", {"json": {"username": "matrix_planner", "password": PASSWORD}}


# -- the field app and the resident's QR page --------------------------------------------------------------
def _jpeg() -> bytes:
    from tests.field.conftest import jpeg

    return jpeg("teal", (64, 48))


def _resident_report(w: World) -> dict:
    """A resident's report from a place's QR page (an hour later: a fresh throttle window), in the grid worker's
    community."""
    w.reset()
    r = w.client.post(f"/q/{w.place()}/report", data={"category": "environment", "description": "litter"},
                      files={"photo": ("p.jpg", _jpeg(), "image/jpeg")})
    assert r.status_code == 201, r.text
    return r.json()


def _a_photo(w: World) -> int:
    """A photo of an event in the grid worker's community (the resident's report's)."""
    code = _resident_report(w)["event_code"]
    return w.sql("SELECT p.id FROM event_photos p JOIN events e ON e.id = p.event_id WHERE e.code = :c", c=code)[0][0]


def _photo_upload(w: World, who: str) -> tuple[str, dict]:
    """A photo for a fresh offer to the volunteer's team."""
    _eid, aid = w.offer()
    return f"/v1/assignments/{aid}/photos", {"content": _jpeg(), "headers_extra": {"Content-Type": "image/jpeg"}}


def _report(w: World, who: str) -> tuple[str, dict]:
    w.reset()
    return f"/q/{w.first('businesses')}/report", {"data": {"category": "environment", "description": "litter"}}


def _receipt(suffix: str) -> Callable[[World, str], tuple[str, dict]]:
    def build(w: World, who: str) -> tuple[str, dict]:
        token = _resident_report(w)["receipt"].rstrip("/").split("/")[-1]
        if suffix == "/answer":  # not resolved yet: nobody may answer it (409), whoever they are
            return f"/r/{token}/answer", {"json": {"fixed": False}}
        return f"/r/{token}{suffix}", {}

    return build


def _photo_of_event(prefix: str) -> Callable[[World, str], tuple[str, dict]]:
    def build(w: World, who: str) -> tuple[str, dict]:
        pid = _a_photo(w)
        eid = w.sql("SELECT event_id FROM event_photos WHERE id = :p", p=pid)[0][0]
        return f"{prefix}/events/{eid}/photos", {}

    return build


def _photo_bytes(prefix: str) -> Callable[[World, str], tuple[str, dict]]:
    return lambda w, who: (f"{prefix}/photos/{_a_photo(w)}", {})


def _device_login(w: World, who: str) -> tuple[str, dict]:
    return "/v1/field/session", {"json": {"username": w.usernames["volunteer"], "password": PASSWORD}}


TEAM_READERS = ("admin", "operator", *AREA_OPS, "volunteer")  # the volunteer reads its own team
DASH = ("admin", "operator", *AREA_OPS, "planner")
TABLE: list[Row] = [
    # public: the docs, liveness, layer names, the screen's login form and assets
    Row("GET", "/openapi.json", everyone()), Row("GET", "/docs", everyone()), Row("GET", "/redoc", everyone()),
    Row("GET", "/docs/oauth2-redirect", everyone()), Row("GET", "/health", everyone()),
    Row("GET", "/layers", everyone()),
    Row("GET", "/dashboard/login", everyone()),
    Row("GET", "/dashboard/static/{name}", everyone(), _get("/dashboard/static/dashboard.js")),
    Row("GET", "/dashboard/static/deckgl-{version}.js", everyone(), _get("/dashboard/static/deckgl-x.js")),
    # logging in needs no token (whatever the caller sends); the screen's login, a screen role
    Row("POST", "/v1/auth/token", everyone(), _json(lambda w: "/v1/auth/token",
                                                    lambda w: {"username": "matrix_planner", "password": PASSWORD})),
    Row("POST", "/dashboard/login", everyone(), _dash_login),
    # the caller's own account and sessions
    Row("GET", "/v1/me", allow(*SIGNED_IN)),
    Row("POST", "/v1/auth/logout", allow(*SIGNED_IN), _get("/v1/auth/logout"), fresh_session=True),
    Row("POST", "/v1/auth/logout-all", allow(*SIGNED_IN), _get("/v1/auth/logout-all"), fresh_session=True,
        ends_all_sessions=True),
    Row("POST", "/v1/me/password", allow(*SIGNED_IN), _own_password, fresh_session=True, ends_all_sessions=True),
    # logout of the screen: a bearer session ends too; without one there is nothing to end (303 to the form)
    Row("POST", "/dashboard/logout", everyone(303), _get("/dashboard/logout"), fresh_session=True),
    # users (admins)
    Row("GET", "/v1/users", allow("admin")),
    Row("POST", "/v1/users", allow("admin", ok=201), _json(lambda w: "/v1/users", lambda w: {
        "username": f"new{next(_ids)}", "password": PASSWORD, "role": "planner"})),
    Row("PATCH", "/v1/users/{username}", allow("admin"), _user_call("patch")),
    Row("POST", "/v1/users/{username}/password", allow("admin"), _user_call("password")),
    Row("DELETE", "/v1/users/{username}/sessions", allow("admin"), _user_call("sessions")),
    Row("DELETE", "/v1/users/{username}", allow("admin", ok=204), _user_call("delete")),
    # the registry
    Row("GET", "/layers/{name}", allow(*SIGNED_IN), _get("/layers/buildings", params={"limit": 5})),
    Row("GET", "/v1/places/{code}", allow(*SIGNED_IN), lambda w, who: (f"/v1/places/{w.first('businesses')}", {})),
    Row("GET", "/v1/residents", allow("admin", "operator", *AREA_OPS, "grid_worker"),
        lambda w, who: ("/v1/residents", {"params": {"area": w.gw_grid, "limit": 5}})),
    # events
    Row("POST", "/v1/events", allow("admin", "operator", *AREA_OPS, "intake", "grid_worker", "volunteer", ok=201),
        _json(lambda w: "/v1/events", _new_event_body)),
    Row("GET", "/v1/events", allow("admin", "operator", *AREA_OPS, "other_operator", "grid_worker", "volunteer", "unit_member"),
        _get("/v1/events", params={"limit": 5})),
    Row("GET", "/v1/events/{event_id}", allow("admin", "operator", *AREA_OPS, "grid_worker"),
        lambda w, who: (f"/v1/events/{w.gw_event}", {})),
    Row("GET", "/v1/events/{event_id}/history", allow("admin", "operator", *AREA_OPS, "grid_worker"),
        lambda w, who: (f"/v1/events/{w.gw_event}/history", {})),
    Row("POST", "/v1/events/{event_id}/dispatch", allow(*OPERATORS), _fresh("event", "dispatch")),
    Row("POST", "/v1/events/{event_id}/transitions", allow(*OPERATORS), _fresh("event", "transitions")),
    Row("POST", "/v1/events/{event_id}/escalate", allow(*OPERATORS), _fresh("event", "escalate")),
    Row("GET", "/v1/escalation/ladders", allow(*SIGNED_IN)),
    Row("POST", "/v1/escalation/sweep", allow(*OPERATORS, "other_operator"), _get("/v1/escalation/sweep")),
    Row("GET", "/v1/metrics/events", allow(*OPERATORS, "other_operator", "planner")),
    Row("GET", "/v1/metrics/overdue", allow(*OPERATORS, "other_operator", "planner")),
    # teams and their feed
    Row("GET", "/v1/teams", allow(*OPERATORS, "other_operator")),
    Row("GET", "/v1/teams/{code}", allow(*TEAM_READERS), lambda w, who: (f"/v1/teams/{w.team}", {})),
    Row("POST", "/v1/teams/positions", allow(*TEAM_READERS), _json(lambda w: "/v1/teams/positions", _positions)),
    Row("PUT", "/v1/teams/{code}/position", allow(*TEAM_READERS), lambda w, who: (
        f"/v1/teams/{w.team}/position", {"json": {"lon": w.spot["lon"], "lat": w.spot["lat"]}})),
    Row("PUT", "/v1/teams/{code}/status", allow(*TEAM_READERS), _team_status),
    Row("GET", "/v1/me/assignments", allow("grid_worker", "volunteer")),
    Row("GET", "/v1/me/feed", allow("grid_worker", "volunteer"), call=_sse(lambda w: "/v1/me/feed")),
    Row("WS", "/v1/me/feed/ws", allow("grid_worker", "volunteer", ok=101), call=_ws(lambda w: "/v1/me/feed/ws")),
    Row("GET", "/v1/assignments/{assignment_id}", allow(*TEAM_READERS),
        lambda w, who: (f"/v1/assignments/{w.offer()[1]}", {})),
    *(Row("POST", f"/v1/assignments/{{assignment_id}}/{a}", allow(*TEAM_READERS), _fresh("assignment", a))
      for a in ("accept", "decline", "arrive", "resolve", "hand-up")),
    # dispatch advice
    Row("GET", "/v1/dispatch/recommend", allow(*OPERATORS), lambda w, who: (
        "/v1/dispatch/recommend", {"params": {"lon": w.spot["lon"], "lat": w.spot["lat"]}})),
    Row("POST", "/v1/dispatch/eta", allow(*OPERATORS, "other_operator", "planner"), _json(
        lambda w: "/v1/dispatch/eta", lambda w: {"kind": "hydrant", "points": [[w.spot["lon"], w.spot["lat"]]]})),
    # the command-centre screen: the page answers its login form (200) to whoever has no session, and the form
    # with a message (403) to a role without the screen; its data answers 401/403
    # (a unit member is sent to their unit's inbox screen)
    Row("GET", "/dashboard", allow(*DASH, "other_operator", nobody=200, forged=200, deleted=200, unit_member=303)),
    Row("GET", "/dashboard/deck.json", allow(*DASH, "other_operator")),
    Row("GET", "/dashboard/tiles/buildings/{z}/{x}/{y}.json", allow(*DASH, "other_operator"),
        lambda w, who: (_tile(w.spot, 15), {})),
    *(Row("GET", f"/dashboard/api/{name}", allow(*DASH, "other_operator"))
      for name in ("boundaries.json", "grids.json", "equipment.json", "teams.json", "events.json", "routes.json",
                   "summary")),
    # drill-downs into the sample street: another street's operator is told it is not theirs (or not found)
    Row("GET", "/dashboard/api/buildings/{code}", allow(*DASH, other_operator=404),
        lambda w, who: (f"/dashboard/api/buildings/{w.first('buildings')}", {})),
    Row("GET", "/dashboard/api/events/{event_id}", allow(*DASH, other_operator=404),
        lambda w, who: (f"/dashboard/api/events/{w.gw_event}", {})),
    Row("GET", "/dashboard/api/teams/{code}", allow(*DASH, other_operator=404),
        lambda w, who: (f"/dashboard/api/teams/{w.team}", {})),
    # the field app: its shell is public (it shows a sign-in form); its data is the team roles'; a device
    # session needs no token (a login)
    Row("GET", "/field", everyone(307)), Row("GET", "/field/", everyone()),
    Row("GET", "/field/sw.js", everyone()), Row("GET", "/field/manifest.webmanifest", everyone()),
    Row("GET", "/field/static/{name}", everyone(), _get("/field/static/app.js")),
    Row("POST", "/v1/field/session", everyone(), _device_login),
    # (the context and map hold no personal data: operators and admins may preview their street's)
    Row("GET", "/v1/field/context", allow(*TEAM_READERS, "grid_worker", "other_operator")),
    Row("GET", "/v1/field/map", allow(*TEAM_READERS, "grid_worker", "other_operator")),
    Row("POST", "/v1/assignments/{assignment_id}/photos", allow("volunteer"), _photo_upload),
    # photos: operators of the event's street and admins, never other roles
    Row("GET", "/v1/events/{event_id}/photos", allow(*OPERATORS), _photo_of_event("/v1")),
    Row("GET", "/v1/photos/{photo_id}", allow(*OPERATORS), _photo_bytes("/v1")),
    Row("GET", "/dashboard/api/events/{event_id}/photos", allow(*OPERATORS), _photo_of_event("/dashboard/api")),
    Row("GET", "/dashboard/api/photos/{photo_id}", allow(*OPERATORS), _photo_bytes("/dashboard/api")),
    # the resident's QR page and receipt: public, whoever calls (the receipt's unguessable link is the key)
    Row("GET", "/q/{code}", everyone(), lambda w, who: (f"/q/{w.first('businesses')}", {})),
    Row("POST", "/q/{code}/report", everyone(201), _report),
    Row("GET", "/r/{token}", everyone(), _receipt("")),
    Row("GET", "/r/{token}/status", everyone(), _receipt("/status")),
    Row("POST", "/r/{token}/answer", everyone(409), _receipt("/answer")),
    # the simulator: any operator or planner reads whether this is a simulation database; only an admin may
    # move its clock, and only on an API driven by it (this one is not: 409)
    Row("GET", "/v1/simulation", allow(*OPERATORS, "other_operator", "planner")),
    Row("PUT", "/v1/simulation/clock", allow(admin=409),
        lambda w, who: ("/v1/simulation/clock", {"json": {"at": w.clock().isoformat()}})),
    # -- the levels of command (issue 14) ----------------------------------------------------------------
    # units: admins and planners read them all, operators their area's, a member their own
    Row("GET", "/v1/units", allow(*OPERATORS, "other_operator", "planner", "unit_member")),
    Row("GET", "/v1/units/{code}", allow(*OPERATORS, "planner", "unit_member"),
        lambda w, who: (f"/v1/units/{w.room}", {})),
    Row("GET", "/v1/units/{code}/inbox", allow(*OPERATORS, "unit_member"),
        lambda w, who: (f"/v1/units/{w.room}/inbox", {})),
    Row("POST", "/v1/units/{code}/inbox/{event_id}/{action}", allow("admin", "unit_member"),
        lambda w, who: (f"/v1/units/{w.room}/inbox/{w.at_room()}/take", {"json": {}})),
    Row("GET", "/v1/units/{code}/feed", allow("admin", "unit_member"), call=_sse(lambda w: f"/v1/units/{w.room}/feed")),
    Row("WS", "/v1/units/{code}/feed/ws", allow("admin", "unit_member", ok=101), call=_ws(lambda w: f"/v1/units/{w.room}/feed/ws")),
    Row("GET", "/v1/events/{event_id}/rungs", allow(*OPERATORS, "unit_member"),
        lambda w, who: (f"/v1/events/{w.room_event}/rungs", {})),
    # mediation cases: the room's members write; admins and the area's operators read (parties masked)
    Row("GET", "/v1/mediation/cases", allow(*OPERATORS, "other_operator", "unit_member")),
    Row("GET", "/v1/mediation/cases/{case_id}", allow(*OPERATORS, "unit_member"),
        lambda w, who: (f"/v1/mediation/cases/{w.case}", {})),
    Row("POST", "/v1/mediation/cases", allow("admin", "unit_member", ok=201), _case_to_open),
    Row("POST", "/v1/mediation/cases/{case_id}/parties", allow("admin", "unit_member", ok=201),
        lambda w, who: (f"/v1/mediation/cases/{w.case}/parties",
                        {"json": {"side": "applicant", "name": "赵六", "phone": "13700001234"}})),
    Row("POST", "/v1/mediation/cases/{case_id}/sessions", allow("admin", "unit_member", ok=201),
        lambda w, who: (f"/v1/mediation/cases/{w.case}/sessions",
                        {"json": {"held_at": w.clock().isoformat(), "place": "调解室", "mediators": ["王调解"]}})),
    Row("POST", "/v1/mediation/cases/{case_id}/outcome", allow("admin", "unit_member"),
        lambda w, who: (f"/v1/mediation/cases/{w.fresh_case()}/outcome",
                        {"json": {"outcome": "agreement", "agreement_text": "双方同意"}})),
    # the figures and the screens of the levels
    Row("GET", "/v1/levels/overview", allow(*OPERATORS, "other_operator", "planner")),
    Row("GET", "/v1/metrics/intake", allow(*OPERATORS, "other_operator", "planner")),
    Row("GET", "/v1/metrics/units", allow(*OPERATORS, "other_operator", "planner", "unit_member")),
    Row("GET", "/dashboard/district", allow(*DASH, "other_operator", nobody=200, forged=200, deleted=200,
                                              unit_member=303)),
    Row("GET", "/dashboard/api/levels.json", allow(*DASH, "other_operator")),
    Row("GET", "/dashboard/unit", allow("admin", "unit_member", nobody=200, forged=200, deleted=200),
        lambda w, who: ("/dashboard/unit", {"params": {"unit": w.room} if who == "admin" else {}})),
    Row("GET", "/dashboard/api/unit/inbox.json", allow("admin", "unit_member"),
        lambda w, who: ("/dashboard/api/unit/inbox.json", {"params": {"unit": w.room} if who == "admin" else {}})),
    Row("POST", "/dashboard/api/unit/inbox/{event_id}/{action}", allow("admin", "unit_member"),
        lambda w, who: (f"/dashboard/api/unit/inbox/{w.at_room()}/take",
                        {"json": {}, "params": {"unit": w.room} if who == "admin" else {}})),
]


def app_routes(app) -> set[tuple[str, str]]:
    """Every route the app answers: (method, path template), WebSockets as method 'WS'."""
    out: set[tuple[str, str]] = set()

    def walk(routes) -> None:
        for r in routes:
            original = getattr(r, "original_router", None)
            if original is not None:  # FastAPI's included router
                walk(original.routes)
            elif isinstance(r, APIWebSocketRoute):
                out.add(("WS", r.path))
            elif isinstance(r, APIRoute | Route):
                out.update((m, r.path) for m in (r.methods or ()) if m != "HEAD")

    walk(app.router.routes)
    return out


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(sample_street_db, api_settings):
    engine = sample_street_db("matrix", pool_size=10, max_overflow=10)
    clock = Clock(START)
    cfg = api_settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(48))})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE testkit_matrix AS SELECT id, status FROM teams"))
        conn.execute(text("INSERT INTO areas (code, level, name, parent_code, geom) VALUES (:c, 'street', 'Elsewhere', "
                          "'330106', ST_Multi(ST_MakeEnvelope(120.5, 30.5, 120.51, 30.51, 4326)))"), {"c": OTHER_STREET})
        street = conn.execute(text("SELECT code FROM areas WHERE level = 'street' AND code <> :c "
                                   "ORDER BY population DESC NULLS LAST LIMIT 1"), {"c": OTHER_STREET}).scalar_one()
    app = create_app(cfg, Registry(engine, cfg), clock=clock)
    with TestClient(app) as client:
        with Session(engine) as s:
            auth.create_user(s, username="matrix_admin", password=PASSWORD, role="admin")
        admin = login(client, "matrix_admin")["headers"]
        refresh_positions(client, engine, admin, clock())
        team, spot = _team_that_wins_its_spot(client, engine, admin)
        with engine.connect() as conn:
            vol_member = conn.execute(text("SELECT m.code FROM team_members m JOIN teams t ON t.id = m.team_id "
                                           "WHERE t.code = :t ORDER BY m.code LIMIT 1"), {"t": team}).scalar_one()
            gw = conn.execute(text(
                "SELECT m.code, s.grid_code FROM grid_staff s JOIN team_members m ON m.id = s.member_id "
                "JOIN teams t ON t.id = m.team_id WHERE s.role = 'primary' AND t.code <> :t "
                "AND s.grid_code <> (SELECT home_grid_code FROM teams WHERE code = :t) ORDER BY s.grid_code LIMIT 1"),
                {"t": team}).one()
            community = conn.execute(text("SELECT parent_code FROM areas WHERE code = :g AND valid_to IS NULL"),
                                     {"g": gw.grid_code}).scalar_one()
            district = conn.execute(text("SELECT parent_code FROM areas WHERE code = :s AND valid_to IS NULL"),
                                    {"s": street}).scalar_one()
            room = conn.execute(text("SELECT code FROM units WHERE kind = 'community_mediation' AND area_code = :c"),
                                {"c": community}).scalar_one()
        specs: dict[str, dict[str, str | None]] = {
            "operator": {"role": "operator", "street_code": street},
            "other_operator": {"role": "operator", "street_code": OTHER_STREET},
            "planner": {"role": "planner"}, "intake": {"role": "intake"},
            "grid_worker": {"role": "grid_worker", "member_code": gw.code},
            "volunteer": {"role": "volunteer", "member_code": vol_member},
            "district_operator": {"role": "operator", "district_code": district},
            "community_operator": {"role": "operator", "community_code": community},
            "unit_member": {"role": "unit", "unit_code": room},
            "deleted": {"role": "admin"}}
        usernames = {"admin": "matrix_admin", **{k: f"matrix_{k}" for k in specs}}  # "deleted" is deleted below
        for who, spec in specs.items():
            r = client.post("/v1/users", headers=admin, json={"username": usernames[who], "password": PASSWORD,
                                                              **spec})
            assert r.status_code == 201, r.text
        tokens = {who: login(client, usernames[who])["headers"] for who in usernames}
        assert client.delete(f"/v1/users/{usernames['deleted']}", headers=admin).status_code == 204
        tokens["nobody"] = {}
        tokens["forged"] = {"Authorization": "Bearer " + tokens["admin"]["Authorization"][7:-4] + "AAAA"}
        w = World(app, client, engine, clock, tokens, street, team, spot, gw.grid_code, 0, usernames)
        w.gw_event = w.report(dispatch=False, where=_point_in_grid(engine, gw.grid_code))["event"]["id"]
        w.room = room
        # the rows' premise: the volunteer's team is based, and stands, in the community operator's community
        home = w.sql("SELECT g.parent_code FROM teams t JOIN areas g ON g.code = t.home_grid_code "
                     "AND g.valid_to IS NULL WHERE t.code = :t", t=team)[0][0]
        there = w.sql("SELECT community_code FROM buildings WHERE ST_Intersects(geom, ST_Buffer("
                      "ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography, 60)::geometry) LIMIT 1",
                      x=spot["lon"], y=spot["lat"])
        assert home == community and (not there or there[0][0] == community), (home, there, community)
        w.room_event = w.at_room()
        w.case = w.sql("SELECT id FROM mediation_cases WHERE event_id = :e", e=w.room_event)[0][0]
        yield w
    engine.dispose()


def _point_in_grid(engine, grid: str) -> dict:
    with engine.connect() as conn:
        x, y = conn.execute(text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM buildings "
                                 "WHERE grid_code = :g ORDER BY code LIMIT 1) s"), {"g": grid}).one()
    return {"lon": x, "lat": y}


def _team_that_wins_its_spot(client, engine, admin) -> tuple[str, dict]:
    """A team that dispatch picks first for an event at its own position (no other team ties with it)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, ST_X(geom), ST_Y(geom) FROM teams WHERE status = 'available' "
                                 "ORDER BY code LIMIT 40")).all()
    for code, x, y in rows:
        r = client.get("/v1/dispatch/recommend", params={"lon": x, "lat": y, "category": "neighbour_dispute"},
                       headers=admin)
        picked = r.json()["picked"]
        if r.status_code == 200 and picked and picked[0]["team"] == code and (
                len(picked) < 2 or picked[1]["eta_s"] - picked[0]["eta_s"] > 60):
            return code, {"lon": x, "lat": y}
    raise AssertionError("no team wins the dispatch at its own position")


# -- the tests --------------------------------------------------------------------------------------------
def test_every_route_has_a_row():
    app = create_app(api_settings_for_routes())
    declared = app_routes(app)
    rows = {r.key for r in TABLE}
    assert len(rows) == len(TABLE), "a route has two rows"
    missing, stale = sorted(declared - rows), sorted(rows - declared)
    assert not missing, f"routes without a row in the matrix (say who may call them): {missing}"
    assert not stale, f"rows for routes the app does not have: {stale}"


def api_settings_for_routes():
    from gridmap.config import Settings

    return Settings(secret_key=SecretStr(secrets.token_urlsafe(48)))


@pytest.mark.parametrize("row", TABLE, ids=lambda r: f"{r.method} {r.path}")
def test_route_answers_each_identity_as_the_table_says(world, row):
    got: dict[str, int] = {}
    for who in IDENTITIES:
        if row.call is not None:
            got[who] = row.call(world, who)
            continue
        url, kw = (row.build or (lambda w, _who: (row.path, {})))(world, who)
        kw = dict(kw)
        restore = kw.pop("restore", None)
        headers = world.fresh_token(who) if row.fresh_session else world.headers(who)
        headers = {**headers, **kw.pop("headers_extra", {})}
        method = "POST" if row.method == "WS" else row.method
        r = world.client.request(method, url, headers=headers, follow_redirects=False, **kw)
        got[who] = r.status_code
        assert r.status_code < 500, f"{who}: {r.status_code} {r.text[:300]}"
        if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
            body = r.json()
            assert body.get("message") and "fix" in body, f"{who}: an error without message/fix: {body}"
        if restore is not None and r.status_code == 200:
            new = {"Authorization": f"Bearer {r.json()['access_token']}"}
            assert world.client.post(url, json=restore, headers=new).status_code == 200
    if row.ends_all_sessions:
        world.log_in_again()
    wrong = {who: f"got {got[who]}, want {row.expect[who]}" for who in IDENTITIES if got[who] != row.expect[who]}
    assert not wrong, f"{row.method} {row.path}: {json.dumps(wrong, ensure_ascii=False)}"
