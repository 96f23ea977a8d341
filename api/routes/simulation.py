"""Simulation databases (``gridmap simulate``): what the API runs on, and the simulation's clock."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import PrincipalDep
from api.errors import ERROR_RESPONSES
from api.schemas import Time
from gridmap.services.simclock import SimulationService

router = APIRouter(prefix="/v1/simulation", tags=["simulation"], responses=ERROR_RESPONSES)


class SimulationOut(BaseModel):
    simulation_database: bool = Field(description="the database carries the simulation mark (made by gridmap simulate)")
    clock: str = Field(description="'system' (the wall clock) or 'simulation' (the database's, moved by the simulator)")
    now: dt.datetime
    source: str | None = Field(description="what the simulation database was copied from")
    seed: int | None
    dispatch_rule: str = Field(description="how the responder is chosen here: 'road_eta' (gridmap's own) unless a "
                                           "simulation database names another")
    created_at: dt.datetime | None


class ClockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Time = Field(description="the simulation's new now (ISO 8601 with offset); never earlier than it is")


class ClockOut(BaseModel):
    now: dt.datetime


def _service(request: Request) -> SimulationService:
    st = request.app.state
    return SimulationService(st.engine, st.sim_clock, st.clock)


@router.get("")
def simulation_state(request: Request, p: PrincipalDep) -> SimulationOut:
    """Whether this API runs on a simulation database and on whose clock, and its dispatch rule."""
    return SimulationOut(**_service(request).state(p))


@router.put("/clock")
def move_clock(request: Request, body: ClockIn, p: PrincipalDep) -> ClockOut:
    """Move the simulation's clock forward (admins; only an API started with GRIDMAP_CLOCK=simulation on a
    simulation database: 409 otherwise)."""
    return ClockOut(**_service(request).move_clock(p, body.at))


class PinSimulationClock:
    """On an API driven by the simulation's clock, each HTTP request reads the clock once as it starts and sees
    that instant throughout (also in the threads it hands work to): every process serving the database agrees,
    and no request straddles a step of the simulation. Does nothing on the system clock."""

    def __init__(self, app: ASGIApp, state_of: object) -> None:
        self.app = app
        self.state_of = state_of  # the FastAPI app: its state is filled in by the lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sim = getattr(getattr(self.state_of, "state", None), "sim_clock", None) if scope["type"] == "http" else None
        if sim is None:
            return await self.app(scope, receive, send)
        now = await run_in_threadpool(sim.read)
        with sim.pinned(now):
            await self.app(scope, receive, send)
