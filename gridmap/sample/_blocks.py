"""Roads, city blocks and building footprints for the sample street (all in EPSG:4549 metres).

Private helpers of :mod:`gridmap.sample.street`:

* :func:`prepare_roads` turns the directed OSM edges into undirected, deduplicated centrelines
  with a clean street name and a road class.
* :func:`build_blocks` polygonizes the noded centrelines into city blocks and merges the slivers
  that dual carriageways, ramps and elevated roads leave behind.
* :class:`NoiseField` is a smooth deterministic field (a few random plane waves) that makes
  building density and land use vary gradually across the street.
* :func:`place_buildings` fills each block with a lattice of footprints aligned to the block's
  minimum rotated rectangle, set back from the roads; lattice cell edges are gaps between
  buildings, which is what lets the partitioner cut a block without cutting a building.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import shapely
from scipy.special import ndtr

# Footprint length / width ranges (m) and gap ranges along / across the rows (m).
_LATTICE = {
    "slab": ((40, 70), (12, 16), (12, 20), (28, 50)),
    "tower": ((25, 35), (18, 24), (26, 40), (34, 50)),
    "village": ((10, 14), (9, 12), (3, 6), (4, 8)),
    "villa": ((14, 20), (12, 15), (8, 14), (10, 16)),
    "commercial": ((30, 80), (20, 40), (12, 24), (15, 25)),
    "industrial": ((40, 90), (20, 40), (12, 20), (12, 20)),
    "public": ((40, 80), (18, 30), (20, 35), (20, 35)),
}
# How eagerly each typology keeps its lattice cells (before the global density scale).
_KEEP = {"slab": 1.0, "tower": 1.0, "village": 0.5, "villa": 0.8, "commercial": 1.0,
         "industrial": 1.0, "public": 1.0}
_SLIVER_WIDTH_M = 25.0
_SLIVER_AREA_M2 = 3000.0


@dataclass(frozen=True)
class Roads:
    """Undirected road centrelines in EPSG:4549 with names, classes and per-name geometry."""

    lines: np.ndarray
    names: np.ndarray
    ranks: np.ndarray
    tree: shapely.STRtree
    named_tree: shapely.STRtree
    named_index: np.ndarray
    merged: dict[str, shapely.LineString | shapely.MultiLineString | shapely.GeometryCollection]


def _clean_name(raw: object) -> str:
    """First street-like token of an OSM name ('莫干山路;北大桥' -> '莫干山路')."""
    if not isinstance(raw, str) or not raw.strip():
        return ""
    tokens = [re.sub(r"[（(].*?[)）]", "", t).strip() for t in raw.split(";")]
    tokens = [t for t in tokens if t]
    for token in tokens:
        if token.endswith(("路", "街", "道", "巷", "弄", "线")):
            return token
    return tokens[0] if tokens else ""


def _rank(highway: object) -> int:
    """Road class: 4 trunk, 3 primary, 2 secondary, 1 tertiary, 0 anything smaller."""
    first = str(highway).split(";")[0].replace("_link", "")
    return {"trunk": 4, "motorway": 4, "primary": 3, "secondary": 2, "tertiary": 1}.get(first, 0)


def prepare_roads(lines: np.ndarray, raw_names: np.ndarray, highways: np.ndarray) -> Roads:
    """Deduplicate directed edges into undirected centrelines (inputs already in EPSG:4549)."""
    keys = shapely.to_wkb(shapely.normalize(lines))
    _, first = np.unique(keys, return_index=True)
    keep = np.sort(first)
    keep = keep[shapely.length(lines[keep]) > 0.5]
    lines = lines[keep]
    names = np.array([_clean_name(n) for n in raw_names[keep]], dtype=object)
    ranks = np.array([_rank(h) for h in highways[keep]], dtype=np.int64)
    named_index = np.flatnonzero(names != "")
    merged = {
        name: shapely.line_merge(shapely.union_all(lines[names == name]))
        for name in sorted(set(names[named_index]))
    }
    return Roads(lines, names, ranks, shapely.STRtree(lines), shapely.STRtree(lines[named_index]),
                 named_index, merged)


def adjacency(polys: np.ndarray, min_shared_m: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of polygons sharing more than ``min_shared_m`` of boundary, with the length."""
    tree = shapely.STRtree(polys)
    i, j = tree.query(polys, predicate="intersects")
    m = i < j
    i, j = i[m], j[m]
    shared = shapely.length(
        shapely.intersection(shapely.boundary(polys[i]), shapely.boundary(polys[j]), grid_size=0.01)
    )
    m = shared > min_shared_m
    return i[m], j[m], shared[m]


def _find(parent: np.ndarray, k: int) -> int:
    while parent[k] != k:
        parent[k] = parent[parent[k]]
        k = parent[k]
    return k


def build_blocks(roads: Roads) -> np.ndarray:
    """City blocks: faces of the noded road graph, slivers merged, largest connected region only."""
    noded = shapely.get_parts(shapely.union_all(roads.lines))
    faces = shapely.get_parts(shapely.polygonize(noded))
    region = max(shapely.get_parts(shapely.union_all(faces)), key=shapely.area)
    shapely.prepare(region)
    faces = faces[shapely.contains(region, shapely.point_on_surface(faces))]
    for _ in range(8):
        area = shapely.area(faces)
        width = 2.0 * area / shapely.length(faces)
        small = (width < _SLIVER_WIDTH_M) | (area < _SLIVER_AREA_M2)
        if not small.any() or len(faces) < 2:
            break
        i, j, shared = adjacency(faces)
        # Slivers hanging off the edge of the network (little shared border) are dropped.
        border = np.bincount(i, shared, len(faces)) + np.bincount(j, shared, len(faces))
        stub = small & (border < 0.5 * shapely.length(faces))
        if stub.any():
            faces = faces[~stub]
            continue
        parent = np.arange(len(faces))
        best = np.full(len(faces), -1)
        score = np.full(len(faces), -1.0)
        # Prefer a non-sliver neighbour (bonus), then the longest shared edge.
        for a, b, s in zip(np.r_[i, j], np.r_[j, i], np.r_[shared, shared], strict=True):
            if small[a]:
                val = s + (1e7 if not small[b] else 0.0)
                if val > score[a] or (val == score[a] and b < best[a]):
                    score[a], best[a] = val, b
        for a in np.flatnonzero(small & (best >= 0)).tolist():
            ra, rb = _find(parent, a), _find(parent, int(best[a]))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        roots = np.array([_find(parent, k) for k in range(len(faces))])
        if len(np.unique(roots)) == len(faces):
            break
        faces = np.array([shapely.union_all(faces[roots == r]) for r in np.unique(roots)])
    region = max(shapely.get_parts(shapely.union_all(faces)), key=shapely.area)
    shapely.prepare(region)
    return faces[shapely.contains(region, shapely.point_on_surface(faces))]


class NoiseField:
    """Smooth field in [0, 1] made of a few random plane waves (roughly uniform marginal)."""

    def __init__(self, rng: np.random.Generator, n_waves: int = 7,
                 wavelength_m: tuple[float, float] = (1500.0, 6000.0)) -> None:
        angle = rng.uniform(0.0, np.pi, n_waves)
        k = 2.0 * np.pi / rng.uniform(*wavelength_m, n_waves)
        self._kx, self._ky = k * np.cos(angle), k * np.sin(angle)
        self._phase = rng.uniform(0.0, 2.0 * np.pi, n_waves)
        self._amp = rng.uniform(0.5, 1.0, n_waves)
        self._norm = np.sqrt(np.sum(self._amp**2) / 2.0)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = np.asarray(x, dtype=float)[..., None], np.asarray(y, dtype=float)[..., None]
        s = np.sum(self._amp * np.cos(self._kx * x + self._ky * y + self._phase), axis=-1)
        return ndtr(s / self._norm)


@dataclass(frozen=True)
class BlockPlan:
    """Per-block typology and lattice frame (rotation origin, angle, lattice origin and pitch)."""

    typology: np.ndarray
    density: np.ndarray
    frontage_rank: np.ndarray
    origin: np.ndarray  # (n, 2)
    angle: np.ndarray
    lattice0: np.ndarray  # (n, 2) lattice origin in the rotated frame
    pitch: np.ndarray  # (n, 2)
    size: np.ndarray  # (n, 2) footprint length / width
    setback: np.ndarray


def plan_blocks(blocks: np.ndarray, roads: Roads, rng: np.random.Generator) -> BlockPlan:
    """Give every block a typology from smooth land-use fields and draw its lattice parameters."""
    n = len(blocks)
    cx, cy = shapely.get_coordinates(shapely.centroid(blocks)).T
    x0, y0 = cx.mean(), cy.mean()
    dens_f, ind_f, vil_f, com_f = (NoiseField(rng) for _ in range(4))
    # Denser towards the east (the old city) on top of the noise.
    east = np.clip((cx - cx.min()) / max(np.ptp(cx), 1.0), 0, 1)
    density = np.clip(0.75 * dens_f(cx - x0, cy - y0) + 0.35 * east - 0.05, 0.0, 1.0)
    industrial, village, commercial = ind_f(cx, cy), vil_f(cx, cy), com_f(cx, cy)

    area = shapely.area(blocks)
    road_i, block_i = shapely.STRtree(blocks).query(roads.lines, predicate="intersects")
    frontage = np.zeros(n, dtype=np.int64)  # class of the biggest road along the block
    np.maximum.at(frontage, block_i, roads.ranks[road_i])
    u = rng.random((n, 2))
    conditions = [
        (area < 4000) | (density < 0.15),
        (u[:, 0] < 0.07) & (area > 8000) & (area < 160_000),
        industrial > 0.9,
        ((frontage >= 3) & (commercial > 0.65) & (area < 200_000)) | (commercial > 0.93),
        (village > 0.6) & (density < 0.8),
        (density < 0.4) & (u[:, 1] < 0.5),
        density > 0.86,
    ]
    choices = ["green", "public", "industrial", "commercial", "village", "villa", "tower"]
    typology = np.select(conditions, choices, default="slab").astype(object)

    # Lattice axis: the block's long side, except homes, whose rows face south (坐北朝南):
    # they take whichever side of the rotated rectangle is closer to east-west.
    south_facing = np.isin(typology, ["slab", "tower", "village", "villa"])
    angle = np.zeros(n)
    for k, env in enumerate(shapely.oriented_envelope(blocks)):
        xy = shapely.get_coordinates(env)
        if len(xy) < 4:
            continue
        d = np.diff(xy[:3], axis=0)
        if south_facing[k]:
            e = d[0] if abs(d[0, 0]) * np.hypot(*d[1]) >= abs(d[1, 0]) * np.hypot(*d[0]) else d[1]
        else:
            e = d[0] if np.hypot(*d[0]) >= np.hypot(*d[1]) else d[1]
        a = np.arctan2(e[1], e[0])
        angle[k] = (a + np.pi / 2) % np.pi - np.pi / 2  # in [-90°, 90°)
    size, gaps = np.zeros((n, 2)), np.zeros((n, 2))
    for typ, (length, width, gap_u, gap_v) in _LATTICE.items():
        m = typology == typ
        k = int(m.sum())
        size[m] = np.c_[rng.uniform(*length, k), rng.uniform(*width, k)]
        gaps[m] = np.c_[rng.uniform(*gap_u, k), rng.uniform(*gap_v, k)]
    gaps *= (1.35 - 0.5 * density)[:, None]
    pitch = size + gaps
    return BlockPlan(
        typology=typology, density=density, frontage_rank=frontage, origin=np.c_[cx, cy],
        angle=angle, lattice0=rng.random((n, 2)), pitch=np.where(pitch > 0, pitch, 1.0),
        size=size, setback=rng.uniform(8.0, 15.0, n),
    )


def to_world(uv: np.ndarray, origin: np.ndarray, angle: float | np.ndarray) -> np.ndarray:
    """Block frame -> world (EPSG:4549)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.c_[uv[:, 0] * c - uv[:, 1] * s, uv[:, 0] * s + uv[:, 1] * c] + origin


def rectangles(center: np.ndarray, half: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotated rectangles (footprints) as shapely Polygons, vectorised."""
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=float)
    local = corners[None, :, :] * half[:, None, :]
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x = local[..., 0] * c - local[..., 1] * s + center[:, 0:1]
    y = local[..., 0] * s + local[..., 1] * c + center[:, 1:2]
    return cast("npt.NDArray[np.object_]", shapely.polygons(np.stack([x, y], axis=-1)))


@dataclass(frozen=True)
class Footprints:
    """Building footprints as arrays (one row per building, EPSG:4549)."""

    center: np.ndarray  # (n, 2)
    half: np.ndarray  # (n, 2) half length / half width
    angle: np.ndarray
    block: np.ndarray
    cell: np.ndarray  # (n, 2) lattice column / row inside the block

    @property
    def polygons(self) -> np.ndarray:
        return rectangles(self.center, self.half, self.angle)


def _candidates(k: int, block: shapely.Geometry, roads: Roads, plan: BlockPlan,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lattice cells of block ``k`` whose footprint fits the buildable area (block frame).

    Returns cell centres, half sizes, (column, row) indices and the lattice start corner.
    """
    near = roads.tree.query(block, predicate="intersects")
    road_buf = shapely.union_all(shapely.buffer(roads.lines[near], plan.setback[k], quad_segs=4))
    buildable = shapely.difference(shapely.buffer(block, -4.0, quad_segs=4), road_buf)
    empty = (np.empty((0, 2)), np.empty((0, 2)), np.empty((0, 2), dtype=np.int64), np.zeros(2))
    if buildable.is_empty or shapely.area(buildable) < 200:
        return empty
    origin, angle = plan.origin[k], plan.angle[k]
    c, s = np.cos(-angle), np.sin(-angle)
    local = shapely.transform(
        buildable, lambda xy: (xy - origin) @ np.array([[c, s], [-s, c]]))
    shapely.prepare(local)
    minx, miny, maxx, maxy = shapely.bounds(local)
    pitch = plan.pitch[k]
    start = np.array([minx, miny]) - plan.lattice0[k] * pitch
    n_u = int(np.ceil((maxx - start[0]) / pitch[0]))
    n_v = int(np.ceil((maxy - start[1]) / pitch[1]))
    if n_u <= 0 or n_v <= 0:
        return empty
    iu, iv = np.meshgrid(np.arange(n_u), np.arange(n_v), indexing="xy")
    cell = np.c_[iu.ravel(), iv.ravel()]
    center = start + (cell + 0.5) * pitch
    shrink = rng.uniform(0.85, 1.0, (len(cell), 2))
    half = plan.size[k] / 2.0 * shrink
    boxes = shapely.box(*(center - half).T, *(center + half).T)
    inside = shapely.contains(local, boxes)
    return center[inside], half[inside], cell[inside], start


def place_buildings(blocks: np.ndarray, roads: Roads, plan: BlockPlan, target: int,
                    rng: np.random.Generator) -> tuple[Footprints, np.ndarray]:
    """Footprints for all blocks, thinned by the density field to about ``target`` buildings.

    Returns the footprints and, per block, the lattice start in the block frame (n_blocks, 2).
    """
    centers, halves, cells, owner = [], [], [], []
    starts = np.zeros((len(blocks), 2))
    for k in range(len(blocks)):
        if plan.typology[k] == "green":
            continue
        center, half, cell, starts[k] = _candidates(k, blocks[k], roads, plan, rng)
        if len(center):
            centers.append(center)
            halves.append(half)
            cells.append(cell)
            owner.append(np.full(len(center), k))
    center, half = np.concatenate(centers), np.concatenate(halves)
    cell, block = np.concatenate(cells), np.concatenate(owner)
    typ = plan.typology[block]
    base = np.array([_KEEP[t] for t in typ]) * (0.15 + plan.density[block]) ** 1.5
    lo, hi = 0.0, 50.0
    for _ in range(60):  # expected count == target (bisection on the global scale)
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.minimum(base * mid, 1.0).sum() < target else (lo, mid)
    keep = rng.random(len(base)) < np.minimum(base * hi, 1.0)
    world = to_world(center, plan.origin[block], plan.angle[block])
    fp = Footprints(center=world[keep], half=half[keep], angle=plan.angle[block][keep],
                    block=block[keep], cell=cell[keep])
    return fp, starts
