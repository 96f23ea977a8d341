"""Events: intake from every channel, reading, the lifecycle, escalation and the metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api import links
from api.deps import EscalationDep, EventsDep, MetricsDep, PrincipalDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import (
    NO_NUL,
    ActionIn,
    ActOut,
    Channel,
    Code,
    DispatchOut,
    EscalateOut,
    EventIn,
    EventOut,
    IntakeOut,
    MetricsOut,
    OverdueOut,
    RungOut,
    Status,
    SweepOut,
    Time,
    TransitionIn,
    TransitionOut,
)
from gridmap.services.events import Location, Report

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
EventId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the event's id")]


@router.post("/events", status_code=201, tags=["events"],
             responses={200: {"model": IntakeOut, "description": "the same (channel, external_id) again: "
                                                                "the event it made the first time", "links": links.INTAKE},
                        201: {"description": "the event, committed (and the offer, if dispatched)",
                              "links": links.INTAKE}})
def report_event(body: EventIn, response: Response, session: SessionDep, p: PrincipalDep,
                 events: EventsDep) -> IntakeOut:
    """Take an event in from any channel. 201 once it is committed (then it is dispatched); 200 for a retry."""
    loc = body.location
    report = Report(channel=body.channel, external_id=body.external_id, category=body.category,
                    location=Location(lon=loc.lon, lat=loc.lat, coords=loc.coords, building_code=loc.building_code,
                                      address=loc.address, place_code=loc.place_code),
                    severity=body.severity, title=body.title, description=body.description,
                    reported_at=body.reported_at, reporter_name=body.reporter.name if body.reporter else None,
                    reporter_phone=body.reporter.phone if body.reporter else None, dispatch=body.dispatch,
                    answered=body.answered)
    result = events.intake(session, p, report)
    if not result.created:
        response.status_code = 200
    return IntakeOut(event=result.event, created=result.created, dispatch=result.dispatch,
                     duplicate=result.duplicate)


@router.get("/events", tags=["events"])
def list_events(
    session: SessionDep, p: PrincipalDep, events: EventsDep,
    status: Annotated[list[Status] | None, Query()] = None,
    category: Annotated[Code | None, Query()] = None,
    channel: Annotated[Channel | None, Query()] = None,
    area: Annotated[Code | None, Query(description="street, community or grid code")] = None,
    overdue: Annotated[bool | None, Query(description="only (not) overdue events")] = None,
    since: Annotated[Time | None, Query()] = None,
    until: Annotated[Time | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[EventOut]:
    """Events the caller may see, newest first: an operator's street, a team's grid(s) and assignments."""
    rows = events.list(session, p, status=status, category=category, channel=channel, area=area, overdue=overdue,
                       since=since, until=until, limit=limit, offset=offset)
    return [EventOut(**r) for r in rows]


@router.get("/events/{event_id}", tags=["events"])
def get_event(event_id: EventId, session: SessionDep, p: PrincipalDep, events: EventsDep,
              purpose: Annotated[str | None, Query(max_length=200, pattern=NO_NUL,
                                                   description="why the reporter's contact is read (logged)")] = None,
              ) -> EventOut:
    """One event. Operators and admins also see the reporter's contact, and that read is logged."""
    return EventOut(**events.get(session, p, event_id, purpose=purpose))


@router.get("/events/{event_id}/history", tags=["events"])
def event_history(event_id: EventId, session: SessionDep, p: PrincipalDep, events: EventsDep) -> list[TransitionOut]:
    """The event's audit trail (append-only): every transition and escalation, who, when, where, note."""
    return [TransitionOut(**r) for r in events.history(session, p, event_id)]


@router.post("/events/{event_id}/dispatch", tags=["events"],
             responses={200: {"description": "the offer (or why none was made)", "links": links.DISPATCH}})
def dispatch_event(event_id: EventId, session: SessionDep, p: PrincipalDep, events: EventsDep) -> DispatchOut:
    """Offer the event to the nearest available team (operators); reports 'waiting' if none can take it."""
    return DispatchOut(**events.dispatch(session, p, event_id))


@router.post("/events/{event_id}/transitions", tags=["events"])
def transition_event(event_id: EventId, body: TransitionIn, session: SessionDep, p: PrincipalDep,
                     events: EventsDep) -> ActOut:
    """Move the event along its lifecycle (operators): accept, arrive, resolve, close (verified) or reopen."""
    out = events.act(session, p, event_id, body.action, note=body.note, lon=body.lon, lat=body.lat)
    return ActOut(**out)


@router.post("/events/{event_id}/escalate", tags=["escalation"])
def escalate_event(event_id: EventId, body: ActionIn, session: SessionDep, p: PrincipalDep,
                   escalation: EscalationDep) -> EscalateOut:
    """Move the event one rung up its category's ladder (operators), with a new time limit."""
    return EscalateOut(**escalation.escalate(session, p, event_id, body.note))


@router.get("/escalation/ladders", tags=["escalation"])
def ladders(session: SessionDep, p: PrincipalDep, escalation: EscalationDep,
            category: Annotated[Code | None, Query()] = None) -> list[RungOut]:
    """The escalation ladders (分级分流): per category, the rungs and their time limits."""
    return [RungOut(**r) for r in escalation.ladders(session, category)]


@router.post("/escalation/sweep", tags=["escalation"])
def sweep(p: PrincipalDep, escalation: EscalationDep) -> SweepOut:
    """Run the sweep now (admins: every street; operators: their area): time out unanswered offers, escalate
    overdue events."""
    return SweepOut(**escalation.sweep(principal=p))


@router.get("/metrics/events", tags=["metrics"])
def event_metrics(
    session: SessionDep, p: PrincipalDep, metrics: MetricsDep,
    group_by: Annotated[str, Query(pattern=r"^(street|community|grid|category|channel|all)$")] = "street",
    period: Annotated[str, Query(pattern=r"^(day|week|month|quarter|year|all)$")] = "month",
    start: Annotated[Time | None, Query()] = None,
    end: Annotated[Time | None, Query()] = None,
) -> MetricsOut:
    """Response and handling times, closure rate (闭环率), resolution rate and overdue counts, by area and period."""
    return MetricsOut(**metrics.events(session, p, group_by=group_by, period=period, start=start, end=end))


@router.get("/metrics/overdue", tags=["metrics"])
def overdue(session: SessionDep, p: PrincipalDep, metrics: MetricsDep) -> OverdueOut:
    """Open events past their rung's time limit now, by street, community, category and rung."""
    return OverdueOut(**metrics.overdue(session, p))
