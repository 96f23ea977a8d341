"""Dispatch advice: the ranking of teams for a point (nothing assigned), and batch road ETAs for planners."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.deps import PrincipalDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import Time
from gridmap.services.advice import MAX_ETA_POINTS, DispatchAdvice

router = APIRouter(prefix="/v1/dispatch", tags=["dispatch"], responses=ERROR_RESPONSES)


def get_advice(request: Request) -> DispatchAdvice:
    st = request.app.state
    return DispatchAdvice(st.engine, st.settings, st.dispatcher, st.clock)


AdviceDep = Annotated[DispatchAdvice, Depends(get_advice)]
Coords = Literal["wgs84", "gcj02"]


class CandidateOut(BaseModel):
    team: str = Field(description="team code (for equipment: the equipment code)")
    rank: int | None
    eta_s: float | None = Field(description="road ETA in seconds; null when not reached within the maximum")
    distance_m: float
    method: str = Field(description="'road', or 'straight_line' for points far from any road")
    reasons: list[str]
    route: list[list[float]] | None = Field(description="the route as [[lon, lat], ...] (WGS84)")
    kind: str | None = None


class RecommendOut(BaseModel):
    lon: float
    lat: float
    grid: str | None
    street: str | None
    skills: list[str] = Field(description="the skills asked for (any of them qualifies a team)")
    method: str
    search: str = Field(description="which search ranked the teams: 'dijkstra', 'hierarchy' (contraction "
                                    "hierarchy with team buckets) or 'none' (straight-line fallback)")
    picked: list[CandidateOut]
    passed_over: list[CandidateOut]
    note: str | None
    equipment: dict[str, list[CandidateOut]] = Field(description="for fire: nearest responders and hydrants")


class EtaIn(BaseModel):
    kind: str = Field(description="'team' (any available team), a team skill such as 'fire', or an equipment "
                                  "kind: 'micro_fire_station', 'micro_fire_truck', 'hydrant'",
                      min_length=1, max_length=64, examples=["micro_fire_station"])
    points: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(
        min_length=1, max_length=MAX_ETA_POINTS, description="[[lon, lat], ...]")
    coords: Coords = "wgs84"
    at: Time | None = Field(None, description="the time the teams' availability is read at (default now)")


class EtaOut(BaseModel):
    kind: str
    eta_s: list[float | None] = Field(description="per point, seconds from the nearest one of the kind; "
                                                  "null where none reaches it")


@router.get("/recommend")
def recommend(session: SessionDep, p: PrincipalDep, advice: AdviceDep,
              lon: Annotated[float, Query(description="longitude (WGS84 unless coords); checked against the "
                                                      "managed area, with lat/lon swaps named")],
              lat: Annotated[float, Query(description="latitude")],
              coords: Coords = "wgs84",
              category: Annotated[str | None, Query(max_length=64, description="event category")] = None,
              skills: Annotated[list[str] | None, Query(description="skills instead of a category")] = None,
              k: Annotated[int | None, Query(ge=1, le=50)] = None,
              max_eta_min: Annotated[float | None, Query(gt=0, le=240)] = None,
              at: Annotated[Time | None, Query(description="ISO 8601 with offset; default now")] = None,
              ) -> RecommendOut:
    """Who would reach the point first by road, and why (nothing is assigned). Operators: own street."""
    a = advice.recommend(session, p, lon=lon, lat=lat, coords=coords, category=category, skills=skills, k=k,
                         max_eta_s=max_eta_min * 60 if max_eta_min else None, at=at)
    return RecommendOut(**a.__dict__)


@router.post("/eta")
def eta(body: EtaIn, p: PrincipalDep, advice: AdviceDep) -> EtaOut:
    """Road ETA from the nearest team or equipment of a kind to each point: one many-to-one search."""
    return EtaOut(kind=body.kind, eta_s=advice.eta(p, points=[(pt[0], pt[1]) for pt in body.points],
                                                   kind=body.kind, coords=body.coords, at=body.at))
