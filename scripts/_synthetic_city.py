"""A deterministic synthetic city for the dispatch benchmark: a perturbed street lattice with one-way pairs.

``side × side`` intersections (default 500 × 500 = 250,000 nodes) about ``spacing`` metres apart, each
moved by up to ±10 % of the spacing in x and y, so neighbouring intersections are 80–120 m apart. Every
10th row and column is an arterial (50 km/h); the rest are local streets (30 km/h, each link ±10 %).
Like real grids, a share of the local streets are one-way in alternating pairs: rows with
``row % 20`` in {2, 3, 6, 7, 14, 15} (30 % of the rows) run east on even rows and west on odd ones,
and columns likewise north/south, so about 30 % of the links are one-way. 1 % of the local links are
missing (building sites, pedestrian blocks), which leaves some dead ends and one-way stubs.
Travel time is length / speed. Coordinates are EPSG:4549 metres, south-west of Hangzhou's centre.

Everything comes from one ``numpy.random.default_rng(seed)``: the same seed gives the same city.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

ARTERIAL_KPH = 50.0
LOCAL_KPH = 30.0
ONE_WAY_ROWS = (2, 3, 6, 7, 14, 15)  # of every 20 rows/columns: one-way pairs, alternating direction
MISSING_SHARE = 0.01
ORIGIN = (480_000.0, 3_320_000.0)  # EPSG:4549 metres


@dataclass(frozen=True)
class City:
    """Nodes and *directed* edges, ready for :meth:`gridmap.routing.roadgraph.RoadGraph.from_arrays`."""

    node_ids: np.ndarray  # int64, 1..n
    node_xy: np.ndarray  # (n, 2) EPSG:4549
    edge_ids: np.ndarray  # int64, 1..m
    source: np.ndarray  # node ids
    target: np.ndarray
    length_m: np.ndarray
    travel_time_s: np.ndarray
    geoms: np.ndarray  # LineStrings from source to target
    bbox: tuple[float, float, float, float]
    one_way_links: int
    two_way_links: int
    missing_links: int

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        return len(self.edge_ids)


def make_city(side: int = 500, spacing: float = 100.0, seed: int = 2024) -> City:
    """Build the lattice city (see the module docstring); about 1.7 directed edges per link."""
    rng = np.random.default_rng(seed)
    r, c = np.divmod(np.arange(side * side, dtype=np.int64), side)
    jitter = rng.uniform(-0.1, 0.1, (side * side, 2)) * spacing
    xy = np.column_stack([ORIGIN[0] + c * spacing, ORIGIN[1] + r * spacing]) + jitter

    # links: horizontal (r, c) -> (r, c + 1), "line" = the row; vertical (r, c) -> (r + 1, c), line = the column
    node = np.arange(side * side, dtype=np.int64).reshape(side, side)
    h_a, h_b, h_line = node[:, :-1].ravel(), node[:, 1:].ravel(), np.repeat(np.arange(side), side - 1)
    v_a, v_b, v_line = node[:-1, :].ravel(), node[1:, :].ravel(), np.tile(np.arange(side), side - 1)
    a = np.concatenate([h_a, v_a])
    b = np.concatenate([h_b, v_b])
    line = np.concatenate([h_line, v_line])
    arterial = line % 10 == 0
    one_way = np.isin(line % 20, ONE_WAY_ROWS) & ~arterial
    backwards = one_way & (line % 2 == 1)  # odd lines run west / south
    missing = ~arterial & (rng.random(len(a)) < MISSING_SHARE)
    keep = ~missing
    a, b, arterial, one_way, backwards = a[keep], b[keep], arterial[keep], one_way[keep], backwards[keep]
    a, b = np.where(backwards, b, a), np.where(backwards, a, b)

    speed = np.where(arterial, ARTERIAL_KPH, LOCAL_KPH) / 3.6 * rng.uniform(0.9, 1.1, len(a))
    # directed edges: every link forward, plus the reverse of the two-way links
    two = ~one_way
    src = np.concatenate([a, b[two]])
    dst = np.concatenate([b, a[two]])
    spd = np.concatenate([speed, speed[two]])
    p, q = xy[src], xy[dst]
    length = np.hypot(*(q - p).T)
    geoms = shapely.linestrings(np.stack([p, q], axis=1))
    m = len(src)
    return City(
        node_ids=np.arange(1, side * side + 1, dtype=np.int64),
        node_xy=xy,
        edge_ids=np.arange(1, m + 1, dtype=np.int64),
        source=src + 1,
        target=dst + 1,
        length_m=length,
        travel_time_s=length / spd,
        geoms=geoms,
        bbox=(float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())),
        one_way_links=int(one_way.sum()),
        two_way_links=int(two.sum()),
        missing_links=int(missing.sum()),
    )
