"""Partition of the sample street's blocks into communities and grids with even workloads.

Private helpers of :mod:`gridmap.sample.street` (EPSG:4549 metres throughout).

1. :func:`split_blocks` cuts blocks whose workload exceeds a cap. Cuts run along the free strip
   between two lattice columns (or rows) of the block's buildings, so no footprint is ever cut.
2. :func:`partition` runs a recursive weighted bisection on the unit centroids: first into
   communities (each given its number of grids), then each community into its grids. At each
   step it tries 12 cut directions and keeps the one that best matches the wanted weight share,
   preferring cuts across the long axis (compact parts).
3. Disconnected grids are repaired (stray pieces join the neighbour they share most border with)
   and a greedy local search moves boundary units from heavier to lighter adjacent grids while
   both stay connected, until the max/min workload ratio is small.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import shapely

from gridmap.sample._blocks import BlockPlan, Footprints, adjacency, to_world

_ANGLES = np.deg2rad(np.arange(0.0, 180.0, 15.0))
_TARGET_RATIO = 1.25


def split_blocks(blocks: np.ndarray, plan: BlockPlan, starts: np.ndarray, fp: Footprints,
                 weight: np.ndarray, cap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut heavy blocks along lattice gaps into units of at most about ``cap`` workload.

    Returns the unit polygons, the source block of each unit and the unit of each building.
    """
    polys: list[shapely.Geometry] = []
    source: list[int] = []
    building_unit = np.full(len(fp.block), -1, dtype=np.int64)
    order = np.argsort(fp.block, kind="stable")
    bounds = np.searchsorted(fp.block[order], np.arange(len(blocks) + 1))
    for k, block in enumerate(blocks):
        idx = order[bounds[k]:bounds[k + 1]]
        for poly, members in _split(block, idx, k, plan, starts, fp, weight, cap):
            building_unit[members] = len(polys)
            polys.append(poly)
            source.append(k)
    return _renode(np.array(polys, dtype=object)), np.array(source, dtype=np.int64), building_unit


def _renode(polys: np.ndarray) -> np.ndarray:
    """Rebuild the units from one noding of all their boundaries.

    A cut made inside one piece ends on a border that the piece's neighbour does not have as a
    vertex (a T-junction); overlay then sees two slightly different edges. Polygonizing all
    boundaries at once gives every pair of neighbours identical shared edges.
    """
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(
        shapely.union_all(shapely.boundary(polys)))))
    face_idx, unit_idx = shapely.STRtree(polys).query(
        shapely.point_on_surface(faces), predicate="within")
    owner = np.full(len(faces), -1)
    owner[face_idx[::-1]] = unit_idx[::-1]
    out = polys.copy()
    for u in range(len(polys)):
        mine = faces[owner == u]
        if len(mine):
            out[u] = mine[0] if len(mine) == 1 else shapely.union_all(mine)
    return out


def _split(poly: shapely.Geometry, idx: np.ndarray, k: int, plan: BlockPlan, starts: np.ndarray,
           fp: Footprints, weight: np.ndarray, cap: float) -> list[tuple[shapely.Geometry, np.ndarray]]:
    if len(idx) < 2 or weight[idx].sum() <= cap:
        return [(poly, idx)]
    best: tuple[float, int, float] | None = None
    for axis in (0, 1):
        vals, inv = np.unique(fp.cell[idx, axis], return_inverse=True)
        if len(vals) < 2:
            continue
        cum = np.cumsum(np.bincount(inv, weights=weight[idx]))
        j = int(np.argmin(np.abs(cum[:-1] - cum[-1] / 2.0)))
        imbalance = abs(cum[j] - cum[-1] / 2.0) / cum[-1]
        coord = starts[k, axis] + (vals[j] + 1 + vals[j + 1]) / 2.0 * plan.pitch[k, axis]
        extent = (vals[-1] - vals[0] + 1) * plan.pitch[k, axis]
        score = imbalance - 0.1 * extent / (extent + 100.0)
        if best is None or score < best[0]:
            best = (score, axis, coord)
    if best is None:
        return [(poly, idx)]
    _, axis, coord = best
    span = np.array([[-1e5, coord], [1e5, coord]]) if axis == 1 else np.array(
        [[coord, -1e5], [coord, 1e5]])
    line = shapely.LineString(to_world(span, plan.origin[k], plan.angle[k]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(
        shapely.union_all([shapely.boundary(poly), line]))))
    faces = faces[shapely.contains(poly, shapely.point_on_surface(faces))]
    if len(faces) < 2:
        return [(poly, idx)]
    centers = shapely.points(fp.center[idx])
    out = []
    for face in faces:
        inside = idx[shapely.contains(face, centers)]
        out.extend(_split(face, inside, k, plan, starts, fp, weight, cap))
    return out


def _cut(idx: np.ndarray, parts: tuple[int, int], frac: float, ctx: _Context
         ) -> tuple[np.ndarray, np.ndarray]:
    """Best straight cut of ``idx`` into a ``frac`` weight share, both sides made connected."""
    xy, w = ctx.xy, ctx.w
    total = w[idx].sum()
    dirs = np.c_[np.cos(_ANGLES), np.sin(_ANGLES)]
    proj_all = xy[idx] @ dirs.T
    spreads = np.ptp(proj_all, axis=0)
    unit_t = ctx.unit_t * sum(parts)
    best = None
    for k in range(len(_ANGLES)):
        order = np.lexsort((idx, proj_all[:, k]))
        cw = np.cumsum(w[idx][order])
        pos = np.arange(parts[0] - 1, len(idx) - parts[1])
        if len(pos) == 0:
            continue
        # Tie-break on the unit count share so that empty land is shared out too.
        err = np.abs(cw[pos] - frac * total) + 1e-3 * unit_t * np.abs((pos + 1) / len(idx) - frac)
        p = int(pos[np.argmin(err)])
        left, right = _connect(np.sort(idx[order[: p + 1]]), np.sort(idx[order[p + 1:]]), ctx)
        if len(left) < parts[0] or len(right) < parts[1]:
            continue
        score = abs(w[left].sum() - frac * total) / unit_t + 0.3 * (
            1.0 - spreads[k] / max(spreads.max(), 1e-9)) / sum(parts) ** 0.5
        if best is None or score < best[0]:
            best = (score, left, right)
    if best is None:
        raise ValueError("n_grids is too fine for the road network's blocks; lower n_grids")
    return best[1], best[2]


def _connect(left: np.ndarray, right: np.ndarray, ctx: _Context
             ) -> tuple[np.ndarray, np.ndarray]:
    """Hand every detached piece of one side over to the other side (a few rounds)."""
    sides = [left, right]
    for _ in range(4):
        changed = False
        for s in (0, 1):
            comps = ctx.graph.components(sides[s])
            if len(comps) < 2:
                continue
            comps.sort(key=lambda c: (-ctx.w[c].sum(), c[0]))
            stray = np.concatenate([np.asarray(c) for c in comps[1:]])
            sides[s] = np.setdiff1d(sides[s], stray)
            sides[1 - s] = np.union1d(sides[1 - s], stray)
            changed = True
        if not changed:
            break
    return sides[0], sides[1]


@dataclass(frozen=True)
class _Context:
    xy: np.ndarray
    w: np.ndarray
    unit_t: float
    graph: _Graph


def _bisect(idx: np.ndarray, parts: list[int], ctx: _Context) -> list[np.ndarray]:
    if len(parts) == 1:
        return [idx]
    half = len(parts) // 2
    frac = sum(parts[:half]) / sum(parts)
    left, right = _cut(idx, (half, len(parts) - half), frac, ctx)
    return _bisect(left, parts[:half], ctx) + _bisect(right, parts[half:], ctx)


def community_sizes(n_grids: int) -> list[int]:
    """Grids per community: about 6-7 each (22 communities for Xianlin's 149 grids)."""
    n_comm = max(1, int(round(n_grids / 6.75)))
    base, extra = divmod(n_grids, n_comm)
    return [base + 1] * extra + [base] * (n_comm - extra)


class _Graph:
    """Unit adjacency with shared border lengths."""

    def __init__(self, n: int, i: np.ndarray, j: np.ndarray, shared: np.ndarray) -> None:
        self.nbrs: list[dict[int, float]] = [{} for _ in range(n)]
        for a, b, s in zip(i.tolist(), j.tolist(), shared.tolist(), strict=True):
            self.nbrs[a][b] = s
            self.nbrs[b][a] = s

    def components(self, members: np.ndarray) -> list[list[int]]:
        todo = set(members.tolist())
        comps = []
        for start in members.tolist():
            if start not in todo:
                continue
            todo.discard(start)
            comp, queue = [start], deque([start])
            while queue:
                for v in sorted(self.nbrs[queue.popleft()]):
                    if v in todo:
                        todo.discard(v)
                        comp.append(v)
                        queue.append(v)
            comps.append(comp)
        return comps


def partition(polys: np.ndarray, w: np.ndarray, n_grids: int) -> tuple[np.ndarray, np.ndarray]:
    """Label every unit with a grid (0..n_grids-1); return labels and each grid's community."""
    if len(polys) < n_grids:
        raise ValueError(
            f"n_grids={n_grids} exceeds the {len(polys)} block pieces of the road network; "
            "lower n_grids")
    xy = shapely.get_coordinates(shapely.point_on_surface(polys))
    area = shapely.area(polys)
    # Bisection weight: workload plus a little land area, so empty land is shared out too.
    wb = w + 0.05 * w.sum() / area.sum() * area
    sizes = community_sizes(n_grids)
    unit_t = wb.sum() / n_grids
    graph = _Graph(len(polys), *adjacency(polys))
    ctx = _Context(xy, wb, unit_t, graph)
    labels = np.empty(len(polys), dtype=np.int64)
    grid_comm = np.empty(n_grids, dtype=np.int64)
    g = 0
    for c, members in enumerate(_bisect(np.arange(len(polys)), sizes, ctx)):
        for part in _bisect(members, [1] * sizes[c], ctx):
            labels[part] = g
            grid_comm[g] = c
            g += 1
    _repair(labels, graph, area, n_grids)
    _refine(labels, grid_comm, graph, w, n_grids)
    _repair(labels, graph, area, n_grids)
    return labels, grid_comm


def _repair(labels: np.ndarray, graph: _Graph, area: np.ndarray, n_grids: int) -> None:
    """Give every detached piece of a grid to the neighbouring grid it shares most border with."""
    for _ in range(6):
        changed = False
        for g in range(n_grids):
            comps = graph.components(np.flatnonzero(labels == g))
            if len(comps) < 2:
                continue
            comps.sort(key=lambda c: (-area[c].sum(), c[0]))
            for comp in comps[1:]:
                border: dict[int, float] = {}
                for u in comp:
                    for v, s in graph.nbrs[u].items():
                        if labels[v] != g:
                            border[int(labels[v])] = border.get(int(labels[v]), 0.0) + s
                if border:
                    labels[comp] = max(sorted(border), key=lambda h: border[h])
                    changed = True
        if not changed:
            return


def _connected_without(graph: _Graph, members: np.ndarray, u: int) -> bool:
    rest = members[members != u]
    return len(rest) > 0 and len(graph.components(rest)) == 1


def _refine(labels: np.ndarray, grid_comm: np.ndarray, graph: _Graph, w: np.ndarray,
            n_grids: int, max_moves: int = 4000) -> None:
    """Greedy boundary moves from heavier to lighter adjacent grids (both stay connected)."""
    edges = np.array([(a, b, s) for a in range(len(labels)) for b, s in graph.nbrs[a].items()])
    if len(edges) == 0:
        return
    ea, eb, es = edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64), edges[:, 2]
    perim = np.bincount(ea, weights=es, minlength=len(labels))
    rejected: set[tuple[int, int]] = set()
    for _ in range(max_moves):
        load = np.bincount(labels, weights=w, minlength=n_grids)
        if load.min() > 0 and load.max() / load.min() < _TARGET_RATIO:
            return
        g, h = labels[ea], labels[eb]
        m = g != h
        # Border of unit a with grid h, as a share of a's whole border.
        key = ea[m] * n_grids + h[m]
        uniq, inv = np.unique(key, return_inverse=True)
        attach = np.bincount(inv, weights=es[m]) / np.maximum(perim[uniq // n_grids], 1e-9)
        cu, ch = uniq // n_grids, uniq % n_grids
        cg = labels[cu]
        gain = w[cu] * (load[cg] - load[ch] - w[cu])
        ok = (gain > 0) & (attach >= 0.1)
        if not ok.any():
            return
        moved = False
        for c in np.flatnonzero(ok)[np.lexsort((cu[ok], -gain[ok]))]:
            u, src, dst = int(cu[c]), int(cg[c]), int(ch[c])
            if (u, dst) in rejected:
                continue
            members = np.flatnonzero(labels == src)
            comm = np.flatnonzero(np.isin(labels, np.flatnonzero(grid_comm == grid_comm[src])))
            if not _connected_without(graph, members, u) or (
                    grid_comm[src] != grid_comm[dst] and not _connected_without(graph, comm, u)):
                rejected.add((u, dst))
                continue
            labels[u] = dst
            moved = True
            break
        if not moved:
            return
