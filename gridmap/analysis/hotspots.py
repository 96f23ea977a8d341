"""Where events cluster: counts on an H3 hexagon grid, tested with Getis-Ord Gi* (PySAL esda).

Events are counted in H3 cells (Uber's hexagonal grid; resolution 9 ≈ 0.1 km² per cell, about 175 m
edge) over *every* cell of the study area, zeros included: a hot spot is a cell whose neighbourhood
(itself and its ring of 6 neighbours, binary weights) holds significantly more events than the area's
average, which only makes sense against the empty cells too.

Significance: ``esda.G_Local(star=True)`` with conditional permutations (default 9,999, seeded, so runs
repeat exactly) gives each cell a pseudo p-value; a cell is **hot** when its Gi* is above expectation
and its p-value passes a Benjamini-Hochberg false-discovery-rate cut over all cells (``esda.fdr``), so
a few hundred tests on pure noise do not light up by chance. Cold spots are not reported: with many
empty cells the lower tail is all ties (an empty neighbourhood is "as low as it gets" in every
permutation), and esda's folded p-value then calls noise significant; the normal approximation has
the mirror problem in the upper tail (skewed counts), which is why hot spots use permutations.
With P permutations no p-value is below 1/(P+1): among n cells, a knot of fewer than about
n / ((P + 1) · alpha) hot cells cannot pass the cut (6 of 300 at P = 999; at the default 9,999 a single
cell among 500 can).
esda compiles its permutation kernel with numba on first use (~20 s, once per process). Cost per
group: O(cells · permutations · 7).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import esda
import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from libpysal.weights import W

from gridmap.core.vocabulary import WGS84
from gridmap.errors import InvalidInput

from ._frames import local_month, require


def cells_for(area: gpd.GeoDataFrame, resolution: int = 9) -> list[str]:
    """List the H3 cells whose centre lies in the area's polygons.

    Parameters
    ----------
    area : geopandas.GeoDataFrame
        The study area's polygons (any CRS; their union is used).
    resolution : int, default 9
        The H3 resolution (9: about 0.1 km² per cell).

    Returns
    -------
    list of str
        The cells' H3 indexes, sorted; empty for an empty area.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> sq = gpd.GeoDataFrame(geometry=[shapely.box(120.09, 30.27, 120.11, 30.29)], crs="EPSG:4326")
    >>> cells = cells_for(sq)                              # about 2 km x 2 km, at about 0.1 km² a cell
    >>> len(cells), cells == sorted(cells)
    (53, True)
    """
    require(area, "area")
    poly = area.to_crs(WGS84).geometry.union_all()
    cells = set(h3.geo_to_cells(shapely.geometry.mapping(poly), resolution)) if not poly.is_empty else set()
    return sorted(cells)


def cell_polygons(cells: Sequence[str]) -> gpd.GeoSeries:
    """Draw the hexagon polygons of H3 cells.

    Parameters
    ----------
    cells : sequence of str
        H3 indexes.

    Returns
    -------
    geopandas.GeoSeries
        One hexagon per cell, in order, EPSG:4326.

    Examples
    --------
    >>> import h3
    >>> hexes = cell_polygons([h3.latlng_to_cell(30.28, 120.10, 9)])
    >>> len(hexes), str(hexes.crs), len(hexes.iloc[0].exterior.coords)
    (1, 'EPSG:4326', 7)
    """
    polys = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    return gpd.GeoSeries(polys, crs=WGS84)


def _event_cells(events: gpd.GeoDataFrame, resolution: int) -> np.ndarray:
    pts = events.to_crs(WGS84).geometry
    return np.array([h3.latlng_to_cell(lat, lng, resolution) for lng, lat in zip(pts.x, pts.y, strict=True)],
                    dtype=object)


def hex_counts(events: gpd.GeoDataFrame, area: gpd.GeoDataFrame | None = None, *, resolution: int = 9,
               by: str | Sequence[str] | None = None) -> gpd.GeoDataFrame:
    """Count events per H3 cell (and per group), zeros included for every cell of ``area``.

    Parameters
    ----------
    events : geopandas.GeoDataFrame
        The events (points, any CRS).
    area : geopandas.GeoDataFrame, optional
        The study area: every cell of it gets a row, with ``n = 0`` where no event fell. None: only the
        cells holding events.
    resolution : int, default 9
        The H3 resolution.
    by : str or sequence of str, optional
        Columns of ``events`` to count separately (e.g. ``category``, ``month``); every group gets the
        same cells.

    Returns
    -------
    geopandas.GeoDataFrame
        ``cell``, the group columns, ``n`` and the hexagon (EPSG:4326), one row per (group, cell).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> ev = gpd.GeoDataFrame(geometry=[shapely.Point(120.1, 30.28)] * 3, crs="EPSG:4326")
    >>> hex_counts(ev).n.tolist()
    [3]
    >>> ev["category"] = ["parking", "parking", "fire_hazard"]
    >>> hex_counts(ev, by="category")[["category", "n"]].values.tolist()
    [['fire_hazard', 1], ['parking', 2]]
    """
    require(events, "events")
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    ev = pd.DataFrame({k: events[k].to_numpy() for k in keys})
    ev["cell"] = _event_cells(events, resolution) if len(events) else np.array([], dtype=object)
    cells = sorted(set(cells_for(area, resolution)) | set(ev["cell"])) if area is not None else sorted(set(ev["cell"]))
    counts = ev.groupby([*keys, "cell"], observed=True).size().rename("n")
    if keys:
        groups = ev[keys].drop_duplicates().sort_values(keys)
        full = pd.MultiIndex.from_frame(groups.merge(pd.DataFrame({"cell": cells}), how="cross")[[*keys, "cell"]])
    else:
        full = pd.Index(cells, name="cell")
    out = counts.reindex(full, fill_value=0).reset_index()
    out["n"] = out["n"].astype(int)
    geom = cell_polygons(out["cell"].tolist())
    return gpd.GeoDataFrame(out, geometry=geom.values, crs=WGS84)


def hex_weights(cells: Sequence[str], k: int = 1) -> W:
    """Build the binary contiguity of H3 cells: each cell's neighbours within ``k`` rings that are in ``cells``.

    Parameters
    ----------
    cells : sequence of str
        H3 indexes; the weights' ids are their positions.
    k : int, default 1
        Rings of neighbours.

    Returns
    -------
    libpysal.weights.W
        Binary weights, without the cell itself (:func:`getis_ord` adds it: Gi*).

    Examples
    --------
    >>> import h3
    >>> c = h3.latlng_to_cell(30.28, 120.10, 9)
    >>> hex_weights(sorted(h3.grid_disk(c, 1))).cardinalities[sorted(h3.grid_disk(c, 1)).index(c)]
    6
    """
    pos = {c: i for i, c in enumerate(cells)}
    neighbours = {}
    for i, c in enumerate(cells):
        neighbours[i] = sorted(pos[d] for d in h3.grid_disk(c, k) if d != c and d in pos)
    return W(neighbours, silence_warnings=True)


def getis_ord(counts: gpd.GeoDataFrame, column: str = "n", *, k: int = 1, permutations: int = 9999,
              alpha: float = 0.05, fdr: bool = True, seed: int = 20261122, w: W | None = None) -> gpd.GeoDataFrame:
    """Test one value per H3 cell with Getis-Ord Gi*: ``gi_z``, ``p_value`` and ``hotspot``.

    Cells are neighbours within ``k`` rings (binary weights, the cell itself included: Gi*).
    ``p_value`` is the pseudo p-value of ``permutations`` conditional permutations that the cell's Gi*
    is this high (1 where it is below expectation); a cell is hot when ``p_value`` passes the
    Benjamini-Hochberg FDR cut at ``alpha`` over all cells. Fewer than 3 cells, no event or the same
    value everywhere: nothing is significant.

    Parameters
    ----------
    counts : geopandas.GeoDataFrame
        One row per cell: ``cell`` and the value ``column`` (e.g. one group of :func:`hex_counts`).
    column : str, default "n"
        The value tested.
    k : int, default 1
        Rings of neighbours.
    permutations : int, default 9999
        Conditional permutations (esda); no p-value is below 1 / (permutations + 1).
    alpha : float, default 0.05
        The false-discovery rate (or, with ``fdr=False``, the plain significance level).
    fdr : bool, default True
        Apply the Benjamini-Hochberg cut over all cells.
    seed : int, default 20261122
        The permutations' seed: the same input gives the same answer.
    w : libpysal.weights.W, optional
        Weights already built for these cells (:func:`hex_weights`).

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``counts`` with ``gi_z``, ``p_value`` and ``hotspot`` (``"hot"`` or
        ``"not significant"``).

    Examples
    --------
    A dense knot of events in one place among a sprinkling elsewhere is hot; the rest is not:

    >>> import geopandas as gpd, shapely, numpy as np, h3
    >>> centre = h3.latlng_to_cell(30.28, 120.10, 9)
    >>> cells = sorted(h3.grid_disk(centre, 8))
    >>> n = [40 if h3.grid_distance(c, centre) <= 1 else (1 if i % 3 == 0 else 0) for i, c in enumerate(cells)]
    >>> g = getis_ord(gpd.GeoDataFrame({"cell": cells, "n": n}, geometry=cell_polygons(cells).values,
    ...                                crs="EPSG:4326"))
    >>> bool((g.loc[g.cell == centre, "hotspot"] == "hot").all()), int((g.hotspot == "hot").sum()) < 30
    (True, True)
    """
    require(counts, "counts", ("cell", column))
    if counts["cell"].duplicated().any():
        raise InvalidInput("counts has several rows per cell", field="counts",
                           fix="test one group at a time (see hotspots(..., by=...))")
    cells = counts["cell"].tolist()
    y = counts[column].to_numpy(dtype=float)
    out = counts.copy()
    if len(cells) < 3 or y.sum() == 0 or np.all(y == y[0]):
        out["gi_z"], out["p_value"], out["hotspot"] = 0.0, 1.0, "not significant"
        return out
    w = w if w is not None else hex_weights(cells, k)
    with warnings.catch_warnings():  # esda announces a future default; we state ours: directed (folded)
        warnings.filterwarnings("ignore", message="The alternative hypothesis", category=DeprecationWarning)
        g = esda.G_Local(y, w, transform="B", star=True, permutations=permutations, seed=seed, n_jobs=1,
                         keep_simulations=False)
    z = np.asarray(g.Zs, dtype=float)
    p = np.where(z > 0, np.asarray(g.p_sim, dtype=float), 1.0)  # the upper tail only (see the module notes)
    cut = esda.fdr(p, alpha) if fdr else alpha
    out["gi_z"] = z
    out["p_value"] = p
    out["hotspot"] = np.where(p <= cut, "hot", "not significant")
    return out


def hotspots(events: gpd.GeoDataFrame, area: gpd.GeoDataFrame, *, resolution: int = 9,
             by: str | Sequence[str] | None = None, period: str | None = None, k: int = 1,
             permutations: int = 9999, alpha: float = 0.05, seed: int = 20261122) -> gpd.GeoDataFrame:
    """Find the Gi* hot spots of events on H3 cells over ``area``, per group (category) and period.

    Counts the events per cell of ``area`` (:func:`hex_counts`, zeros included) and tests each group
    and period separately with :func:`getis_ord`, on the same cells.

    Parameters
    ----------
    events : geopandas.GeoDataFrame
        The events (points, any CRS); with ``reported_at`` (time-zone aware) when ``period`` is given.
    area : geopandas.GeoDataFrame
        The study area's polygons (e.g. the grids of a street).
    resolution : int, default 9
        The H3 resolution.
    by : str or sequence of str, optional
        Event column(s) to test separately (e.g. ``"category"``).
    period : {"month", "quarter"}, optional
        Test each local (Asia/Shanghai) month or quarter separately.
    k, permutations, alpha, seed
        As in :func:`getis_ord`.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per (group, period, cell): ``n``, ``gi_z``, ``p_value``, ``hotspot`` and the hexagon
        (EPSG:4326).

    Examples
    --------
    Ten parking complaints in each of seven neighbouring cells, none elsewhere in an area about 4 km across: the
    seven cells are the hot spot.

    >>> import geopandas as gpd, shapely, h3
    >>> area = gpd.GeoDataFrame(geometry=[shapely.box(120.08, 30.26, 120.12, 30.30)], crs="EPSG:4326")
    >>> knot = sorted(h3.grid_disk(h3.latlng_to_cell(30.28, 120.10, 9), 1))
    >>> pts = [shapely.Point(h3.cell_to_latlng(c)[::-1]) for c in knot for _ in range(10)]
    >>> ev = gpd.GeoDataFrame({"category": ["parking"] * 70}, geometry=pts, crs="EPSG:4326")
    >>> hs = hotspots(ev, area, by="category", permutations=999)
    >>> len(hs), sorted(hs.cell[hs.hotspot == "hot"]) == knot
    (210, True)
    """
    require(events, "events")
    require(area, "area")
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    ev = events
    if period is not None:
        if period not in ("month", "quarter"):
            raise InvalidInput(f"unknown period {period!r}", field="period", fix="use 'month' or 'quarter'")
        ev = events.copy()
        m = local_month(ev["reported_at"])
        ev[period] = m if period == "month" else m.dt.to_period("Q").astype(str)
        keys.append(period)
    counts = hex_counts(ev, area, resolution=resolution, by=keys or None)
    cells = sorted(counts["cell"].unique())
    w = hex_weights(cells, k)
    parts = []
    groups = counts.groupby(keys, sort=True, observed=True) if keys else [((), counts)]
    for _, part in groups:
        part = part.set_index("cell").loc[cells].reset_index()
        parts.append(getis_ord(part, "n", k=k, permutations=permutations, alpha=alpha, seed=seed, w=w))  # type: ignore[arg-type]  # stubs: a GeoDataFrame's groups are GeoDataFrames
    out = pd.concat(parts, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=WGS84)


def hotspot_table(result: gpd.GeoDataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Sum up a :func:`hotspots` result: hot cells and the events in them, per group.

    Parameters
    ----------
    result : geopandas.GeoDataFrame
        :func:`hotspots`' frame.
    by : str or sequence of str, optional
        Its group column(s) (those given to :func:`hotspots`); None: one row for everything.

    Returns
    -------
    pandas.DataFrame
        Per group: ``cells``, ``events``, ``hot_cells``, ``events_in_hot`` and ``share_in_hot`` (NaN
        without events).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> r = gpd.GeoDataFrame({"cell": ["a", "b", "c"], "n": [8, 2, 0],
    ...                       "hotspot": ["hot", "not significant", "not significant"]},
    ...                      geometry=[shapely.Point(0, 0)] * 3, crs="EPSG:4326")
    >>> t = hotspot_table(r)
    >>> int(t.cells[0]), int(t.hot_cells[0]), float(t.share_in_hot[0])
    (3, 1, 0.8)
    """
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    df = pd.DataFrame(result.drop(columns="geometry"))
    df["hot"] = df["hotspot"] == "hot"
    df["events_in_hot"] = df["n"].where(df["hot"], 0)
    agg = {"cells": ("cell", "size"), "events": ("n", "sum"), "hot_cells": ("hot", "sum"),
           "events_in_hot": ("events_in_hot", "sum")}
    out = df.groupby(keys, sort=True).agg(**agg).reset_index() if keys else pd.DataFrame(
        {k: [df[c].agg(f)] for k, (c, f) in agg.items()})
    out["share_in_hot"] = (out["events_in_hot"] / out["events"]).where(out["events"] > 0)
    return out
