"""Bodies of the levels of command's HTTP routes: units, their inboxes and actions, mediation cases, the
screens' overviews and the intake and unit figures (pydantic)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.schemas import NO_NUL, Code, EventOut, Text200, Text1000, Text4000, Time, _In
from gridmap.core.levels import UNIT_ACTIONS
from gridmap.core.vocabulary import (
    CASE_OUTCOMES,
    MEDIATION_CASE_STATUSES,
    PARTY_KINDS,
    PARTY_SIDES,
    REFERRALS,
)

UnitAction = Literal[UNIT_ACTIONS]  # type: ignore[valid-type]  # the vocabulary's words (mypy cannot read a tuple)


class UnitOut(BaseModel):
    code: str
    kind: str
    kind_zh: str | None
    name: str
    name_zh: str
    area: str = Field(description="the area it serves (a community, street or district)")
    place: str | None = Field(description="the building it serves instead (a mall's units)")
    active: bool
    mediation: bool = Field(description="a mediation room: a dispute that reaches it gets a case")


class RungClockOut(BaseModel):
    """One rung an event stood on: its unit and clock."""

    rung: int
    unit: str | None
    unit_name: str | None = None
    unit_name_zh: str | None = None
    entered_at: dt.datetime
    entered_how: str
    due_at: dt.datetime | None
    taken_at: dt.datetime | None
    taken_by: str | None
    info_requested_at: dt.datetime | None
    left_at: dt.datetime | None
    left_how: str | None = Field(description="escalated, auto_escalated, returned, settled, closed, referred")
    left_by: str | None
    minutes: float = Field(description="on this rung (until now while it is there)")
    overdue: bool
    remaining_s: int | None = Field(None, description="until the rung's time limit (negative: overdue)")


class CaseRef(BaseModel):
    id: int
    code: str
    status: str


class InboxItemOut(BaseModel):
    event: EventOut
    clock: RungClockOut
    case: CaseRef | None


class InboxOut(BaseModel):
    unit: UnitOut
    now: dt.datetime
    open: int
    overdue: int
    taken: int
    events: list[InboxItemOut]


class UnitActionIn(_In):
    note: Text1000 | None = Field(None, description="what was done, asked or decided (the audit trail's note)")
    agreement: Text4000 | None = Field(None, description="settle: the agreement reached (closes an open mediation "
                                                         "case with it)")


class UnitActionOut(BaseModel):
    action: str
    event: EventOut
    rungs: list[RungClockOut]


# -- mediation ----------------------------------------------------------------------------------------------
class PartyOut(BaseModel):
    id: int
    side: str
    kind: str
    name: str | None = Field(description="in clear for the room holding the case, masked for admins and operators, "
                                         "absent for anyone else")
    phone: str | None
    id_card: str | None


class SessionOut(BaseModel):
    id: int
    held_at: dt.datetime
    place: str | None
    mediators: list[str]
    note: str | None
    recorded_by: str
    recorded_at: dt.datetime


class CaseEventOut(BaseModel):
    id: int
    code: str
    category: str
    status: str


class CaseOut(BaseModel):
    id: int
    code: str
    event: CaseEventOut
    unit: str
    unit_name: str | None
    unit_name_zh: str | None
    opened_at: dt.datetime
    opened_by: str
    status: Literal[MEDIATION_CASE_STATUSES]  # type: ignore[valid-type]
    outcome: str | None
    outcome_at: dt.datetime | None
    referral: str | None
    referred_unit: str | None
    agreement_text: str | None = Field(description="redacted for readers without the right to the parties' data")
    closed_by: str | None
    access: Literal["clear", "masked", "none"] = Field(description="how this reader sees the parties")
    parties: list[PartyOut]
    sessions: list[SessionOut]


class CaseSummaryOut(BaseModel):
    id: int
    code: str
    event_id: int
    event_code: str
    category: str
    unit: str
    status: str
    outcome: str | None
    opened_at: dt.datetime
    outcome_at: dt.datetime | None


Name = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=NO_NUL)]


class PartyIn(_In):
    side: Literal[PARTY_SIDES]  # type: ignore[valid-type]
    kind: Literal[PARTY_KINDS] = "person"  # type: ignore[valid-type]
    name: Name
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 \-]{2,19}$")] | None = None
    id_card: Annotated[str, StringConstraints(pattern=r"^[0-9]{15}([0-9]{2}[0-9Xx])?$")] | None = None


class SessionIn(_In):
    held_at: Time
    place: Text200 | None = None
    mediators: list[Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=NO_NUL)]] = \
        Field(min_length=1, max_length=20)
    note: Text1000 | None = None


class CaseOpenIn(_In):
    event_id: Annotated[int, Field(ge=1, le=2**63 - 1)]


class OutcomeIn(_In):
    outcome: Literal[CASE_OUTCOMES]  # type: ignore[valid-type]
    agreement_text: Text4000 | None = None
    referral: Literal[REFERRALS] | None = Field(  # type: ignore[valid-type]
        None, description="where a failed mediation goes")
    note: Text1000 | None = None


# -- the screens' overviews and the figures -------------------------------------------------------------------
class AreaRef(BaseModel):
    code: str
    level: str
    name: str | None
    name_zh: str | None
    parent: str | None


class AreaFiguresOut(BaseModel):
    code: str
    name: str | None
    name_zh: str | None
    population: int | None
    open: int
    overdue: int
    reported_today: int
    reported_period: int
    closure_rate: float | None = Field(description="闭环率: closed / reported in the period")
    response_p50_min: float | None = Field(description="median reported → on site in the period, minutes")
    bbox: list[float]
    safety_index: float | None = Field(None, description="平安指数 of the latest month (gridmap.analysis.safety)")
    safety_month: str | None = None


class OverviewOut(BaseModel):
    at: dt.datetime
    area: AreaRef
    level_below: str
    period_days: int
    totals: dict[str, float | int | None]
    areas: list[AreaFiguresOut]


class IntakeRow(BaseModel):
    key: str | None
    taken: int
    answered_on_the_spot: int
    dispatched: int
    escalated: int
    open: int
    closed: int
    answered_rate: float | None
    dispatched_rate: float | None


class IntakeMetricsOut(BaseModel):
    group_by: str
    start: dt.datetime
    end: dt.datetime
    area: str | None
    rows: list[IntakeRow]


class UnitRow(BaseModel):
    key: str | None
    events: int = Field(description="disputes (events) that reached it")
    open: int
    settled: int
    escalated: int = Field(description="sent on up the ladder from it (a failed mediation sent to a department too)")
    referred: int = Field(description="referred from it to litigation (a failed mediation)")
    returned: int
    overdue: int
    done: int = Field(description="those that left it")
    resolved: int = Field(description="of those, the ones whose event ended resolved (here or later)")
    resolution_rate: float | None = Field(description="resolved / done")
    settle_rate: float | None = Field(description="settled here / done")
    minutes: dict[str, float | None] = Field(description="time there of those that left it: avg, p50, p90, max")
    settle_min: dict[str, float | None] = Field(
        description="arrival at the rung to settled there, of those settled there: avg, p50, p90")
    take_min: dict[str, float | None]
    cases: dict[str, Any] | None = Field(None, description="a mediation room's cases by outcome (group_by=unit)")


class UnitMetricsOut(BaseModel):
    group_by: str
    start: dt.datetime
    end: dt.datetime
    unit: str | None = None
    rows: list[UnitRow]


CodeQuery = Code
