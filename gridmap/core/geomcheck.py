"""Geometry checks for loads: right type, finite lon/lat, valid (repaired when possible).

Everything is vectorised with shapely 2; only the (few) invalid geometries are visited one by one, to
say *why* each is invalid and what the repair did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import shapely
from shapely import GeometryType as GT
from shapely.geometry.base import BaseGeometry

from gridmap.errors import FeatureProblem

Kind = Literal["point", "line", "polygon"]

_ACCEPTED = {
    "point": {GT.POINT, GT.MULTIPOINT},
    "line": {GT.LINESTRING, GT.MULTILINESTRING},
    "polygon": {GT.POLYGON, GT.MULTIPOLYGON},
}


@dataclass
class CheckResult:
    geoms: np.ndarray  # cleaned geometries (None where rejected)
    keep: np.ndarray  # bool mask of accepted features
    problems: list[FeatureProblem] = field(default_factory=list)
    repaired: int = 0

    @property
    def rejected(self) -> int:
        return int((~self.keep).sum())


def _key(keys: Sequence[object] | None, i: int) -> str | None:
    return None if keys is None else str(keys[i])


def _polygonal_part(g: BaseGeometry | None) -> shapely.MultiPolygon | None:
    """The polygonal part of a repaired geometry, as a MultiPolygon (None if nothing polygonal is left)."""
    if g is None or g.is_empty:
        return None
    if isinstance(g, shapely.Polygon):
        return shapely.MultiPolygon([g])
    if isinstance(g, shapely.MultiPolygon):
        return g
    if isinstance(g, shapely.GeometryCollection):
        polys = [poly for part in g.geoms if (mp := _polygonal_part(part)) is not None for poly in mp.geoms]
        return shapely.MultiPolygon(polys) if polys else None
    return None


def check_geometries(geoms: np.ndarray, kind: Kind, keys: Sequence[object] | None = None, *,
                     repair: bool = True) -> CheckResult:
    """Check an array of lon/lat geometries for a layer of the given kind.

    Rejects missing/empty geometries, wrong geometry types, multi-part points/lines (a road edge or a
    hydrant is one thing) and non-finite coordinates. Invalid polygons (self-intersections, bad rings)
    are repaired with ``shapely.make_valid`` keeping the polygonal part, or rejected when ``repair`` is
    False or nothing polygonal survives. Polygons come back as MultiPolygons.
    """
    geoms = np.asarray(geoms, dtype=object).copy()
    n = len(geoms)
    keep = np.ones(n, dtype=bool)
    problems: list[FeatureProblem] = []

    def reject(idx: np.ndarray, reason: str | Callable[[int], str]) -> None:
        for i in np.flatnonzero(idx).tolist():
            if keep[i]:
                keep[i] = False
                problems.append(FeatureProblem(int(i), _key(keys, i), "rejected", reason(i) if callable(reason) else reason))

    missing = shapely.is_missing(geoms)
    reject(missing, "no geometry")
    empty = ~missing & shapely.is_empty(geoms)
    reject(empty, "empty geometry")

    types = shapely.get_type_id(geoms)
    ok_types = np.isin(types, [int(t) for t in _ACCEPTED[kind]])
    reject(keep & ~ok_types, lambda i: f"geometry is {geoms[i].geom_type}, this layer takes {kind}s")

    # Multi-part points and lines: accept one part, reject several.
    multi = keep & np.isin(types, [int(GT.MULTIPOINT), int(GT.MULTILINESTRING)])
    if multi.any():
        parts = shapely.get_num_geometries(geoms)
        reject(multi & (parts != 1), lambda i: f"{geoms[i].geom_type} with {parts[i]} parts; split it into one {kind} per feature")
        single = multi & (parts == 1)
        geoms[single] = shapely.get_geometry(geoms[single], 0)

    coords_ok = np.ones(n, dtype=bool)
    live = np.flatnonzero(keep)
    if len(live):
        coords, index = shapely.get_coordinates(geoms[live], return_index=True)
        bad = ~np.isfinite(coords).all(axis=1)
        if bad.any():
            coords_ok[live[np.unique(index[bad])]] = False
    reject(keep & ~coords_ok, "coordinates are not finite numbers (NaN or infinity)")

    repaired = 0
    if kind != "point":
        valid = np.ones(n, dtype=bool)
        valid[keep] = shapely.is_valid(geoms[keep])
        for i in np.flatnonzero(keep & ~valid).tolist():
            reason = shapely.is_valid_reason(geoms[i])
            if kind == "polygon" and repair:
                fixed = _polygonal_part(shapely.make_valid(geoms[i]))
                if fixed is not None and fixed.area > 0:
                    geoms[i] = fixed
                    repaired += 1
                    problems.append(FeatureProblem(int(i), _key(keys, i), "repaired", f"{reason}; repaired with make_valid"))
                    continue
            reject(np.eye(1, n, i, dtype=bool)[0], f"invalid geometry: {reason}")
    if kind == "polygon":
        polys = keep & (shapely.get_type_id(geoms) == int(GT.POLYGON))
        if polys.any():
            geoms[polys] = [shapely.MultiPolygon([g]) for g in geoms[polys]]
    geoms[~keep] = None
    problems.sort(key=lambda p: p.index)
    return CheckResult(geoms, keep, problems, repaired)
