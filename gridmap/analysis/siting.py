"""Where to put k new micro fire stations: the maximal covering location problem (MCLP).

Given candidate sites, demand points (buildings weighted by residents) and a reach of t minutes by road,
choose k sites that maximise the weight newly covered (demand already within t of an existing station
counts as covered and earns nothing more). Church & ReVelle's MCLP:

    maximise  sum_i w_i y_i   subject to   y_i <= sum_{j covers i} x_j,   sum_j x_j = k,   x binary, 0 <= y <= 1

Two solvers:

* ``method="mip"`` (default): the integer programme above, solved exactly by CBC through PuLP (a
  well-kept modeller that bundles the solver); demand points that the same set of candidates covers
  are merged first, which shrinks the model without changing it. The model has one term per
  (demand, candidate) pair within reach: fast for the 3-minute rule on a street (a second), slow when
  the reach is wide and the matrix dense (5 minutes, every candidate reaching half the street: tens of
  seconds); ``k = 1`` needs no solver (the best single site is exact).
* ``method="greedy"``: add, k times, the site with the largest marginal gain. Coverage is monotone
  submodular, so greedy is within a factor (1 - 1/e) ≈ 0.632 of the optimum (Nemhauser, Wolsey &
  Fisher 1978). The result also carries a data-dependent upper bound on the optimum
  (min over steps of f(S) + the k largest marginal gains at S), usually much tighter than f/(1 - 1/e).

The coverage matrix costs one bounded Dijkstra per candidate (O(C · (V + E) log V)) and one lookup
per candidate and uncovered demand point (O(C · D)), with the demand snapped to the roads once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from gridmap.config import MEASURE_CRS
from gridmap.errors import InvalidInput
from gridmap.routing import many_to_one
from gridmap.routing.roadgraph import RoadGraph

from ._frames import point_xy, require, to_measure
from .coverage import MICRO_STATION_MINUTES

#: The a-priori guarantee of the greedy algorithm for maximum coverage.
GREEDY_GUARANTEE = 1.0 - 1.0 / np.e


@dataclass
class SitingResult:
    """The sites :func:`maximal_covering` chose, and what they add.

    Made by :func:`maximal_covering`; read its fields, or :meth:`summary` for one line of figures.

    Parameters
    ----------
    sites : geopandas.GeoDataFrame
        The chosen candidates (their CRS), in the order of their marginal gain, with ``gain`` (weight newly
        covered by this site given the ones before it), ``cumulative`` (covered weight so far) and ``rank``.
    demand : geopandas.GeoDataFrame
        The demand frame with ``covered_before`` and ``covered_after`` (bool).
    k : int
        The number of new sites asked for.
    minutes : float
        The reach.
    method : str
        ``"mip"`` or ``"greedy"``.
    total : float
        The demand's total weight.
    covered_before, covered_after : float
        The weight covered by the existing stations, and with the new sites too.
    upper_bound : float
        A proven upper bound on the best achievable covered weight with k new sites (equal to
        ``covered_after`` when ``optimal``).
    optimal : bool
        Whether ``sites`` is proven optimal.
    notes : list of str
        What the solver said (model size, a time limit reached, fewer useful sites than k).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridmap.analysis._toy import toy_graph
    >>> homes = gpd.GeoDataFrame({"residents": [30, 50]}, crs="EPSG:4549",
    ...                          geometry=[shapely.Point(900, 0), shapely.Point(950, 0)])
    >>> cands = gpd.GeoDataFrame({"code": ["C1", "C2"]}, crs="EPSG:4549",
    ...                          geometry=[shapely.Point(100, 0), shapely.Point(800, 0)])
    >>> r = maximal_covering(toy_graph(), cands, homes, k=1, minutes=0.5)
    >>> r.gained, r.optimal, r.summary()["share_after"]
    (80.0, True, 1.0)
    """

    sites: gpd.GeoDataFrame
    demand: gpd.GeoDataFrame
    k: int
    minutes: float
    method: str
    total: float
    covered_before: float
    covered_after: float
    upper_bound: float
    optimal: bool
    notes: list[str] = field(default_factory=list)

    @property
    def gained(self) -> float:
        """Weight newly covered by the chosen sites (``covered_after - covered_before``)."""
        return self.covered_after - self.covered_before

    def summary(self) -> pd.Series:
        """Summarise the result in one line of figures.

        Returns
        -------
        pandas.Series
            ``k``, ``minutes``, ``method``, ``total``, ``covered_before``, ``covered_after``, ``gained``,
            ``share_before``, ``share_after`` (of ``total``; NaN when it is 0), ``upper_bound`` and ``optimal``.
        """
        return pd.Series({
            "k": self.k, "minutes": self.minutes, "method": self.method, "total": self.total,
            "covered_before": self.covered_before, "covered_after": self.covered_after, "gained": self.gained,
            "share_before": self.covered_before / self.total if self.total else np.nan,
            "share_after": self.covered_after / self.total if self.total else np.nan,
            "upper_bound": self.upper_bound, "optimal": self.optimal,
        })


def road_node_candidates(graph: RoadGraph, within: gpd.GeoDataFrame | None = None, *,
                         min_spacing_m: float = 0.0) -> gpd.GeoDataFrame:
    """List road junctions as candidate sites, optionally inside some polygons and thinned.

    Junctions on a dead-end island of the network (outside its main strongly connected component) are left
    out: a site there reaches nobody.

    Parameters
    ----------
    graph : RoadGraph
        The road graph (EPSG:4549).
    within : geopandas.GeoDataFrame, optional
        Keep only the junctions inside these polygons (any CRS), e.g. the street.
    min_spacing_m : float, default 0
        Keep junctions at least this far apart (a greedy pass in node order), which shrinks the problem on
        dense networks without losing real choices.

    Returns
    -------
    geopandas.GeoDataFrame
        Points in EPSG:4549 with ``node_id`` and ``code`` (``"N<node_id>"``), indexed from 0.

    Examples
    --------
    >>> from gridmap.analysis._toy import toy_graph
    >>> road_node_candidates(toy_graph()).code.tolist()
    ['N1', 'N2', 'N3']
    >>> len(road_node_candidates(toy_graph(), min_spacing_m=600))   # the middle one is dropped
    2
    """
    xy = graph.node_xy
    pts = gpd.GeoDataFrame({"node_id": graph.node_ids}, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
                           crs=MEASURE_CRS)
    keep = graph.scc == graph.main_scc  # a site on a dead-end island reaches nobody
    pts = pts[keep]
    if within is not None:
        poly = to_measure(within, "within").geometry.union_all()
        pts = pts[pts.within(poly)]
    if min_spacing_m > 0 and len(pts):
        from scipy.spatial import cKDTree

        c = np.column_stack([pts.geometry.x, pts.geometry.y])
        tree = cKDTree(c)
        taken = np.zeros(len(c), dtype=bool)
        dropped = np.zeros(len(c), dtype=bool)
        for i in range(len(c)):
            if dropped[i]:
                continue
            taken[i] = True
            dropped[tree.query_ball_point(c[i], min_spacing_m)] = True
        pts = pts[taken]
    pts = pts.reset_index(drop=True)
    pts["code"] = "N" + pts["node_id"].astype(str)
    return pts


def coverage_matrix(graph: RoadGraph, candidates: gpd.GeoDataFrame, demand: gpd.GeoDataFrame,
                    minutes: float = MICRO_STATION_MINUTES, *, max_snap_m: float = 500.0,
                    rows: np.ndarray | None = None) -> sp.csc_matrix:
    """Build the boolean (demand x candidates) matrix: candidate j reaches demand i within ``minutes``.

    One bounded Dijkstra per candidate, the demand snapped once: O(C · (V + E) log V + C · D).

    Parameters
    ----------
    graph : RoadGraph
        The road graph (EPSG:4549).
    candidates : geopandas.GeoDataFrame
        Candidate sites (any CRS).
    demand : geopandas.GeoDataFrame
        Demand points or footprints (any CRS).
    minutes : float, default ``MICRO_STATION_MINUTES`` (3)
        The reach.
    max_snap_m : float, default 500
        As in :func:`gridmap.analysis.travel_times`.
    rows : numpy.ndarray, optional
        Restrict the demand to these positions; the result still has one row per demand point, the others
        empty.

    Returns
    -------
    scipy.sparse.csc_matrix
        Boolean, of shape (len(demand), len(candidates)).

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> from gridmap.analysis._toy import toy_graph
    >>> homes = gpd.GeoDataFrame(geometry=[shapely.Point(100, 0), shapely.Point(900, 0)], crs="EPSG:4549")
    >>> cands = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0), shapely.Point(1000, 0)], crs="EPSG:4549")
    >>> coverage_matrix(toy_graph(), cands, homes, minutes=0.5).toarray().tolist()
    [[True, False], [False, True]]
    """
    limit = float(minutes) * 60.0
    dx, dy = point_xy(demand, "demand")
    sel = np.arange(len(dx)) if rows is None else np.asarray(rows, dtype=np.int64)
    targets = many_to_one.Targets(graph, dx[sel], dy[sel], max_snap_m)
    cx, cy = point_xy(candidates, "candidates")
    snaps = graph.snap(cx, cy, max_snap_m)
    r_idx, c_idx = [], []
    for j in range(len(cx)):
        seeds = many_to_one.seeds_from_snap(graph, snaps, j)
        if seeds is None:
            continue
        t = targets.times(graph, seeds, limit)
        hit = np.flatnonzero(t <= limit)
        r_idx.append(sel[hit])
        c_idx.append(np.full(len(hit), j, dtype=np.int64))
    r = np.concatenate(r_idx) if r_idx else np.zeros(0, dtype=np.int64)
    c = np.concatenate(c_idx) if c_idx else np.zeros(0, dtype=np.int64)
    return sp.csc_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(len(dx), len(cx)))


def _greedy(a: sp.csc_matrix, w: np.ndarray, k: int) -> tuple[list[int], float]:
    """Run greedy max coverage on a (demand x candidates) matrix; return the picks and the data-dependent bound."""
    a = a.tocsc().astype(np.float64)
    uncovered = np.ones(a.shape[0], dtype=bool)
    picks: list[int] = []
    value = 0.0
    bound = np.inf
    for _ in range(k):
        gains = a.T @ (w * uncovered)
        gains[picks] = 0.0
        top = np.sort(gains)[::-1][:k]
        bound = min(bound, value + float(top.sum()))
        j = int(np.argmax(gains))  # ties: the lowest index, deterministic
        if gains[j] <= 0:
            break
        picks.append(j)
        value += float(gains[j])
        uncovered &= ~(a[:, j].toarray().ravel() > 0)
    gains = a.T @ (w * uncovered)
    gains[picks] = 0.0
    bound = min(bound, value + float(np.sort(gains)[::-1][:k].sum()))
    return picks, bound


def _mip(a: sp.csc_matrix, w: np.ndarray, k: int, time_limit_s: float) -> tuple[list[int], bool, list[str]]:
    with warnings.catch_warnings():  # PuLP 3.x announces its 4.0 API (pinned below 4: it unbundles CBC)
        warnings.simplefilter("ignore", DeprecationWarning)
        return _mip_model(a, w, k, time_limit_s)


def _mip_model(a: sp.csc_matrix, w: np.ndarray, k: int, time_limit_s: float) -> tuple[list[int], bool, list[str]]:
    import pulp

    a = a.tocsr()
    keep = np.flatnonzero((a.getnnz(axis=1) > 0) & (w > 0))
    cols_used = np.unique(a[keep].indices) if len(keep) else np.zeros(0, dtype=np.int64)
    if len(cols_used) <= k:
        return sorted(cols_used.tolist()), True, []
    # merge demand covered by the same set of candidates: same model, fewer rows
    groups: dict[tuple[int, ...], float] = {}
    for i in keep:
        key = tuple(a.indices[a.indptr[i]:a.indptr[i + 1]].tolist())
        groups[key] = groups.get(key, 0.0) + float(w[i])
    prob = pulp.LpProblem("mclp", pulp.LpMaximize)
    x = {j: pulp.LpVariable(f"x{j}", cat="Binary") for j in cols_used.tolist()}
    y = [pulp.LpVariable(f"y{g}", lowBound=0, upBound=1) for g in range(len(groups))]
    prob += pulp.lpSum(wg * y[g] for g, wg in enumerate(groups.values()))
    for g, key in enumerate(groups):
        prob += y[g] <= pulp.lpSum(x[j] for j in key)
    prob += pulp.lpSum(x.values()) == k
    prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s))
    notes = [f"MIP: {len(x)} candidate columns, {len(groups)} merged demand rows (from {len(keep)})"]
    optimal = pulp.LpStatus[prob.status] == "Optimal" and getattr(prob, "sol_status", 1) == pulp.LpSolutionOptimal
    if not optimal:
        notes.append(f"CBC stopped at the time limit ({time_limit_s:.0f} s) or without proof: status "
                     f"{pulp.LpStatus[prob.status]}; the solution is feasible, see upper_bound")
    picks = sorted(j for j, v in x.items() if v.value() is not None and v.value() > 0.5)
    return picks, optimal, notes


def maximal_covering(graph: RoadGraph, candidates: gpd.GeoDataFrame, demand: gpd.GeoDataFrame, *, k: int,
                     minutes: float = MICRO_STATION_MINUTES, existing: gpd.GeoDataFrame | None = None,
                     weight: str | None = "residents", method: str = "mip", time_limit_s: float = 60.0,
                     max_snap_m: float = 500.0) -> SitingResult:
    """Choose the best ``k`` new sites among ``candidates`` to cover the most ``demand`` weight within ``minutes``.

    The maximal covering location problem (see the module's notes): demand already within ``minutes`` of
    an ``existing`` station counts as covered and earns nothing more.

    Parameters
    ----------
    graph : RoadGraph
        The road graph (EPSG:4549), e.g. :func:`gridmap.analysis.load_road_graph`.
    candidates : geopandas.GeoDataFrame
        Candidate sites (points or polygons, any CRS), e.g. :func:`road_node_candidates` or public
        buildings.
    demand : geopandas.GeoDataFrame
        What must be reached (buildings), with the ``weight`` column.
    k : int
        The number of new sites (at least 1).
    minutes : float, default ``MICRO_STATION_MINUTES`` (3)
        The reach: 3 for micro fire stations, 5 for fire stations (GB 51080).
    existing : geopandas.GeoDataFrame, optional
        Stations already there: the demand they cover counts as covered and earns nothing.
    weight : str or None, default "residents"
        The demand's weight column (finite, non-negative); None weighs every row 1.
    method : {"mip", "greedy"}, default "mip"
        ``"mip"``: exact (CBC via PuLP); ``"greedy"``: (1 - 1/e)-approximate, with a data-dependent bound.
    time_limit_s : float, default 60
        CBC's time limit; beyond it the best solution found is returned, not proven optimal.
    max_snap_m : float, default 500
        As in :func:`gridmap.analysis.travel_times`.

    Returns
    -------
    SitingResult
        ``sites`` (in the CRS of ``candidates``), ``demand`` with ``covered_before`` /
        ``covered_after``, the totals and ``upper_bound``.

    Examples
    --------
    Two homes at the far end of a 1 km road and a station at the start; candidate C2 sits next to the
    homes, C1 next to the existing station:

    >>> import geopandas as gpd, shapely
    >>> from gridmap.analysis._toy import toy_graph
    >>> g = toy_graph()                                   # 10 m/s: 1 minute is 600 m
    >>> homes = gpd.GeoDataFrame({"residents": [30, 50]}, crs="EPSG:4549",
    ...                          geometry=[shapely.Point(900, 0), shapely.Point(950, 0)])
    >>> st = gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)], crs="EPSG:4549")
    >>> cands = gpd.GeoDataFrame({"code": ["C1", "C2"]}, crs="EPSG:4549",
    ...                          geometry=[shapely.Point(100, 0), shapely.Point(800, 0)])
    >>> r = maximal_covering(g, cands, homes, k=1, minutes=0.5, existing=st)
    >>> r.sites.code.tolist(), r.covered_before, r.covered_after
    (['C2'], 0.0, 80.0)
    """
    require(candidates, "candidates")
    require(demand, "demand", (weight,) if weight else ())
    if k < 1:
        raise InvalidInput(f"k is {k}", field="k", fix="ask for at least one new site")
    if method not in ("mip", "greedy"):
        raise InvalidInput(f"unknown method {method!r}", field="method", fix="use 'mip' or 'greedy'")
    w = demand[weight].to_numpy(dtype=float) if weight else np.ones(len(demand))
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise InvalidInput("demand weights must be finite and non-negative", field=weight or "weight",
                           fix="fill missing residents with 0")
    limit = float(minutes) * 60.0
    before = np.zeros(len(demand), dtype=bool)
    if existing is not None and len(existing):
        ex, ey = point_xy(existing, "existing")
        dx, dy = point_xy(demand, "demand")
        before = many_to_one.Targets(graph, dx, dy, max_snap_m).times(
            graph, many_to_one.origin_seeds(graph, ex, ey, max_snap_m), limit) <= limit
    rows = np.flatnonzero(~before & (w > 0))
    a = coverage_matrix(graph, candidates, demand, minutes, max_snap_m=max_snap_m, rows=rows)
    w_open = np.where(before, 0.0, w)
    notes: list[str] = []
    if method == "greedy":
        picks, bound_gain = _greedy(a, w_open, k)
        optimal = False
    elif k == 1:  # one site: the best column is the optimum, no solver needed
        picks, _ = _greedy(a, w_open, 1)
        optimal = True
    else:
        picks, optimal, notes = _mip(a, w_open, k, time_limit_s)
    order, gains = _order_by_gain(a, w_open, picks)  # presented by marginal gain, largest first
    covered_new = (a[:, order].getnnz(axis=1) > 0) if order else np.zeros(len(demand), dtype=bool)
    after = before | covered_new
    total = float(w.sum())
    cov_before, cov_after = float(w[before].sum()), float(w[after].sum())
    if optimal:
        ub = cov_after
    elif method == "greedy":
        ub = cov_before + bound_gain
    else:
        ub = cov_before + _bound_at(a, w_open, order, k)
    sites = candidates.iloc[order].copy()
    sites["gain"] = gains
    sites["cumulative"] = cov_before + np.cumsum(gains) if len(gains) else []
    sites["rank"] = np.arange(1, len(order) + 1)
    dem = demand.copy()
    dem["covered_before"] = before
    dem["covered_after"] = after
    if len(order) < k:
        notes.append(f"only {len(order)} site(s) add any coverage; the other candidates reach nothing new")
    return SitingResult(sites, dem, k, float(minutes), method, total, cov_before, cov_after, ub, optimal, notes)


def _order_by_gain(a: sp.csc_matrix, w: np.ndarray, picks: list[int]) -> tuple[list[int], list[float]]:
    """Order chosen sites by marginal gain (largest first, given those before); drop zero-gain picks."""
    a = a.tocsc()
    uncovered = np.ones(a.shape[0], dtype=bool)
    left, order, gains = list(picks), [], []
    while left:
        g = [float(w[a[:, j].indices][uncovered[a[:, j].indices]].sum()) for j in left]
        i = int(np.argmax(g))
        if g[i] <= 0:
            break
        j = left.pop(i)
        order.append(j)
        gains.append(g[i])
        uncovered[a[:, j].indices] = False
    return order, gains


def _bound_at(a: sp.csc_matrix, w: np.ndarray, chosen: list[int], k: int) -> float:
    """Bound the best gain with k sites: f(S) + the k largest marginal gains at S (submodularity)."""
    a = a.tocsc().astype(np.float64)
    uncovered = np.ones(a.shape[0], dtype=bool)
    value = 0.0
    for j in chosen:
        idx = a[:, j].indices
        value += float(w[idx][uncovered[idx]].sum())
        uncovered[idx] = False
    gains = a.T @ (w * uncovered)
    return value + float(np.sort(gains)[::-1][:k].sum())
