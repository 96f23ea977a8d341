"""Mediation cases (人民调解): a dispute's case at a mediation room, its parties (personal data: the holding
room reads them, admins and the area's operators masked, every read logged), sessions and outcome."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from api.deps import MediationDep, PrincipalDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import NO_NUL, Code
from api.schemas_levels import CaseOpenIn, CaseOut, CaseSummaryOut, OutcomeIn, PartyIn, SessionIn

router = APIRouter(prefix="/v1/mediation", responses=ERROR_RESPONSES, tags=["mediation"])
CaseId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the case's id")]
Purpose = Annotated[str | None, Query(max_length=200, pattern=NO_NUL,
                                      description="why the parties' data is read (logged with the read)")]


@router.get("/cases")
def list_cases(session: SessionDep, svc: MediationDep, p: PrincipalDep,
               unit: Annotated[Code | None, Query(description="a mediation room's code")] = None,
               status: Annotated[Literal["open", "closed"] | None, Query()] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[CaseSummaryOut]:
    """Cases without their parties: a unit member's room's, an operator's area's, all (admins)."""
    return [CaseSummaryOut(**c) for c in svc.list(session, p, unit=unit, status=status, limit=limit)]


@router.post("/cases", status_code=201)
def open_case(body: CaseOpenIn, session: SessionDep, svc: MediationDep, p: PrincipalDep) -> CaseOut:
    """Open a case for an event at a mediation room's rung (one is opened by itself when a dispute arrives)."""
    return CaseOut(**svc.open(session, p, body.event_id))


@router.get("/cases/{case_id}")
def get_case(case_id: CaseId, session: SessionDep, svc: MediationDep, p: PrincipalDep,
             purpose: Purpose = None) -> CaseOut:
    """A case with its parties as the caller may see them; each read of their data is written to the access log."""
    return CaseOut(**svc.get(session, p, case_id, purpose=purpose))


@router.post("/cases/{case_id}/parties", status_code=201)
def add_party(case_id: CaseId, body: PartyIn, session: SessionDep,
              svc: MediationDep, p: PrincipalDep) -> CaseOut:
    """A party to the case (the room that holds it, or an admin); their personal data is stored apart."""
    return CaseOut(**svc.add_party(session, p, case_id, side=body.side, kind=body.kind, name=body.name,
                                             phone=body.phone, id_card=body.id_card))


@router.post("/cases/{case_id}/sessions", status_code=201)
def add_session(case_id: CaseId, body: SessionIn, session: SessionDep,
                svc: MediationDep, p: PrincipalDep) -> CaseOut:
    """A mediation session: when, where, which mediators (also a row of the event's audit trail)."""
    return CaseOut(**svc.add_session(session, p, case_id, held_at=body.held_at, place=body.place,
                                               mediators=body.mediators, note=body.note))


@router.post("/cases/{case_id}/outcome")
def case_outcome(case_id: CaseId, body: OutcomeIn, session: SessionDep,
                 svc: MediationDep, p: PrincipalDep) -> CaseOut:
    """Close the case: agreement or partial (the dispute is settled), or failed → litigation (closed, referred)
    or → department (the event moves up its ladder)."""
    return CaseOut(**svc.outcome(session, p, case_id, outcome=body.outcome,
                                           agreement_text=body.agreement_text, referral=body.referral, note=body.note))
