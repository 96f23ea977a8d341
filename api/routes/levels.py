"""The levels of command over HTTP: an area's streets, communities or grids side by side (with the safety
index of gridmap.analysis), and the figures of the one-door intake and hotlines and of the units."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query

from api.deps import LevelsDep, PrincipalDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import Channel, Code, Time
from api.schemas_levels import IntakeMetricsOut, OverviewOut, UnitMetricsOut
from gridmap.analysis.safety import WINDOWS, safety_index
from gridmap.services.auth import Principal
from gridmap.services.levels import LevelsService

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


def overview_with_safety(svc: LevelsService, session: Any, p: Principal, area: str | None,
                         at: Any = None) -> dict[str, Any]:
    """The overview of ``area`` with each row's safety index (平安指数) of the latest month, scored by
    :func:`gridmap.analysis.safety.safety_index` from counts read inside the caller's scope."""
    out = svc.overview(session, p, area=area, at=at)
    counts, areas = svc.safety_inputs(session, p, area=out["area"]["code"], windows=WINDOWS, at=at)
    if len(areas) and len(counts):
        scored = safety_index(counts, areas)
        latest = scored[scored["month"] == scored["month"].max()].set_index("code")
        for row in out["areas"]:
            if row["code"] in latest.index:
                v = latest.loc[row["code"], "index"]
                row["safety_index"] = None if pd.isna(v) else round(float(v), 1)
                row["safety_month"] = pd.Timestamp(latest.loc[row["code"], "month"]).strftime("%Y-%m")
    return out


@router.get("/levels/overview", tags=["levels"])
def overview(session: SessionDep, svc: LevelsDep, p: PrincipalDep,
             area: Annotated[Code | None, Query(description="a district, street or community; default: yours")] = None,
             at: Annotated[Time | None, Query(description="the clock (ISO 8601 with offset); default now")] = None,
             ) -> OverviewOut:
    """The areas one level below ``area`` side by side (a district's streets, a street's communities, a
    community's grids): open, overdue, response time, closure rate, safety index."""
    return OverviewOut(**overview_with_safety(svc, session, p, area, at))


@router.get("/metrics/intake", tags=["metrics"])
def intake_metrics(session: SessionDep, svc: LevelsDep, p: PrincipalDep,
                   group_by: Annotated[str, Query(pattern=r"^(channel|street|community|category|all)$")] = "channel",
                   channel: Annotated[list[Channel] | None, Query()] = None,
                   start: Annotated[Time | None, Query()] = None, end: Annotated[Time | None, Query()] = None,
                   ) -> IntakeMetricsOut:
    """Calls and walk-ins taken, answered on the spot, dispatched, escalated, open, closed (e.g. the director's
    hotline: channel=director_hotline)."""
    return IntakeMetricsOut(**svc.intake(session, p, group_by=group_by, channels=channel, start=start,
                                                   end=end))


@router.get("/metrics/units", tags=["metrics"])
def unit_metrics(session: SessionDep, svc: LevelsDep, p: PrincipalDep,
                 group_by: Annotated[str, Query(pattern=r"^(unit|rung|unit_rung|kind|place|category)$")] = "unit",
                 start: Annotated[Time | None, Query()] = None, end: Annotated[Time | None, Query()] = None,
                 unit: Annotated[Code | None, Query(description="one unit's rows only")] = None,
                 ) -> UnitMetricsOut:
    """Resolution rate and time per unit (or ladder rung, a unit's rung, unit kind, place, category): the
    disputes that reached it, settled there, escalated, referred, returned, still there, resolved in the end,
    minutes spent there and to settling there (median, p90); a mediation room's cases by outcome."""
    return UnitMetricsOut(**svc.units(session, p, group_by=group_by, start=start, end=end, unit=unit))
