"""Compiled kernel (numba) for snapping points to their nearest road edge: a uniform grid over the segments.

Why hand-written: shapely 2's ``STRtree.query_nearest`` is exact, but per point it walks a GEOS tree of
whole edges and calls ``GEOSDistance`` (a ``DistanceOp`` object, its envelope tests and component
extraction) on every candidate edge; ``line_locate_point`` and ``line_interpolate_point`` then walk the
snapped edge twice more. Measured on the sample street (3,166 edges, 10,908 segments; 9,000 points up to
40 m off the road; 2 cores at load ~1): ``query_nearest`` ≈ 7 µs a point, ``line_locate_point`` and
``line_interpolate_point`` ≈ 0.25 µs each, the glue ≈ 0.1 µs: ~62 ms for the 8,966 buildings of the
coverage question, whose multi-source Dijkstra takes 0.2 ms; one point costs ≈ 25-35 µs, nearly all of
it fixed cost. geopandas' ``sjoin_nearest`` is that same GEOS tree plus a frame join, and no other
well-kept library answers "nearest point on a set of polylines, with its position along the polyline":
scipy's and scikit-learn's trees index points, not segments, and densifying the roads into points would
make the answer approximate. So the search is written here. ``scripts/bench_snap.py`` times it against
both: ≈ 0.2 µs of CPU a point on the street and on the 250k-node city (0.8 µs for 10,000 points scattered
over the city, where every query misses the cache), ≈ 4-5 µs for one point through ``RoadGraph.snap``,
most of that the Python call and the six one-element arrays.

The index (:class:`SnapIndex`, built once per road graph): every edge's polyline cut into its segments,
each with the measure of its start along the edge (accumulated as GEOS accumulates
``LineString::getLength``), sorted by grid cell so that a cell's segments sit together in memory; a
uniform grid of square cells, each listing the segments whose bounding box overlaps it (CSR). A two-way
road's second direction, when its geometry is the exact reverse of the first, is left out: it is exactly
as near (up to rounding) and ties go to the lower edge number anyway.

A query scans rings of cells around the point's cell, nearest first. After each ring, every segment not yet
seen lies beyond one side of the scanned block, so once the best distance is below the distance to the
nearest such side (less a 1 µm margin for rounding) it is final: the search is exact, not approximate.
It also stops when that side is beyond ``max_distance``. A cheap squared distance (multiplications only)
screens each candidate; GEOS's formula runs only for those that can still win or tie. Many points are
processed in grid order (a counting sort), so neighbouring queries read the same cells from cache.

The arithmetic copies GEOS 3.x operation for operation, so the answers are shapely's, to the bit where
the same edge is chosen (the tests compare on the real street network and on generated graphs):

- distance: ``Distance::pointToSegment``, the minimum over the edge's segments;
- position along the edge: ``LengthIndexOfPoint::indexOf`` (the *first* nearest segment of the edge, its
  ``LineSegment::projectionFactor`` clamped to [0, 1] times the segment length, plus the segment's start);
- foot: ``LengthLocationMap::getLocationForward`` and ``LinearLocation::pointAlongSegmentByFraction``
  applied to that measure, i.e. ``line_interpolate_point(line, line_locate_point(line, p))``. The walk
  always ends on the nearest segment itself or at its far end, so only that segment is needed.

All kernels use numpy's error model (x / 0 is inf or nan, as in C), which GEOS's formulas rely on for
zero-length segments.

Ties (equal distances): the lowest edge number, then its first segment; shapely's tree returns any one.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

#: from this many points on, they are processed in grid order (the sort costs less than the cache misses)
SORT_MIN = 64
#: slack for rounding: a candidate is screened out only when this much farther than the best, and a ring
#: search stops only when the best is this much nearer than everything unseen
MARGIN_M = 1e-6

#: the largest grid :class:`SnapIndex` builds (cell_ptr takes 8 bytes a cell)
MAX_CELLS = 50_000_000

# columns of the segment table: the ends, the measure of the start along its edge and the length (as GEOS
# computes them), then for the cheap screen the direction (x1 - x0, y1 - y0) and 1 / its squared length
X0, Y0, X1, Y1, START, LEN, DX, DY, INV2 = range(9)
N_COLS = 9
# grid parameters: origin (= the segments' lower-left corner), cell side, columns, rows, upper-right corner
GX, GY, CELL, NX, NY, GX1, GY1 = range(7)


@nb.njit(cache=True, error_model="numpy")
def _segments(coords, part, n_edges):
    """Segments of each edge, in edge order, from ``shapely.get_coordinates(geoms, return_index=True)``.

    Returns (seg (S, N_COLS); seg_edge (S,); edge_ptr (m + 1,): the segments of edge e are
    edge_ptr[e]:edge_ptr[e + 1]; edge_len (m,): each edge's length, summed as GEOS sums it).
    """
    n = len(part)
    edge_ptr = np.zeros(n_edges + 1, dtype=np.int64)
    for i in range(n - 1):
        if part[i + 1] == part[i]:
            edge_ptr[part[i] + 1] += 1
    for e in range(n_edges):
        edge_ptr[e + 1] += edge_ptr[e]
    s_total = edge_ptr[n_edges]
    seg = np.empty((s_total, N_COLS))
    seg_edge = np.empty(s_total, dtype=np.int64)
    edge_len = np.zeros(n_edges)
    s = 0
    for i in range(n - 1):
        e = part[i]
        if part[i + 1] != e:
            continue
        x0, y0, x1, y1 = coords[i, 0], coords[i, 1], coords[i + 1, 0], coords[i + 1, 1]
        dx = x1 - x0
        dy = y1 - y0
        length = math.sqrt(dx * dx + dy * dy)  # GEOS Length::ofLine, term by term
        seg[s, X0] = x0
        seg[s, Y0] = y0
        seg[s, X1] = x1
        seg[s, Y1] = y1
        seg[s, START] = edge_len[e]
        seg[s, LEN] = length
        seg[s, DX] = dx
        seg[s, DY] = dy
        seg[s, INV2] = 1.0 / (dx * dx + dy * dy) if dx != 0.0 or dy != 0.0 else 0.0
        seg_edge[s] = e
        edge_len[e] += length
        s += 1
    return seg, seg_edge, edge_ptr, edge_len


@nb.njit(cache=True, error_model="numpy")
def _mirrored(seg, edge_ptr, twin):
    """Per segment: True where its edge's geometry is the exact reverse of a lower-numbered twin's."""
    out = np.zeros(seg.shape[0], dtype=np.bool_)
    for e in range(len(twin)):
        t = twin[e]
        if t < 0 or t > e:
            continue
        a, b, c = edge_ptr[e], edge_ptr[e + 1], edge_ptr[t]
        n = b - a
        if n == 0 or edge_ptr[t + 1] - c != n:
            continue
        same = True
        for k in range(n):
            u, v = a + k, c + n - 1 - k
            if (seg[u, X0] != seg[v, X1] or seg[u, Y0] != seg[v, Y1] or seg[u, X1] != seg[v, X0]
                    or seg[u, Y1] != seg[v, Y0]):
                same = False
                break
        if same:
            out[a:b] = True
    return out


@nb.njit(cache=True, error_model="numpy")
def _grid_params(seg, cell):
    bx0 = by0 = np.inf
    bx1 = by1 = -np.inf
    for s in range(seg.shape[0]):
        bx0 = min(bx0, seg[s, X0], seg[s, X1])
        by0 = min(by0, seg[s, Y0], seg[s, Y1])
        bx1 = max(bx1, seg[s, X0], seg[s, X1])
        by1 = max(by1, seg[s, Y0], seg[s, Y1])
    if seg.shape[0] == 0:
        bx0 = by0 = bx1 = by1 = 0.0
    nx = int((bx1 - bx0) / cell) + 1
    ny = int((by1 - by0) / cell) + 1
    return np.array([bx0, by0, cell, nx, ny, bx1, by1], dtype=np.float64)


@nb.njit(cache=True, inline="always", error_model="numpy")
def _seg_cells(seg, s, params):
    """The range of grid cells (i0, i1, j0, j1) that segment ``s``'s bounding box overlaps."""
    gx, gy, cell = params[GX], params[GY], params[CELL]
    nx, ny = int(params[NX]), int(params[NY])
    i0 = min(max(int((min(seg[s, X0], seg[s, X1]) - gx) / cell), 0), nx - 1)
    i1 = min(max(int((max(seg[s, X0], seg[s, X1]) - gx) / cell), 0), nx - 1)
    j0 = min(max(int((min(seg[s, Y0], seg[s, Y1]) - gy) / cell), 0), ny - 1)
    j1 = min(max(int((max(seg[s, Y0], seg[s, Y1]) - gy) / cell), 0), ny - 1)
    return i0, i1, j0, j1


@nb.njit(cache=True, error_model="numpy")
def _spatial_order(seg, params):
    """Segment order by the grid cell of their bounding box's lower-left corner (row-major, stable)."""
    nx = int(params[NX])
    key = np.empty(seg.shape[0], dtype=np.int64)
    for s in range(seg.shape[0]):
        i0, _, j0, _ = _seg_cells(seg, s, params)
        key[s] = j0 * nx + i0
    return np.argsort(key, kind="mergesort")


@nb.njit(cache=True, error_model="numpy")
def _grid(seg, params):
    """Bucket the segments by the grid cells their bounding boxes overlap (CSR: cell_ptr, cell_seg)."""
    nx, ny = int(params[NX]), int(params[NY])
    count = np.zeros(nx * ny + 1, dtype=np.int64)
    for s in range(seg.shape[0]):
        i0, i1, j0, j1 = _seg_cells(seg, s, params)
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                count[j * nx + i + 1] += 1
    cell_ptr = np.cumsum(count)
    fill = cell_ptr[:-1].copy()
    cell_seg = np.empty(cell_ptr[-1], dtype=np.int32)
    for s in range(seg.shape[0]):
        i0, i1, j0, j1 = _seg_cells(seg, s, params)
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                c = j * nx + i
                cell_seg[fill[c]] = s
                fill[c] += 1
    return cell_ptr, cell_seg


@nb.njit(cache=True, inline="always", error_model="numpy")
def _point_segment(px, py, ax, ay, bx, by):
    """GEOS ``Distance::pointToSegment``, operation for operation."""
    if ax == bx and ay == by:
        dx = px - ax
        dy = py - ay
        return math.sqrt(dx * dx + dy * dy)
    r = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / ((bx - ax) * (bx - ax) + (by - ay) * (by - ay))
    if r <= 0.0:
        dx = px - ax
        dy = py - ay
        return math.sqrt(dx * dx + dy * dy)
    if r >= 1.0:
        dx = px - bx
        dy = py - by
        return math.sqrt(dx * dx + dy * dy)
    s = ((ay - py) * (bx - ax) - (ax - px) * (by - ay)) / ((bx - ax) * (bx - ax) + (by - ay) * (by - ay))
    return abs(s) * math.sqrt((bx - ax) * (bx - ax) + (by - ay) * (by - ay))


@nb.njit(cache=True, inline="always", error_model="numpy")
def _scan(px, py, lo, hi, cell_seg, seg, rank, best_d, best_s, lim2):
    """The nearest of the segments cell_seg[lo:hi] (a run of consecutive cells of one grid row) and
    the best so far; ties go to the lower ``rank`` (edge order)."""
    for k in range(lo, hi):
        s = cell_seg[k]
        wx = px - seg[s, X0]
        wy = py - seg[s, Y0]
        t = min(max((wx * seg[s, DX] + wy * seg[s, DY]) * seg[s, INV2], 0.0), 1.0)
        qx = wx - t * seg[s, DX]
        qy = wy - t * seg[s, DY]
        if qx * qx + qy * qy > lim2:
            continue  # more than MARGIN_M farther than the best: can neither win nor tie
        d = _point_segment(px, py, seg[s, X0], seg[s, Y0], seg[s, X1], seg[s, Y1])
        if d < best_d or (d == best_d and best_s >= 0 and rank[s] < rank[best_s]):
            best_d = d
            best_s = s
            lim2 = (d + MARGIN_M) * (d + MARGIN_M)
    return best_d, best_s, lim2


@nb.njit(cache=True, inline="always", error_model="numpy")
def _nearest_segment(px, py, max_d, seg, rank, params, cell_ptr, cell_seg):
    """The nearest segment within ``max_d`` of (px, py): (index or -1, distance or inf).

    Rings of cells around the point's cell (clamped to the grid for a point outside it), nearest first.
    After ring r, every segment not yet seen lies in a cell beyond a side of the scanned block that has
    grid cells beyond it, so the distance to the nearest such side is a lower bound for all of them.
    """
    gx, gy, cell = params[GX], params[GY], params[CELL]
    nx, ny = int(params[NX]), int(params[NY])
    if seg.shape[0] == 0 or not (math.isfinite(px) and math.isfinite(py)):
        return -1, np.inf
    # nearer than max_d to nothing at all: farther than that from the segments' bounding box
    ox = max(gx - px, 0.0, px - params[GX1])
    oy = max(gy - py, 0.0, py - params[GY1])
    if math.sqrt(ox * ox + oy * oy) > max_d + MARGIN_M:
        return -1, np.inf
    ci = int(min(max(math.floor((px - gx) / cell), 0.0), nx - 1.0))
    cj = int(min(max(math.floor((py - gy) / cell), 0.0), ny - 1.0))
    best_d = np.inf
    best_s = -1
    lim2 = np.inf
    r = 0
    while True:
        lo_i, hi_i, lo_j, hi_j = ci - r, ci + r, cj - r, cj + r
        if r == 0:
            c = cj * nx + ci
            best_d, best_s, lim2 = _scan(px, py, cell_ptr[c], cell_ptr[c + 1], cell_seg, seg, rank,
                                         best_d, best_s, lim2)
        else:
            ia, ib = max(lo_i, 0), min(hi_i, nx - 1)
            for j in (lo_j, hi_j):  # the ring's bottom and top rows: one run of cells each
                if 0 <= j < ny:
                    best_d, best_s, lim2 = _scan(px, py, cell_ptr[j * nx + ia], cell_ptr[j * nx + ib + 1],
                                                 cell_seg, seg, rank, best_d, best_s, lim2)
            ja, jb = max(lo_j + 1, 0), min(hi_j - 1, ny - 1)
            for i in (lo_i, hi_i):  # its left and right columns, corners excluded
                if 0 <= i < nx:
                    for j in range(ja, jb + 1):
                        c = j * nx + i
                        best_d, best_s, lim2 = _scan(px, py, cell_ptr[c], cell_ptr[c + 1], cell_seg, seg, rank,
                                                     best_d, best_s, lim2)
        bound = np.inf
        if lo_i > 0:
            bound = min(bound, px - (gx + lo_i * cell))
        if hi_i < nx - 1:
            bound = min(bound, gx + (hi_i + 1) * cell - px)
        if lo_j > 0:
            bound = min(bound, py - (gy + lo_j * cell))
        if hi_j < ny - 1:
            bound = min(bound, gy + (hi_j + 1) * cell - py)
        if bound == np.inf:
            break  # the block covers the whole grid: every segment has been seen
        bound -= MARGIN_M
        if best_d < bound or bound > max_d:
            break
        r += 1
    if best_s < 0 or best_d > max_d:
        return -1, np.inf
    return best_s, best_d


@nb.njit(cache=True, inline="always", error_model="numpy")
def _locate(px, py, s, seg, seg_edge, edge_len):
    """(fraction of the edge's length, foot x, foot y) of (px, py) on segment ``s``, as GEOS's
    ``line_locate_point`` then ``line_interpolate_point`` give them on its edge."""
    x0, y0, x1, y1 = seg[s, X0], seg[s, Y0], seg[s, X1], seg[s, Y1]
    # LengthIndexOfPoint::segmentNearestMeasure with LineSegment::projectionFactor
    if px == x0 and py == y0:
        pf = 0.0
    elif px == x1 and py == y1:
        pf = 1.0
    else:
        dx = x1 - x0
        dy = y1 - y0
        pf = ((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy)
    start, length = seg[s, START], seg[s, LEN]
    if pf <= 0.0:
        along = start
    elif pf <= 1.0:
        along = start + pf * length
    else:
        along = start + length
    # LengthLocationMap::getLocationForward(along): segments before s end at or before ``start`` and
    # start <= along <= start + length, so the walk stops on s, or else at s's far end (every later
    # segment that ``along`` does not pass is zero-length, at that same vertex)
    if along <= 0.0:  # then s starts at the edge's first vertex (all before it have length 0)
        fx, fy = x0, y0
    elif start + length > along:
        frac = (along - start) / length
        if frac <= 0.0:
            fx, fy = x0, y0
        elif frac >= 1.0:
            fx, fy = x1, y1
        else:
            fx = (x1 - x0) * frac + x0
            fy = (y1 - y0) * frac + y0
    else:
        fx, fy = x1, y1
    total = edge_len[seg_edge[s]]
    f = along / total if total > 0.0 else 0.0
    return min(max(f, 0.0), 1.0), fx, fy


@nb.njit(cache=True, error_model="numpy")
def _cell_order(xs, ys, params):
    """The points in grid-row order of their (clamped) cells: a counting sort when there are enough
    points per cell, else an argsort."""
    gx, gy, cell = params[GX], params[GY], params[CELL]
    nx, ny = int(params[NX]), int(params[NY])
    k = len(xs)
    key = np.empty(k, dtype=np.int64)
    for i in range(k):
        fi, fj = (xs[i] - gx) / cell, (ys[i] - gy) / cell
        if not (math.isfinite(fi) and math.isfinite(fj)):
            fi = fj = 0.0
        ci = int(min(max(math.floor(fi), 0.0), nx - 1.0))
        key[i] = int(min(max(math.floor(fj), 0.0), ny - 1.0)) * nx + ci
    n_cells = nx * ny
    if 4 * k < n_cells:
        return np.argsort(key)
    start = np.zeros(n_cells + 1, dtype=np.int64)
    for i in range(k):
        start[key[i] + 1] += 1
    for c in range(n_cells):
        start[c + 1] += start[c]
    order = np.empty(k, dtype=np.int64)
    for i in range(k):
        order[start[key[i]]] = i
        start[key[i]] += 1
    return order


@nb.njit(cache=True, error_model="numpy")
def _snap_run(xs, ys, max_d, seg, seg_edge, rank, edge_len, twin, params, cell_ptr, cell_seg):
    k = len(xs)
    edge = np.full(k, -1, dtype=np.int64)
    tw = np.full(k, -1, dtype=np.int64)
    frac = np.zeros(k)
    dist = np.full(k, np.inf)
    fx = xs.copy()
    fy = ys.copy()
    for i in range(k):
        px, py = xs[i], ys[i]
        s, d = _nearest_segment(px, py, max_d, seg, rank, params, cell_ptr, cell_seg)
        if s < 0:
            continue
        e = seg_edge[s]
        edge[i] = e
        tw[i] = twin[e]
        dist[i] = d
        frac[i], fx[i], fy[i] = _locate(px, py, s, seg, seg_edge, edge_len)
    return edge, tw, frac, dist, fx, fy


@nb.njit(cache=True, error_model="numpy")
def snap_points(xs, ys, max_d, seg, seg_edge, rank, edge_len, twin, params, cell_ptr, cell_seg):
    """Snap every point: (edge or -1, twin or -1, fraction, distance or inf, foot x, foot y) arrays.

    A point with no segment within ``max_d`` keeps itself as the foot (fraction 0, distance inf). Each
    answer depends on its point alone; the order of the work (grid rows, for the cache) does not change it.
    """
    if len(xs) < SORT_MIN:
        return _snap_run(xs, ys, max_d, seg, seg_edge, rank, edge_len, twin, params, cell_ptr, cell_seg)
    order = _cell_order(xs, ys, params)
    edge_s, tw_s, frac_s, dist_s, fx_s, fy_s = _snap_run(xs[order], ys[order], max_d, seg, seg_edge, rank,
                                                         edge_len, twin, params, cell_ptr, cell_seg)
    k = len(xs)
    edge = np.empty(k, dtype=np.int64)
    tw = np.empty(k, dtype=np.int64)
    frac = np.empty(k)
    dist = np.empty(k)
    fx = np.empty(k)
    fy = np.empty(k)
    for j in range(k):
        i = order[j]
        edge[i] = edge_s[j]
        tw[i] = tw_s[j]
        frac[i] = frac_s[j]
        dist[i] = dist_s[j]
        fx[i] = fx_s[j]
        fy[i] = fy_s[j]
    return edge, tw, frac, dist, fx, fy


@nb.njit(cache=True, error_model="numpy")
def snap_point(px, py, max_d, seg, seg_edge, rank, edge_len, twin, params, cell_ptr, cell_seg):
    """:func:`snap_points` of one point, as scalars: (edge, twin, fraction, distance, foot x, foot y)."""
    s, d = _nearest_segment(px, py, max_d, seg, rank, params, cell_ptr, cell_seg)
    if s < 0:
        return -1, -1, 0.0, np.inf, px, py
    e = seg_edge[s]
    f, fx, fy = _locate(px, py, s, seg, seg_edge, edge_len)
    return e, twin[e], f, d, fx, fy


def cell_size(seg: np.ndarray) -> float:
    """A cell side for the grid: the larger of the side giving one segment per cell of the bounding box
    and the mean segment box side, at least a metre and at most the extent."""
    if len(seg) == 0:
        return 1.0
    w = float(np.ptp(seg[:, [X0, X1]]))
    h = float(np.ptp(seg[:, [Y0, Y1]]))
    mean_box = float(np.mean(np.maximum(np.abs(seg[:, DX]), np.abs(seg[:, DY]))))
    side = max(np.sqrt(max(w, 1.0) * max(h, 1.0) / len(seg)), mean_box)
    return min(max(side, 1.0), max(w, h, 1.0))


class SnapIndex:
    """The segments of every edge and their grid, built once per road graph.

    Parameters
    ----------
    coords, part : ``shapely.get_coordinates(geoms, return_index=True)`` of the edges' LineStrings.
    n_edges : the number of edges (an edge without coordinates has no segments and is never snapped to).
    twin : per edge, its reverse edge or -1 (:attr:`gridmap.routing.roadgraph.RoadGraph.twin`).
    cell : the grid's cell side in metres (default: :func:`cell_size`).
    """

    def __init__(self, coords: np.ndarray, part: np.ndarray, n_edges: int, twin: np.ndarray,
                 cell: float | None = None) -> None:
        coords = np.ascontiguousarray(coords, dtype=np.float64).reshape(-1, 2)
        part = np.ascontiguousarray(part, dtype=np.int64)
        self.twin = np.ascontiguousarray(twin, dtype=np.int64)
        seg, seg_edge, edge_ptr, self.edge_len = _segments(coords, part, n_edges)
        mirrored = _mirrored(seg, edge_ptr, self.twin)
        self.n_mirrored = int(mirrored.sum())
        rank = np.flatnonzero(~mirrored)  # the position in edge order: the tie-break
        kept = seg[rank]
        side = cell_size(kept) if cell is None else float(cell)
        if not side > 0:
            raise ValueError(f"cell: {cell!r} is not a cell side; give metres > 0 (or None for the default)")
        self.params = _grid_params(kept, side)
        if self.params[NX] * self.params[NY] > MAX_CELLS:
            raise ValueError(f"cell: {side} m makes a grid of {self.params[NX] * self.params[NY]:,.0f} cells; give a "
                             f"larger side (the default, {cell_size(kept):.3g} m, makes about one per segment)")
        order = _spatial_order(kept, self.params)
        self.rank = np.ascontiguousarray(rank[order])
        self.seg = np.ascontiguousarray(seg[self.rank])
        self.seg_edge = np.ascontiguousarray(seg_edge[self.rank])
        self.cell_ptr, self.cell_seg = _grid(self.seg, self.params)
        self.args = (self.seg, self.seg_edge, self.rank, self.edge_len, self.twin, self.params, self.cell_ptr,
                     self.cell_seg)

    @property
    def n_segments(self) -> int:
        """Segments in the grid (a two-way road's mirrored second direction is not)."""
        return len(self.seg)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.args)
