"""Request and response bodies of the HTTP API (pydantic). Text fields refuse NUL bytes and have a length
limit; coordinates must be finite; ids fit PostgreSQL's bigint."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from gridmap.core.lifecycle import OPERATOR_ACTIONS
from gridmap.core.vocabulary import CHANNELS, EVENT_STATUSES, USER_ROLES

NO_NUL = r"^[^\x00]*$"
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
Text1000 = Annotated[str, StringConstraints(max_length=1000, pattern=NO_NUL)]
Text4000 = Annotated[str, StringConstraints(max_length=4000, pattern=NO_NUL)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Lon = Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]
Lat = Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
StrictBool = Annotated[bool, Field(strict=True)]


def _is_number(text: str) -> bool:
    """``1700000000``, ``-1.5``, ``1e-166``: what pydantic would read as Unix seconds."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _iso_only(v: object) -> object:
    """A time must be ISO 8601 text: numbers (Unix seconds) are refused, they hide unit and zone mistakes."""
    if isinstance(v, int | float | bool) or (isinstance(v, str) and _is_number(v)):
        raise ValueError("give an ISO 8601 time with a UTC offset, e.g. 2026-11-02T09:30:00+08:00")
    return v


def _sane_year(v: dt.datetime) -> dt.datetime:
    """Years 1900-2199 only: the services add and subtract days and convert time zones (year 1 or 9999
    overflows), and nothing the registry holds lies outside them."""
    if not (1900 <= v.year < 2200):
        raise ValueError(f"year {v.year} is outside 1900-2199; give a time such as 2026-11-02T09:30:00+08:00")
    return v


#: an ISO 8601 date-time of the years 1900-2199 (numbers are not accepted as Unix times)
Time = Annotated[dt.datetime, BeforeValidator(_iso_only), AfterValidator(_sane_year)]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]  # the vocabulary's words (mypy cannot read a tuple)
Status = Literal[EVENT_STATUSES]  # type: ignore[valid-type]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- intake -------------------------------------------------------------------------------------------------
class LocationIn(_In):
    """Where: lon/lat (WGS84, or GCJ-02 with coords='gcj02'), or a building code, an address, or a place code."""

    lon: Finite | None = Field(None, description="longitude, decimal degrees", examples=[120.1206])
    lat: Finite | None = Field(None, description="latitude, decimal degrees", examples=[30.2829])
    coords: Literal["wgs84", "gcj02"] = Field("wgs84", description="gcj02: from Amap/Tencent maps; converted")
    building_code: Code | None = None
    address: Text200 | None = None
    place_code: Code | None = Field(None, description="the place's QR code (余安码): a business or building code")


class ReporterIn(_In):
    """The reporting resident (personal data: stored apart, shown only to operators, every read logged)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=NO_NUL)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 \-]{2,19}$")] | None = None


class EventIn(_In):
    channel: Channel
    external_id: ExternalId = Field(description="the channel's own id (12345 ticket no., message id, device "
                                                "event id, or a UUID made on the phone); makes retries safe")
    category: Code = Field(examples=["neighbour_dispute"])
    location: LocationIn
    severity: Annotated[int, Field(strict=True)] | None = Field(None, ge=1, le=4)
    title: Text200 | None = None
    description: Text4000 | None = None
    reported_at: Time | None = Field(None, description="with a UTC offset; default: now")
    reporter: ReporterIn | None = None
    dispatch: StrictBool = Field(True, description="offer it to the nearest available team right away")
    answered: Text1000 | None = Field(None, description="answered on the spot (答复即办结): the answer given; the "
                                                        "event closes at once and is never dispatched (hotline_12345, "
                                                        "walk_in, director_hotline)")


# -- events out ---------------------------------------------------------------------------------------------
class LocationOut(BaseModel):
    lon: float
    lat: float
    source: str | None
    address: str | None
    place_code: str | None
    building_code: str | None


class AreaOut(BaseModel):
    street: str | None
    community: str | None
    grid: str | None
    grid_area_id: int | None


class Ref(BaseModel):
    id: int
    code: str


class Milestones(BaseModel):
    dispatched: dt.datetime | None
    accepted: dt.datetime | None
    on_site: dt.datetime | None
    resolved: dt.datetime | None
    closed: dt.datetime | None


class EscalationOut(BaseModel):
    rung: int
    level: str | None
    handler: str | None
    handler_zh: str | None
    started_at: dt.datetime | None
    due_at: dt.datetime | None
    overdue: bool
    unit: str | None = Field(None, description="the unit holding the event at its rung (its inbox)")


class ReporterOut(BaseModel):
    name: str | None
    phone: str | None


class EventOut(BaseModel):
    id: int
    code: str
    channel: str
    external_id: str | None
    category: str
    severity: int
    title: str | None
    description: str | None
    status: str
    reported_at: dt.datetime
    location: LocationOut
    area: AreaOut
    team: str | None
    duplicate_of: Ref | None
    milestones: Milestones
    escalation: EscalationOut
    legal_actions: list[str]
    reporter: ReporterOut | None = None
    outcome: str | None = Field(None, description="how it ended without the team lifecycle: answered_on_the_spot, "
                                                  "settled, agreement, partial, litigation")


class DispatchOut(BaseModel):
    assignment_id: int | None
    team: str | None
    waiting: bool
    eta_s: float | None
    message: str


class DuplicateOut(BaseModel):
    id: int
    code: str
    distance_m: float
    minutes_apart: float


class IntakeOut(BaseModel):
    event: EventOut
    created: bool = Field(description="false: the same (channel, external_id) was reported before; this is it")
    dispatch: DispatchOut | None
    duplicate: DuplicateOut | None


class TransitionOut(BaseModel):
    id: int
    at: dt.datetime
    action: str
    from_status: str | None
    to_status: str | None
    rung: int | None
    actor: str
    actor_role: str | None
    note: str | None
    lon: float | None
    lat: float | None
    detail: dict[str, Any] | None


class ActionIn(_In):
    note: Text1000 | None = None
    lon: Lon | None = Field(None, description="where the actor is (WGS84)")
    lat: Lat | None = None


class TransitionIn(ActionIn):
    action: Literal[OPERATOR_ACTIONS]  # type: ignore[valid-type]


class ActOut(BaseModel):
    event: EventOut
    dispatch: DispatchOut | None


class EscalateOut(BaseModel):
    from_rung: int
    to_rung: int
    level: str
    handler: str
    handler_zh: str
    due_at: dt.datetime
    was_due_at: dt.datetime | None
    unit: str | None = Field(None, description="the unit behind the new rung (None: a team's rung)")


class RungOut(BaseModel):
    category: str
    rung: int
    level: str
    name: str
    name_zh: str
    time_limit_min: int
    auto_escalate: bool
    unit_kind: str | None = Field(None, description="the kind of unit behind the rung, found by where the event is")
    unit_code: str | None = Field(None, description="the one unit behind the rung")


class TimeoutOut(BaseModel):
    event_id: int
    team: str | None
    waiting: bool


class EscalatedOut(EscalateOut):
    event_id: int
    code: str


class SweepOut(BaseModel):
    at: dt.datetime
    timeouts: list[TimeoutOut] = Field(description="offers not answered in time, and where they went next")
    offered: list[TimeoutOut] = Field(description="waiting events now offered to a team")
    escalated: list[EscalatedOut]
    overdue: int


# -- teams and assignments ----------------------------------------------------------------------------------
class AssignmentEventOut(BaseModel):
    id: int
    code: str
    category: str
    severity: int
    title: str | None
    status: str
    reported_at: dt.datetime
    lon: float
    lat: float
    address: str | None
    grid: str | None


class AssignmentOut(BaseModel):
    id: int
    status: str
    team: str
    rank: int | None
    eta_s: float | None
    distance_m: float | None
    method: str | None
    offered_at: dt.datetime
    respond_by: dt.datetime | None
    responded_at: dt.datetime | None
    route: dict[str, Any] | None = Field(description="GeoJSON LineString from the team to the event")
    event: AssignmentEventOut


class RespondOut(BaseModel):
    assignment: AssignmentOut
    event: EventOut
    dispatch: DispatchOut | None


Accuracy = Annotated[float | None, Field(None, ge=0, le=100_000, allow_inf_nan=False,
                                         description="the fix's horizontal accuracy in metres, as the phone "
                                                     "reports it (used to judge jumps; stored with the position)")]


class PositionIn(_In):
    team: Code
    lon: Finite
    lat: Finite
    at: Time | None = Field(None, description="when the phone took the fix (with offset); default: now")
    coords: Literal["wgs84", "gcj02"] = "wgs84"
    accuracy_m: Accuracy = None


class PositionsIn(_In):
    positions: list[PositionIn] = Field(min_length=1, max_length=2000)


class PointIn(_In):
    lon: Finite
    lat: Finite
    at: Time | None = None
    coords: Literal["wgs84", "gcj02"] = "wgs84"
    accuracy_m: Accuracy = None


class FlaggedFix(BaseModel):
    """A fix stored nowhere and not used for dispatch: the team stays where its last plausible fix put it."""

    index: int = Field(description="its place in the request's positions (0 for PUT /teams/{code}/position)")
    team: str
    at: dt.datetime
    reason: str
    speed_kmh: float = Field(description="speed from the team's last accepted fix")
    distance_m: float
    seconds: float


class PositionsOut(BaseModel):
    received: int
    updated: int = Field(description="newer than what was stored (older fixes are ignored)")
    flagged: list[FlaggedFix] = Field(default_factory=list,
                                      description="implausible jumps (faster than any road allows): not used")


class TeamStatusIn(_In):
    status: Literal["available", "off_duty"]


class TeamOut(BaseModel):
    code: str
    name: str
    kind: str
    status: str
    skills: list[str]
    home_grid: str | None
    street: str | None
    position_at: dt.datetime | None
    lon: float | None
    lat: float | None


# -- access -------------------------------------------------------------------------------------------------
class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: dt.datetime
    username: str
    role: str


class LoginIn(_In):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]


class ScopeOut(BaseModel):
    level: str = Field(description="district, street or community (operators); unit (unit members)")
    code: str
    streets: list[str]
    communities: list[str]


class MeOut(BaseModel):
    username: str
    role: str
    street: str | None
    team: str | None
    grids: list[str]
    scope: ScopeOut | None = None


class UserIn(_In):
    username: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.\-]{3,40}$")]
    password: Annotated[str, StringConstraints(min_length=12, max_length=200, pattern=NO_NUL)]
    role: Literal[USER_ROLES]  # type: ignore[valid-type]
    street_code: Code | None = None
    member_code: Code | None = None
    district_code: Code | None = Field(None, description="an operator of a district (all its streets)")
    community_code: Code | None = Field(None, description="an operator of a community (its grids only)")
    unit_code: Code | None = Field(None, description="a unit member's unit")


class UserOut(BaseModel):
    id: int
    username: str
    role: str


Role = Literal[USER_ROLES]  # type: ignore[valid-type]
NewPassword = Annotated[str, StringConstraints(min_length=12, max_length=200, pattern=NO_NUL)]


class UserDetailOut(BaseModel):
    id: int
    username: str
    role: str
    street_code: str | None
    member_code: str | None
    district_code: str | None = None
    community_code: str | None = None
    unit_code: str | None = None
    active: bool
    created_at: dt.datetime
    open_sessions: int = Field(description="sessions neither revoked nor expired")
    last_seen_at: dt.datetime | None = Field(description="when one of the user's sessions was last used (to the minute)")


class UserPatchIn(_In):
    """The fields to change; any change ends every session of the user."""

    active: StrictBool | None = None
    role: Role | None = None
    street_code: Code | None = None
    member_code: Code | None = None
    district_code: Code | None = None
    community_code: Code | None = None
    unit_code: Code | None = None


class PasswordIn(_In):
    password: NewPassword


class OwnPasswordIn(_In):
    old_password: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]
    new_password: NewPassword


class SessionsEndedOut(BaseModel):
    sessions_ended: int


class PlaceOut(BaseModel):
    kind: str
    code: str
    name: str | None
    place_kind: str | None
    address: str | None
    lon: float
    lat: float
    area: AreaOut | None


class ResidentOut(BaseModel):
    id: int
    household_id: int
    building_id: int
    building_code: str | None
    grid_code: str | None
    community_code: str | None
    unit: int | None
    floor: int | None
    room: str | None
    sex: str | None
    birth_year: int | None
    is_party_member: bool
    flags: list[str]
    name: str | None = None
    id_card: str | None = None
    phone: str | None = None


# -- metrics ------------------------------------------------------------------------------------------------
class Durations(BaseModel):
    avg: float | None
    p50: float | None = None
    p90: float | None = None


class MetricsRow(BaseModel):
    key: str | None
    period: str | None
    reported: int
    resolved: int
    closed: int
    open: int
    overdue: int
    closure_rate: float | None = Field(description="闭环率: closed / reported")
    resolution_rate: float | None = Field(description="(resolved + closed) / reported")
    response_min: Durations = Field(description="reported → on site, minutes")
    handling_min: Durations = Field(description="on site → resolved, minutes")
    closure_min: Durations = Field(description="reported → closed, minutes")


class MetricsOut(BaseModel):
    group_by: str
    period: str
    start: dt.datetime
    end: dt.datetime
    street: str | None
    rows: list[MetricsRow]


class OverdueRow(BaseModel):
    street_code: str | None
    community_code: str | None
    category: str
    rung: int
    overdue: int


class OverdueOut(BaseModel):
    at: dt.datetime
    total: int
    rows: list[OverdueRow]
