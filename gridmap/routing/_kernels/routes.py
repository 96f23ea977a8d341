"""Route geometry from road-edge paths, compiled (numba): the coordinates of a team's drive to an event.

Why hand-written: a route is part of the team's edge, whole edges, then part of the event's edge. With
shapely that is one ``line_interpolate_point`` per end, one ``get_coordinates`` over the path and a
Python loop to cut the parts: ~100 µs per route, most of a whole dispatch decision on the 250,000-node
city (measured with cProfile in scripts/bench_dispatch.py's set-up). Here the edges' vertices sit in one
flat array with the distance along the edge of each vertex (:class:`EdgeCoords`, built once per graph),
and a route is one pass over them. The cut points are interpolated as GEOS does
(``LineString.interpolate``): walk the segments to the one holding the distance, then a linear step
along it; the tests compare the result with shapely's ``substring`` route for route.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numba as nb
import numpy as np
import shapely

if TYPE_CHECKING:
    from gridmap.routing.roadgraph import RoadGraph

_CACHE: weakref.WeakKeyDictionary[RoadGraph, EdgeCoords] = weakref.WeakKeyDictionary()


class EdgeCoords:
    """The vertices of every edge of a road graph, flat, with the distance along its edge of each."""

    def __init__(self, geoms: np.ndarray) -> None:
        xy, which = shapely.get_coordinates(geoms, return_index=True)
        counts = np.bincount(which, minlength=len(geoms))
        self.ptr = np.zeros(len(geoms) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.ptr[1:])
        self.xy = np.ascontiguousarray(xy)
        seg = np.hypot(*np.diff(self.xy, axis=0).T)
        seg = np.r_[0.0, seg]
        seg[self.ptr[:-1]] = 0.0  # the first vertex of each edge starts its own count
        cum = np.cumsum(seg)
        self.along = cum - np.repeat(cum[self.ptr[:-1]], counts)  # distance from the edge's start
        # each edge's length as the sum of the same segment lengths (not GEOS's own sum, which may differ
        # in the last bit): a cut at fraction 1 then lands exactly on the last vertex, never just before it
        self.length = np.where(counts > 0, self.along[np.maximum(self.ptr[1:] - 1, 0)], 0.0)

    @classmethod
    def of(cls, graph: RoadGraph) -> EdgeCoords:
        """The (cached) flat vertices of ``graph``'s edges."""
        ec = _CACHE.get(graph)
        if ec is None:
            ec = _CACHE[graph] = cls(graph.geoms)
        return ec


@nb.njit(cache=True, inline="always")
def _interp(xy, along, a, b, length, d):
    """The point at distance d along the edge whose vertices are xy[a:b] (GEOS's interpolate)."""
    if d <= 0.0 or length <= 0.0:
        return xy[a, 0], xy[a, 1]
    if d >= length:
        return xy[b - 1, 0], xy[b - 1, 1]
    for i in range(a, b - 1):
        seg = along[i + 1] - along[i]
        if along[i + 1] >= d:
            if seg <= 0.0:
                return xy[i, 0], xy[i, 1]
            f = (d - along[i]) / seg
            return xy[i, 0] + f * (xy[i + 1, 0] - xy[i, 0]), xy[i, 1] + f * (xy[i + 1, 1] - xy[i, 1])
    return xy[b - 1, 0], xy[b - 1, 1]


@nb.njit(cache=True)
def _part(xy, along, ptr, length, e, fa, fb, out, n, skip_first):
    """Append the part of edge e from fraction fa to fb (fa < fb) to out[n:]; returns the new n."""
    a, b = ptr[e], ptr[e + 1]
    L = length[e]
    da, db = fa * L, fb * L
    if not skip_first:
        x, y = _interp(xy, along, a, b, L, da)
        out[n, 0] = x
        out[n, 1] = y
        n += 1
    for i in range(a, b):
        if along[i] > da and along[i] < db:
            out[n, 0] = xy[i, 0]
            out[n, 1] = xy[i, 1]
            n += 1
        elif along[i] >= db:
            break
    x, y = _interp(xy, along, a, b, L, db)
    out[n, 0] = x
    out[n, 1] = y
    return n + 1


@nb.njit(cache=True)
def route_coords(xy, along, ptr, length, length_m, tx, ty, team_edge, f_team, path, n_path,
                 last_edge, f_last, ex, ey, out):
    """Coordinates of a route, and its road distance: the team's point, the rest of its edge from
    ``f_team``, the whole edges of ``path``, the event's edge up to ``f_last`` (none if last_edge < 0),
    the event's foot. ``out`` must hold them all (see :func:`route_size`). Returns (count, metres)."""
    n = 0
    out[n, 0] = tx
    out[n, 1] = ty
    n += 1
    dist = 0.0
    if f_team < 1.0:
        n = _part(xy, along, ptr, length, team_edge, f_team, 1.0, out, n, False)
    else:
        a = ptr[team_edge + 1] - 1
        out[n, 0] = xy[a, 0]
        out[n, 1] = xy[a, 1]
        n += 1
    dist += (1.0 - f_team) * length_m[team_edge]
    for j in range(n_path):
        e = path[j]
        for i in range(ptr[e] + 1, ptr[e + 1]):
            out[n, 0] = xy[i, 0]
            out[n, 1] = xy[i, 1]
            n += 1
        dist += length_m[e]
    if last_edge >= 0:
        if f_last > 0.0:
            n = _part(xy, along, ptr, length, last_edge, 0.0, f_last, out, n, True)
        dist += f_last * length_m[last_edge]
    out[n, 0] = ex
    out[n, 1] = ey
    return n + 1, dist


def route_size(ec: EdgeCoords, team_edge: int, path: np.ndarray, last_edge: int) -> int:
    """An upper bound of :func:`route_coords`' point count."""
    ptr = ec.ptr
    n = 4 + int(ptr[team_edge + 1] - ptr[team_edge])
    if len(path):
        n += int((ptr[path + 1] - ptr[path]).sum())
    if last_edge >= 0:
        n += int(ptr[last_edge + 1] - ptr[last_edge])
    return n
