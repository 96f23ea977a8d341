"""The FastAPI application, built by a factory. Nothing connects at import: the engine, the dispatcher
(road graph and team index), the live-feed listener and the escalation sweeper are created at start-up in
the lifespan and kept on ``app.state``; start-up is refused without a strong secret key.

Run it with ``gridmap serve`` (or ``uvicorn api.app:create_app --factory``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

import gridmap
from api import dashboard, deps, errors, field, resident, screens
from api.routes import dispatch as dispatch_routes
from api.routes import events, levels, mediation, teams, units
from api.routes import registry as registry_routes
from api.routes import simulation as simulation_routes
from gridmap.config import Settings, get_settings
from gridmap.errors import NotFound
from gridmap.services.auth import AuthService, TokenSigner, resolve_secret
from gridmap.services.dispatch import Dispatcher
from gridmap.services.escalation import EscalationService
from gridmap.services.events import EventService, system_clock
from gridmap.services.feed import FeedHub
from gridmap.services.field import FieldService
from gridmap.services.idempotency import Idempotency
from gridmap.services.levels import LevelsService
from gridmap.services.mediation import MediationService
from gridmap.services.metrics import MetricsService
from gridmap.services.notify import LogNotifier, OfferChaser
from gridmap.services.photos import PhotoService
from gridmap.services.qr import Limits, ResidentService
from gridmap.services.registry import Registry, connect
from gridmap.services.simclock import app_clock, dispatch_policy
from gridmap.services.teams import TeamService
from gridmap.services.units import UnitService

log = logging.getLogger("gridmap.api")
DESCRIPTION = """Grid-management (网格化管理) GIS backend: the spatial registry in PostGIS, events from every
channel to closure, tiered escalation (分级分流), the volunteers' live feed and the command-centre metrics.

Log in at `POST /v1/auth/token`, then send `Authorization: Bearer <token>`. Errors are JSON
`{error, field, message, fix}`; a 503 (the database is out of reach) says when to retry in `Retry-After`, and a
500 names its `request_id` (also in the `X-Request-ID` header of every response). A team's live feed: WebSocket `/v1/me/feed/ws` or server-sent events
`GET /v1/me/feed`."""


def create_app(settings: Settings | None = None, registry: Registry | None = None, *,
               clock: Callable | None = None) -> FastAPI:
    """Build the app. ``clock`` (an aware-datetime callable) replaces the wall clock, e.g. in tests; on a
    simulation database ``GRIDMAP_CLOCK=simulation`` makes it the simulation's (gridmap/services/simclock.py)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or (registry.settings if registry is not None else get_settings())
        signer = TokenSigner(resolve_secret(cfg), cfg.token_ttl_s)  # refuses default or weak secrets
        reg = registry or connect(cfg)
        # the simulation's clock only on a simulation database (ConfigError otherwise); its dispatch rule too
        now, sim_clock, sim = app_clock(cfg, reg.engine, clock, system_clock)
        try:
            dispatcher = Dispatcher.from_database(reg.engine, dispatch_policy(sim), now=now())
        except NotFound as exc:  # no road network yet: the API serves, events wait for manual handling
            log.warning("automatic dispatch is off: %s", exc)
            dispatcher = None
        st = app.state
        st.settings, st.registry, st.engine, st.clock, st.dispatcher = cfg, reg, reg.engine, now, dispatcher
        st.sim_clock = sim_clock
        st.auth = AuthService(signer, reg.engine, cfg)
        st.auth.start()  # LISTEN for revoked sessions: they end at once in every process
        st.events = EventService(reg.engine, cfg, dispatcher, now)
        st.events.warm_up()  # before the server answers: the first requests must not pay for it
        # As many request threads as pooled connections: a request beyond them waits for a thread (in order, on
        # the event loop) instead of opening a connection of its own, a new PostgreSQL backend each time.
        pool_size = getattr(reg.engine.pool, "size", None)
        if callable(pool_size):
            anyio.to_thread.current_default_thread_limiter().total_tokens = max(4, pool_size())
        await _build_routes(app)
        st.escalation = EscalationService(reg.engine, dispatcher, now)
        st.metrics = MetricsService(now)
        st.teams = TeamService(reg.engine, dispatcher, now)
        st.units, st.mediation, st.levels = UnitService(reg.engine, now), MediationService(reg.engine, now), \
            LevelsService(now)
        st.feed = FeedHub.for_engine(reg.engine, dispatcher)
        st.feed.start()
        # the field app and the resident's QR page (api/field.py, api/resident.py)
        st.photos = PhotoService(reg.engine, now, max_bytes=cfg.photo_max_bytes)
        st.field = FieldService(reg.engine, st.auth, st.events, st.photos, Idempotency(reg.engine, now), now)
        st.residents = ResidentService(reg.engine, st.events, st.photos, now, limits=Limits(
            cfg.qr_reports_per_device, cfg.qr_reports_per_address, cfg.qr_window_s))
        st.notifier = LogNotifier()  # SMS/voice reminders of unanswered offers: log-only (gridmap/services/notify.py)
        st.chaser = OfferChaser(reg.engine, st.notifier, now, after_s=cfg.notify_after_s)
        sweeper = asyncio.create_task(_sweep_forever(st.escalation, cfg.escalation_interval_s))
        chaser = asyncio.create_task(_sweep_forever(st.chaser, cfg.escalation_interval_s))
        try:
            yield
        finally:
            for task in (sweeper, chaser):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            st.feed.stop()
            st.auth.stop()
            if sim_clock is not None:
                sim_clock.close()
            if registry is None:
                reg.dispose()

    app = FastAPI(title="gridmap", version=gridmap.__version__, lifespan=lifespan, description=DESCRIPTION,
                  default_response_class=errors.GridmapJSON, dependencies=[Depends(deps.no_unknown_query)])
    errors.install(app)
    limits = settings or (registry.settings if registry is not None else get_settings())
    app.add_middleware(simulation_routes.PinSimulationClock, state_of=app)
    app.add_middleware(errors.BodyLimit, max_bytes=limits.max_body_bytes,
                       path_limit=field.body_limit(limits.photo_max_bytes))
    # outermost (added last): request ids and headers on every response, even a 413 or a 500 from below
    app.add_middleware(errors.RequestGuard,
                       page_headers=lambda path: dashboard.page_headers(path) or field.page_headers(path))
    app.include_router(registry_routes.router)
    app.include_router(events.router)
    app.include_router(teams.router)
    app.include_router(dispatch_routes.router)
    app.include_router(units.router)
    app.include_router(mediation.router)
    app.include_router(levels.router)
    app.include_router(simulation_routes.router)
    app.include_router(dashboard.router)
    app.include_router(screens.router)
    app.include_router(field.shell)
    app.include_router(field.api)
    app.include_router(field.dash)
    app.include_router(resident.router)
    return app


async def _build_routes(app: FastAPI) -> None:
    """FastAPI builds the routes of each included router (their pydantic models) on the first request that
    looks at them: ~50 ms at once, holding the event loop, that the first requests of a new process would
    wait for. In-process requests that change nothing make it build them all now: one that matches no route,
    and an intake without credentials (401), which also runs the intake route's body and dependencies."""
    body = b'{"channel": "patrol", "external_id": "-", "category": "-", "location": {"lon": 0, "lat": 0}}'

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    for method, path in (("GET", "/.well-known/gridmap/build-routes"), ("POST", "/v1/events")):
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                   "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                   "headers": headers, "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0)}, receive, send)


async def _sweep_forever(escalation: EscalationService | OfferChaser, interval_s: float) -> None:
    """Time out unanswered offers and escalate overdue events (or remind teams of unanswered offers), every
    ``interval_s`` (0: never)."""
    if interval_s <= 0:
        return
    while True:
        await asyncio.sleep(interval_s)
        try:
            await run_in_threadpool(escalation.sweep)
        except Exception:  # noqa: BLE001 - log and try again next round; the API keeps serving
            log.exception("%s sweep failed", type(escalation).__name__)
