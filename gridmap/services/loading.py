"""Use cases: load a file (or a GeoDataFrame) into a layer, and export a layer to a file.

A load is all or nothing. It reads the file, reprojects it to EPSG:4326 (GCJ-02 only when the caller
says so), refuses a file whose coordinates are not degrees or look lat/lon-swapped, checks and repairs
geometries, reports features outside the configured area, converts every column to its table's type,
and then upserts on the layer's natural key in ONE transaction: loading the same file twice changes
nothing the second time, and any error leaves the table exactly as it was.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
from pyproj import CRS
from sqlalchemy import Connection, Engine

from gridmap.config import Settings, get_settings
from gridmap.core.crs import Placement, geometries_gcj02_to_wgs84, is_geographic, placement, swap_xy
from gridmap.core.geomcheck import check_geometries
from gridmap.core.vocabulary import WGS84
from gridmap.errors import FeatureProblem, InvalidInput, LoadRejected
from gridmap.storage import bulk, files
from gridmap.storage import dataset as dataset_sql
from gridmap.storage.db import driver_connection
from gridmap.storage.layers import AREA_LEVEL_LAYERS, LayerSpec, layer_spec, pg_type

Outside = Literal["report", "skip", "fail"]
Progress = Callable[[int, int], None]


@dataclass
class LoadReport:
    layer: str
    source: str
    source_crs: str | None
    rows_in: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    repaired: int = 0
    skipped: int = 0
    outside_area: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    problems: list[FeatureProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return self.inserted + self.updated


@dataclass
class _Prepared:
    names: list[str]
    columns: list[list]
    report: LoadReport


def _crs_name(crs: CRS | None) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def _derived_codes(spec: LayerSpec, frame: pd.DataFrame, geoms: np.ndarray) -> list[str]:
    """Stable codes for files that have none: a hash of geometry and attributes (so reloads match)."""
    wkb = shapely.to_wkb(geoms, output_dimension=2)
    attrs = frame.astype("string").fillna("").agg("\x1f".join, axis=1).tolist() if len(frame.columns) else [""] * len(frame)
    prefix = spec.name[:3].upper()
    return [f"{prefix}-{hashlib.sha1(w + a.encode()).hexdigest()[:16]}" for w, a in zip(wkb, attrs, strict=True)]


def prepare(
    gdf: gpd.GeoDataFrame, layer: str, *, settings: Settings, source: str = "<frame>", gcj02: bool = False,
    swap: bool = False, repair: bool = True, outside: Outside = "report", skip_invalid: bool = False,
    defaults: dict | None = None,
) -> _Prepared:
    """Validate and convert a frame for ``layer``; raise :class:`LoadRejected` naming every bad feature.

    The steps: the coordinates to EPSG:4326 (refusing swapped or projected ones, :func:`_to_wgs84`), the
    columns to the layer's (:func:`_layer_columns`), the geometries checked and repaired, the features
    outside the configured area (:func:`_outside_area`), every value coerced to its column's type and
    choices (:func:`_coerce_columns`), duplicate keys (:func:`_duplicate_keys`). Every problem is named;
    a rejected feature rejects the load unless ``skip_invalid``.
    """
    spec = layer_spec(layer)
    crs = gdf.crs
    if crs is None:
        raise LoadRejected(layer, f"{source} has no CRS (a Shapefile without .prj?)",
                           fix_hint="pass --crs with the CRS the data was made in, e.g. --crs EPSG:4326")
    report = LoadReport(layer, source, _crs_name(crs), len(gdf))
    if len(gdf) == 0:
        raise LoadRejected(layer, f"{source} has no features", fix_hint="check you exported the right layer")
    geoms, inside = _to_wgs84(gdf, crs, layer, settings, gcj02=gcj02, swap=swap)
    frame, choices = _layer_columns(gdf, spec, geoms, source, defaults, report)
    writable = {c.name: c for c in spec.writable}
    keys = frame["code"].astype("string").tolist() if "code" in frame.columns else None

    checked = check_geometries(geoms, spec.kind, keys, repair=repair)
    problems = list(checked.problems)
    report.repaired = checked.repaired
    keep = checked.keep.copy()
    _outside_area(layer, inside, checked.keep, keys, settings, outside, keep, problems, report)
    names, columns = _coerce_columns(frame, spec, writable, choices, keys, keep, problems)
    _duplicate_keys(spec, names, columns, keys, keep, problems)

    problems.sort(key=lambda p: (p.index, p.action))
    report.problems = problems
    rejected = [p for p in problems if p.action == "rejected"]
    if rejected and not skip_invalid:
        raise LoadRejected(layer, f"{len({p.index for p in rejected})} of {len(gdf)} features cannot be loaded; "
                           "nothing was written", rejected, "fix them, or pass --skip-invalid to load the rest")
    report.skipped = int((~keep).sum())
    names.append(spec.geometry_column)
    columns.append(bulk.ewkb(checked.geoms))
    if not keep.all():
        idx = np.flatnonzero(keep)
        columns = [[c[i] for i in idx] for c in columns]
    return _Prepared(names, columns, report)


def _swapped(name: str, where: Placement, swap_hint: str) -> LoadRejected:
    return LoadRejected(
        name, f"{where.inside_if_swapped} of {where.n} features fall in the configured area only with x and y "
        "exchanged: the coordinates look lat/lon swapped",
        fix_hint=swap_hint,
    )


def _to_wgs84(gdf: gpd.GeoDataFrame, crs: CRS, name: str, settings: Settings, *, gcj02: bool,
              swap: bool) -> tuple[np.ndarray, np.ndarray]:
    """The frame's geometries in EPSG:4326 and which lie in the configured area; refuses coordinates that
    look lat/lon swapped, projected metres labelled as degrees, GCJ-02 on a projected file, or a file with
    no feature in the area."""
    src_crs = _crs_name(crs)
    geoms = gdf.geometry.to_numpy()
    if swap:  # the file's own coordinates are in y, x order: swap before reprojecting
        geoms = swap_xy(geoms)
    swap_hint = "drop --swap-xy (the file is already lon, lat)" if swap else "pass --swap-xy (or write longitude first)"

    if is_geographic(crs):
        where, _ = placement(geoms, settings.area_bbox)
        if where.looks_swapped:  # lat > 90 once swapped: check this before calling it "projected metres"
            raise _swapped(name, where, swap_hint)
        if where.looks_projected:
            b = shapely.total_bounds(geoms)
            raise LoadRejected(
                name, f"the file says {src_crs} (degrees) but its coordinates reach x={b[2]:.0f}, y={b[3]:.0f}: "
                "they are projected metres, not lon/lat",
                fix_hint="pass --crs with the file's real CRS (e.g. EPSG:4549 or EPSG:32651)",
            )
    elif gcj02:
        raise InvalidInput(f"GCJ-02 is a lon/lat system, but the file is in {src_crs}", field="gcj02",
                           fix="drop --gcj02, or give lon/lat coordinates")
    if not crs.equals(WGS84):
        geoms = gpd.GeoSeries(geoms, crs=crs).to_crs(WGS84).to_numpy()
    if gcj02:
        geoms = geometries_gcj02_to_wgs84(geoms)

    where, inside = placement(geoms, settings.area_bbox)
    if where.looks_swapped:
        raise _swapped(name, where, swap_hint)
    if where.n and where.inside == 0:
        raise LoadRejected(
            name, f"no feature lies in the configured area {settings.area_bbox} (lon/lat) after reading it as {src_crs}",
            fix_hint="check the CRS (--crs), or set GRIDMAP_AREA_BBOX if the data really is elsewhere",
        )
    return geoms, inside


def _layer_columns(gdf: gpd.GeoDataFrame, spec: LayerSpec, geoms: np.ndarray, source: str, defaults: dict | None,
                   report: LoadReport) -> tuple[pd.DataFrame, dict[str, tuple]]:
    """The frame's attribute columns named as the layer's (aliases, Shapefile-cut names), with the caller's
    ``defaults`` and derived codes; the other columns are listed in the report as ignored. Returns the
    frame and each column's allowed values (a default given for a column the file has becomes its only
    allowed value)."""
    writable = {c.name: c for c in spec.writable}
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)).reset_index(drop=True)
    frame = frame.rename(columns={k: v for k, v in spec.aliases.items() if k in frame.columns and v not in frame.columns})
    # Shapefiles cut field names to 10 characters (community_code -> community_): map an unambiguous prefix back.
    cut = {}
    for c in frame.columns:
        if c not in writable and len(c) == 10:
            full = [w for w in writable if w.startswith(c) and w not in frame.columns]
            if len(full) == 1:
                cut[c] = full[0]
    frame = frame.rename(columns=cut)
    choices = dict(spec.choices)
    for col, value in (defaults or {}).items():
        if col not in frame.columns:
            frame[col] = value
        else:  # e.g. `gridmap load grids`: every feature must be a grid
            choices[col] = (value,)
    report.ignored_columns = [c for c in frame.columns if c not in writable]
    frame = frame[[c for c in frame.columns if c in writable]]
    if "code" in writable and "code" not in frame.columns:
        frame["code"] = _derived_codes(spec, frame, geoms)
    missing = [c for c in spec.required if c not in frame.columns]
    if missing:
        raise LoadRejected(report.layer, f"{source} lacks the required column(s) {', '.join(missing)}",
                           fix_hint=f"add them (this layer needs {', '.join(spec.required)})")
    return frame, choices


def _key(keys: list[str] | None, i: int) -> str | None:
    return None if keys is None else keys[i]


def _outside_area(name: str, inside: np.ndarray, valid: np.ndarray, keys: list[str] | None, settings: Settings,
                  outside: Outside, keep: np.ndarray, problems: list[FeatureProblem], report: LoadReport) -> None:
    """Name the valid features outside the configured area; skip them or fail, as ``outside`` says."""
    out_idx = np.flatnonzero(~inside & valid)
    report.outside_area = len(out_idx)
    for i in out_idx:
        problems.append(FeatureProblem(int(i), _key(keys, int(i)), "outside_area",
                                       f"outside the configured area {settings.area_bbox}"))
    if outside == "skip":
        keep &= inside
    elif outside == "fail" and len(out_idx):
        raise LoadRejected(name, f"{len(out_idx)} features lie outside the configured area",
                           [p for p in problems if p.action == "outside_area"], "fix them or load with --outside report")


def _coerce_columns(frame: pd.DataFrame, spec: LayerSpec, writable: dict, choices: dict[str, tuple],
                    keys: list[str] | None, keep: np.ndarray,
                    problems: list[FeatureProblem]) -> tuple[list[str], list[list]]:
    """Every column's values in its table's type; a value that does not convert, an empty required value
    and a value outside the column's choices reject their feature (named once: a bad value is not also
    called empty or off the list)."""
    names, columns = [], []
    for col in frame.columns:
        values, col_problems = bulk.coerce_column(frame[col], pg_type(writable[col]), col, keys)
        problems += col_problems
        for p in col_problems:
            keep[p.index] = False
        named = {p.index for p in col_problems}
        bad: list[tuple[int, str]] = []
        if not writable[col].nullable:  # required, or NOT NULL with a server default the file overrides
            empty = (f"column {col} is required but empty" if col in spec.required else
                     f"column {col} is empty; fill it in, or leave the column out to take its default")
            bad += [(int(i), empty) for i in np.flatnonzero(np.array([v is None for v in values]))]
        allowed = choices.get(col)
        if allowed is not None:
            bad += [(i, f"column {col}: {v!r} is not one of {', '.join(allowed)}")
                    for i, v in enumerate(values) if v is not None and v not in allowed]
        for i, message in bad:
            if i not in named:
                keep[i] = False
                problems.append(FeatureProblem(i, _key(keys, i), "rejected", message))
        names.append(col)
        columns.append(values)
    return names, columns


def _duplicate_keys(spec: LayerSpec, names: list[str], columns: list[list], keys: list[str] | None,
                    keep: np.ndarray, problems: list[FeatureProblem]) -> None:
    """Reject every feature whose natural key repeats an earlier one's.

    A key column the file lacks takes the same server default in every row (areas.valid_from,
    road_edges.key), so duplicates on the columns present are duplicates of the whole key."""
    key_names = [k for k in spec.key if k in names]
    key_cols = [columns[names.index(k)] for k in key_names]
    if not key_cols:
        return
    seen: dict[tuple, int] = {}
    for i, k in enumerate(zip(*key_cols, strict=True)):
        if k in seen:
            keep[i] = False
            shown = k[0] if len(k) == 1 else k
            problems.append(FeatureProblem(i, _key(keys, i), "rejected",
                                           f"duplicate key {'/'.join(key_names)}={shown!r} "
                                           f"(also feature #{seen[k]}); give each feature its own key"))
        else:
            seen[k] = i


def write_prepared(conn: Connection, layer: str, prepared: _Prepared, *, sha256: str | None = None,
                   progress: Progress | None = None) -> LoadReport:
    """Write a prepared load on an open connection (inside the caller's transaction): COPY on the psycopg
    connection under it, the bookkeeping on ``conn``."""
    spec = layer_spec(layer)
    report = prepared.report
    try:
        res = bulk.upsert_columns(driver_connection(conn), spec, prepared.names, prepared.columns, progress=progress)
    except psycopg.errors.ForeignKeyViolation as exc:
        raise LoadRejected(layer, f"a feature refers to something that is not loaded: {exc.diag.message_detail}",
                           fix_hint="load the layer it refers to first (e.g. road_nodes before road_edges)") from exc
    except psycopg.errors.CardinalityViolation as exc:
        raise LoadRejected(layer, "the file has duplicate keys (two features would write the same row)",
                           fix_hint=f"give each feature its own {'/'.join(spec.key)}") from exc
    except (psycopg.errors.CheckViolation, psycopg.errors.UniqueViolation, psycopg.errors.ExclusionViolation) as exc:
        raise LoadRejected(layer, f"the database refused the load: {exc.diag.message_primary} "
                           f"({exc.diag.message_detail or exc.diag.constraint_name})",
                           fix_hint="fix the named value in the file") from exc
    report.inserted, report.updated, report.unchanged = res.inserted, res.updated, res.unchanged
    if spec.name in dataset_sql.POST_LOAD and res.inserted + res.updated:
        dataset_sql.POST_LOAD[spec.name](conn)
    dataset_sql.record_load(conn, layer=layer, source=report.source, sha256=sha256, source_crs=report.source_crs,
                            rows_in=report.rows_in, inserted=res.inserted, updated=res.updated, unchanged=res.unchanged,
                            repaired=report.repaired, outside_area=report.outside_area)
    return report


def _defaults_for(layer: str) -> dict:
    return {"level": AREA_LEVEL_LAYERS[layer]} if layer in AREA_LEVEL_LAYERS else {}


def load_frame(engine: Engine, layer: str, gdf: gpd.GeoDataFrame, *, source: str = "<frame>",
               sha256: str | None = None, settings: Settings | None = None, progress: Progress | None = None,
               **opts: Any) -> LoadReport:
    """Load a GeoDataFrame into ``layer`` (all or nothing). See :func:`load_file` for the options.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> hydrants = gpd.GeoDataFrame({"code": ["H1"], "kind": ["hydrant"]},
    ...                             geometry=[shapely.Point(120.1, 30.28)], crs="EPSG:4326")
    >>> report = load_frame(engine, "fire_equipment", hydrants)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    settings = settings or get_settings()
    prepared = prepare(gdf, layer, settings=settings, source=source, defaults=_defaults_for(layer), **opts)
    with engine.begin() as conn:
        report = write_prepared(conn, layer, prepared, sha256=sha256, progress=progress)
    report.seconds = time.perf_counter() - t0
    return report


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_file(
    engine: Engine, layer: str, path: str | Path, *, file_layer: str | None = None, crs: str | None = None,
    lon_col: str | None = None, lat_col: str | None = None, gcj02: bool = False, swap: bool = False,
    repair: bool = True, outside: Outside = "report", skip_invalid: bool = False,
    settings: Settings | None = None, progress: Progress | None = None,
) -> LoadReport:
    """Load a GeoJSON / GeoPackage / Shapefile / GeoParquet / CSV (lon, lat) file into a layer.

    Parameters
    ----------
    layer : a layer name (``buildings``, ``fire_equipment``, ``grids``, ``road_edges``, …).
    crs : the file's CRS when it has none (or to override it), e.g. ``"EPSG:4549"``.
    gcj02 : the lon/lat are GCJ-02 (from Amap/Tencent); they are converted to WGS84.
    swap : the file has lat/lon order; swap it.
    repair : repair invalid polygons with make_valid (else reject them).
    outside : what to do with features outside the configured area: report (keep), skip or fail.
    skip_invalid : load the good features and skip rejected ones (default: reject the whole file).

    Returns a :class:`LoadReport`. Raises :class:`~gridmap.errors.LoadRejected` and writes nothing when
    the file cannot be loaded.
    """
    path = Path(path)
    spec = layer_spec(layer)
    gdf = files.read_file(path, file_layer=file_layer, target_layer=spec.name, crs=crs, lon_col=lon_col, lat_col=lat_col)
    return load_frame(engine, layer, gdf, source=path.name, sha256=_sha256(path), settings=settings,
                      progress=progress, gcj02=gcj02, swap=swap, repair=repair, outside=outside,
                      skip_invalid=skip_invalid)
