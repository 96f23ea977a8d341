"""The notebook-friendly registry: open the database, read any layer as a GeoDataFrame, load and export.

>>> import gridmap as gm
>>> db = gm.connect()                                   # doctest: +SKIP
>>> grids = db.layer("grids", area="330106900001")      # the grids of one community  # doctest: +SKIP
>>> blds = db.layer("buildings", bbox=(120.09, 30.27, 120.10, 30.28))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Engine

from gridmap.config import Settings, get_settings
from gridmap.core.privacy import mask_frame, redact_values
from gridmap.errors import DatabaseError, Forbidden, InvalidInput
from gridmap.services import loading
from gridmap.services.auth import Principal
from gridmap.services.scopes import require_area
from gridmap.storage import areas as areas_sql
from gridmap.storage import dataset as dataset_sql
from gridmap.storage import events as events_sql
from gridmap.storage import files, migrate
from gridmap.storage import layers as layers_sql
from gridmap.storage import people as people_sql
from gridmap.storage import scopes as scopes_sql
from gridmap.storage.db import check_postgis, database_url, make_engine
from gridmap.storage.layers import AREA_LEVEL_LAYERS, LAYERS, LayerSpec, layer_spec

#: Layers every signed-in role may read over HTTP: the registry's public, non-operational data.
BASE_LAYERS = ("areas", *AREA_LEVEL_LAYERS, "buildings", "businesses", "fire_equipment", "road_nodes", "road_edges")
#: Who may read which layer over HTTP (``layer_for``). Teams (live positions) and events (operational, with
#: free text) only for the roles that run or plan the street; an operator only those of their area.
LAYER_ROLES = {"admin": None, "planner": None, "operator": None,  # None: every layer
               "grid_worker": BASE_LAYERS, "volunteer": BASE_LAYERS, "intake": BASE_LAYERS, "unit": BASE_LAYERS}
#: Layers an operator reads only inside their own area (district, street or community), filtered in SQL by
#: the rows' codes: events by street (community), teams by home grid.
STREET_LAYERS = ("events", "teams")
_SCOPED_LAYER = {"events": scopes_sql.events, "teams": scopes_sql.teams}


def redact_free_text(conn: Connection, spec: LayerSpec, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``gdf`` with the layer's free-text columns redacted (the reporters' names blanked too, for events)."""
    cols = [c for c in spec.free_text if c in gdf.columns]
    if not cols or not len(gdf):
        return gdf
    known = [()] * len(gdf)
    if spec.name == "events" and "id" in gdf.columns:
        names = events_sql.reporter_names(conn, [int(i) for i in gdf["id"].dropna()])
        known = [(names[int(i)],) if not pd.isna(i) and int(i) in names else () for i in gdf["id"]]
    out = gdf.copy()
    for c in cols:
        out[c] = pd.Series(redact_values(out[c].tolist(), known), index=out.index, dtype=object)
    return out


class Registry:
    """A handle on the spatial registry in PostGIS. Create it with :func:`connect`."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def __repr__(self) -> str:
        return f"Registry({self.engine.url.render_as_string(hide_password=True)})"

    # -- reading ----------------------------------------------------------------------------------
    @staticmethod
    def layers() -> list[str]:
        """Names accepted by :meth:`layer`: the tables plus ``districts/streets/communities/grids``."""
        return [*LAYERS, *AREA_LEVEL_LAYERS]

    def layer(
        self, name: str, *, area: str | None = None, bbox: tuple[float, float, float, float] | None = None,
        at: dt.datetime | None = None, columns: list[str] | None = None, limit: int | None = None,
    ) -> gpd.GeoDataFrame:
        """One layer as a GeoDataFrame (EPSG:4326), without personal data.

        Parameters
        ----------
        name : ``buildings``, ``businesses``, ``fire_equipment``, ``teams``, ``events``, ``road_nodes``,
            ``road_edges``, ``areas`` or an area level: ``districts``, ``streets``, ``communities``, ``grids``.
        area : code of a street, community or grid: only what lies inside it (for area layers: the area
            and everything below it).
        bbox : (min_lon, min_lat, max_lon, max_lat).
        at : for area layers, the boundary version valid at that time (default: current).
        columns : a subset of the public columns.

        Examples
        --------
        >>> db = connect()                                                   # doctest: +SKIP
        >>> db.layer("fire_equipment", area="330106900").kind.value_counts()  # doctest: +SKIP
        """
        spec = layer_spec(name)
        flt = areas_sql.AreaFilter(area=area, bbox=bbox, at=at)
        with self.engine.connect() as conn:
            return layers_sql.select_layer(conn, spec, flt, level=layers_sql.level_of(name), columns=columns, limit=limit)

    def layer_for(self, p: Principal, name: str, *, area: str | None = None,
                  bbox: tuple[float, float, float, float] | None = None, limit: int | None = None) -> gpd.GeoDataFrame:
        """A layer as ``p`` may read it over HTTP (see :data:`LAYER_ROLES`): operators' events and teams only in
        their area (``area`` must lie inside it); free text (an event's title, description) redacted for roles
        without the right to personal data (everyone but operators and admins)."""
        spec = layer_spec(name)
        allowed = LAYER_ROLES.get(p.role, ())
        if allowed is not None and name not in allowed:
            raise Forbidden(f"role {p.role!r} may not read the {name} layer", field="layer",
                            fix=f"this role reads {', '.join(allowed)}" if allowed else "this role reads no layers")
        where, params = None, None
        if p.role == "operator" and spec.name in STREET_LAYERS:
            if not p.area:
                raise Forbidden(f"operator {p.username} has no area", field="street",
                                fix="an admin must give the operator a district, street or community "
                                    "(gridmap users add ... --street)")
            where, params = _SCOPED_LAYER[spec.name]("t.", ":scope_area"), {"scope_area": p.area}
        flt = areas_sql.AreaFilter(area=area, bbox=bbox)
        with self.engine.connect() as conn:
            if where is not None and area is not None:
                require_area(conn, p, area)
            gdf = layers_sql.select_layer(conn, spec, flt, level=layers_sql.level_of(name), limit=limit, where=where,
                                          params=params)
            if not p.sees_personal_data:
                gdf = redact_free_text(conn, spec, gdf)
        return gdf

    def residents(
        self, *, area: str | None = None, bbox: tuple[float, float, float, float] | None = None,
        personal: bool = False, unmasked: bool = False, actor: str | None = None, purpose: str | None = None,
        limit: int | None = None, after: int | None = None,
    ) -> gpd.GeoDataFrame:
        """Residents (one row each, located at their building), by default WITHOUT personal data.

        ``personal=True`` adds name, ID-card number and phone, masked (张**, 330106********1234,
        138****5678). ``unmasked=True`` shows them in clear and needs ``actor`` and ``purpose``. Every
        read of personal data, masked or not, is written to the append-only ``pii_access_log``, with the
        number of rows returned.

        Rows come by id; ``limit`` returns at most that many and ``after`` those with an id above it (the
        next page: pass the last id of this one). Both are applied in PostgreSQL.
        """
        if unmasked and not personal:
            personal = True
        if personal and not (actor and purpose):
            raise InvalidInput("reading personal data needs an actor and a purpose", field="actor/purpose",
                               fix="pass actor='your name' and purpose='why you need it'; it is logged")
        if limit is not None and limit < 0:
            raise InvalidInput(f"limit {limit} is negative", field="limit", fix="give 0 or more, or None for all")
        flt = areas_sql.AreaFilter(area=area, bbox=bbox)
        with self.engine.begin() as conn:
            gdf = people_sql.residents_frame(conn, flt, personal=personal, limit=limit, after=after)
            if personal:
                assert actor and purpose  # refused above without them
                people_sql.log_pii_access(conn, actor, purpose, "resident_pii", len(gdf),
                                          {"area": area, "bbox": bbox, "unmasked": unmasked, "limit": limit,
                                           "after": after})
        if not personal:
            return gdf
        # Missing personal data (no resident_pii row, no phone) as None, not NaN: the masks take None.
        pii = ["name", "id_card", "phone"]
        gdf[pii] = gdf[pii].astype(object).where(gdf[pii].notna(), None)
        return gdf if unmasked else mask_frame(gdf)

    def counts(self) -> dict[str, int]:
        """Row counts per layer (areas by level)."""
        with self.engine.connect() as conn:
            return dataset_sql.counts(conn)

    # -- writing ----------------------------------------------------------------------------------
    def load(
        self, layer: str, path: str | Path, *, file_layer: str | None = None, crs: str | None = None,
        lon_col: str | None = None, lat_col: str | None = None, gcj02: bool = False, swap: bool = False,
        repair: bool = True, outside: loading.Outside = "report", skip_invalid: bool = False,
        progress: loading.Progress | None = None,
    ) -> loading.LoadReport:
        """Load a file into a layer, all or nothing (an upsert on the layer's natural key).

        Parameters
        ----------
        layer : a layer name (``buildings``, ``fire_equipment``, ``grids``, ``road_edges``, …).
        path : a GeoJSON, GeoPackage, Shapefile, GeoParquet or CSV file.
        file_layer : the layer inside a file that holds several (a GeoPackage's ``nodes``/``edges``).
        crs : the file's CRS when it has none (or to override it), e.g. ``"EPSG:4549"``.
        lon_col, lat_col : a CSV's coordinate columns (default: found by name, ``lon``/``lng``/``x`` ...).
        gcj02 : the lon/lat are GCJ-02 (from Amap/Tencent); they are converted to WGS84.
        swap : the file has lat/lon order; swap it.
        repair : repair invalid polygons with make_valid (else reject them).
        outside : what to do with features outside the configured area: ``report`` (keep), ``skip`` or ``fail``.
        skip_invalid : load the good features and skip rejected ones (default: reject the whole file).
        progress : called with (rows written, rows in all) as the rows go in.

        Returns
        -------
        LoadReport
            What was inserted, updated, unchanged, repaired and skipped, and each problem feature.

        Raises :class:`~gridmap.errors.LoadRejected` and writes nothing when the file cannot be loaded;
        see :func:`gridmap.services.loading.load_file`.
        """
        return loading.load_file(self.engine, layer, path, file_layer=file_layer, crs=crs, lon_col=lon_col,
                                 lat_col=lat_col, gcj02=gcj02, swap=swap, repair=repair, outside=outside,
                                 skip_invalid=skip_invalid, settings=self.settings, progress=progress)

    def load_frame(
        self, layer: str, gdf: gpd.GeoDataFrame, *, source: str = "<frame>", gcj02: bool = False,
        swap: bool = False, repair: bool = True, outside: loading.Outside = "report", skip_invalid: bool = False,
        progress: loading.Progress | None = None,
    ) -> loading.LoadReport:
        """Load a GeoDataFrame into a layer (all or nothing, upsert on the natural key).

        ``source`` names the frame in messages and in ``load_batches``; the other options are those of
        :meth:`load`. ``gdf`` must have a CRS.
        """
        return loading.load_frame(self.engine, layer, gdf, source=source, gcj02=gcj02, swap=swap, repair=repair,
                                  outside=outside, skip_invalid=skip_invalid, settings=self.settings,
                                  progress=progress)

    def redraw(self, code: str, geometry: BaseGeometry, valid_from: dt.datetime) -> int:
        """Redraw an area's boundary from ``valid_from`` on (a new version); returns the new version's id.

        The old version is closed, not changed: events keep the grid version they were placed in.
        """
        with self.engine.begin() as conn:
            return areas_sql.redraw_area(conn, code, geometry, valid_from)

    def export(self, layer: str, path: str | Path, *, area: str | None = None,
               bbox: tuple[float, float, float, float] | None = None) -> int:
        """Write a layer (public columns only; typed free text redacted) to GeoJSON, GeoPackage or GeoParquet;
        returns the row count."""
        spec = layer_spec(layer)
        with self.engine.connect() as conn:
            gdf = layers_sql.select_layer(conn, spec, areas_sql.AreaFilter(area=area, bbox=bbox),
                                          level=layers_sql.level_of(layer))
            gdf = redact_free_text(conn, spec, gdf)
        files.write_file(gdf, path, layer=layer)
        return len(gdf)

    def dispose(self) -> None:
        self.engine.dispose()


def connect(settings: Settings | None = None, *, url: str | None = None, check_schema: bool = True) -> Registry:
    """Open the registry: the embedded database (started if needed) or ``GRIDMAP_DATABASE_URL``."""
    settings = settings or get_settings()
    engine = make_engine(url or database_url(settings))
    if check_schema:
        check_postgis(engine)
        current, head = migrate.current_revision(engine), migrate.head_revision()
        if current != head:
            raise DatabaseError(f"the database schema is at revision {current}, the code expects {head}",
                                fix="run `gridmap db upgrade`")
    return Registry(engine, settings)
