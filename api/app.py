"""The FastAPI application, built by a factory; the database engine is created at start-up, not import.

Run it with ``gridmap serve`` (or ``uvicorn api.app:create_app --factory``).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from gridmap.config import Settings, get_settings
from gridmap.errors import Conflict, DatabaseError, GridmapError, InvalidInput, LoadRejected, NotFound
from gridmap.services.registry import Registry, connect

# One table maps domain errors to HTTP status codes.
STATUS = {InvalidInput: 422, LoadRejected: 422, NotFound: 404, Conflict: 409, DatabaseError: 503}


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.registry = registry or connect(settings or get_settings())
        yield
        if registry is None:
            app.state.registry.dispose()

    app = FastAPI(title="gridmap", version="0.1.0", lifespan=lifespan,
                  description="Grid-management (网格化管理) GIS backend: the spatial registry in PostGIS.")

    @app.exception_handler(GridmapError)
    async def _domain_error(request: Request, exc: GridmapError) -> JSONResponse:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
        return JSONResponse(status_code=status, content=exc.to_dict())

    @app.get("/health")
    def health(request: Request) -> dict:
        """Liveness and the registry's row counts."""
        return {"status": "ok", "counts": request.app.state.registry.counts()}

    @app.get("/layers")
    def layers() -> list[str]:
        """Names of the layers that can be read."""
        return Registry.layers()

    @app.get("/layers/{name}", response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
    def layer(
        request: Request, name: str,
        area: Annotated[str | None, Query(description="street/community/grid code")] = None,
        bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> Response:
        """A layer as GeoJSON (public columns only), filtered by area or bbox."""
        box = None
        if bbox is not None:
            try:
                box = tuple(float(v) for v in bbox.split(","))
            except ValueError:
                box = ()
            if len(box) != 4:
                raise InvalidInput(f"{bbox!r} is not four numbers", field="bbox",
                                   fix="give min_lon,min_lat,max_lon,max_lat, e.g. 120.09,30.27,120.10,30.28")
        gdf = request.app.state.registry.layer(name, area=area, bbox=box, limit=limit)
        return Response(gdf.to_json(drop_id=True, to_wgs84=False), media_type="application/geo+json")

    return app
