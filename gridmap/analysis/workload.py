"""Grid workloads: residents, households, buildings and events per grid worker (网格员), and outliers.

For each grid, each load per worker (residents, households, buildings, events a month) is divided by
the median grid's: ``load_index`` is the mean of those ratios (1.0 = a typical grid). A grid is flagged
``high`` when its ``load_index`` is at least ``high`` (default 1.5: half as much again as the median
grid) and ``low`` at most ``low`` (default 0.5); ``flag_reason`` names the measures that drive it.
Single measures disagree by design (a grid of many small houses has many buildings and few
residents), which is why the flag reads the mean. Grids without a registered worker get ``no_worker``.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from gridmap.errors import InvalidInput

from ._frames import require

MEASURES = ("residents", "households", "buildings", "events")


def grid_workload(grids: gpd.GeoDataFrame, events: pd.DataFrame | None = None, *, months: float | None = None,
                  high: float = 1.5, low: float = 0.5) -> gpd.GeoDataFrame:
    """Compute each grid's load per worker, its ratio to the median grid's, and a flag.

    Each load per worker (residents, households, buildings, events a month) is divided by the median
    grid's; ``load_index`` is the mean of those ratios (see the module's notes).

    Parameters
    ----------
    grids : geopandas.GeoDataFrame
        Grids with ``code``, ``workers``, ``residents``, ``households`` and ``buildings``
        (:func:`gridmap.analysis.load_grid_registry`).
    events : pandas.DataFrame, optional
        Events with ``grid_code`` (one row per event), or per-grid counts with ``code`` and ``events``
        (e.g. summed :func:`gridmap.analysis.load_event_month_counts`). None: events are left out.
    months : float, optional
        The span the events cover, to report events per worker per month (default: the number of
        distinct local months in ``events`` when it has ``reported_at``, else 1).
    high : float, default 1.5
        ``load_index`` at or above this flags the grid ``high``.
    low : float, default 0.5
        ``load_index`` at or below this flags the grid ``low`` (0 < low < 1 < high).

    Returns
    -------
    geopandas.GeoDataFrame
        ``grids`` (its CRS) with ``events``, ``<measure>_per_worker``, ``<measure>_ratio`` (to the
        median), ``load_index``, ``flag`` (``high`` / ``low`` / ``typical`` / ``no_worker``) and
        ``flag_reason``.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> sq = shapely.box(0, 0, 1, 1)
    >>> g = gpd.GeoDataFrame({"code": list("ABCD"), "workers": [1, 1, 1, 1],
    ...                       "residents": [1000, 1100, 900, 3000], "households": [400, 420, 380, 1200],
    ...                       "buildings": [30, 32, 28, 90]}, geometry=[sq] * 4, crs="EPSG:4549")
    >>> w = grid_workload(g)
    >>> w.flag.tolist(), w.flag_reason.iloc[3]
    (['typical', 'typical', 'typical', 'high'], 'residents 2.9× median; households 2.9× median; buildings 2.9× median')
    """
    require(grids, "grids", ("code", "workers", "residents", "households", "buildings"))
    if not 0 < low < 1 < high:
        raise InvalidInput(f"low={low}, high={high}", field="low/high", fix="use 0 < low < 1 < high, e.g. 0.5 and 1.5")
    out = grids.copy()
    n_months = 1.0
    if events is None:
        out["events"] = 0
        measures = [m for m in MEASURES if m != "events"]
    else:
        if "grid_code" in events.columns:
            per = events.groupby("grid_code").size()
            if months is None and "reported_at" in events.columns and len(events):
                from ._frames import local_month

                n_months = float(local_month(events["reported_at"]).nunique())
        elif {"code", "events"} <= set(events.columns):
            per = events.groupby("code")["events"].sum()
        else:
            raise InvalidInput("events need grid_code (one row per event) or code and events (counts)",
                               field="events", fix="pass load_events(...) or summed load_event_month_counts(...)")
        out["events"] = out["code"].map(per).fillna(0).astype(int)
        measures = list(MEASURES)
    if months is not None:
        n_months = float(months)
    workers = out["workers"].astype(float)
    staffed = workers > 0
    ratios = []
    for m in measures:
        per_worker = (out[m].astype(float) / workers).where(staffed)
        if m == "events":
            per_worker = per_worker / n_months
        out[f"{m}_per_worker"] = per_worker
        med = float(np.nanmedian(per_worker)) if staffed.any() else np.nan
        ratio = per_worker / med if med and np.isfinite(med) else per_worker * np.nan
        out[f"{m}_ratio"] = ratio
        ratios.append(ratio)
    r = pd.concat(ratios, axis=1)
    out["load_index"] = r.mean(axis=1)
    is_high = out["load_index"] >= high
    is_low = out["load_index"] <= low
    out["flag"] = np.select([~staffed, is_high, is_low], ["no_worker", "high", "low"], default="typical")
    ratio = r.to_numpy(dtype=float)
    reasons = []
    for i in range(len(out)):
        if not staffed.iloc[i]:
            reasons.append("no grid worker registered")
            continue
        parts = [f"{m} {ratio[i, k]:.1f}× median" for k, m in enumerate(measures)
                 if (is_high.iloc[i] and ratio[i, k] >= high) or (is_low.iloc[i] and ratio[i, k] <= low)]
        reasons.append("; ".join(parts))
    out["flag_reason"] = reasons
    return out


def workload_summary(workload: pd.DataFrame, *, high: float = 1.5) -> pd.DataFrame:
    """Summarise each per-worker measure: median, spread, and the grids at least ``high`` times the median.

    Parameters
    ----------
    workload : pandas.DataFrame
        :func:`grid_workload`'s frame.
    high : float, default 1.5
        ``grids_high`` counts the grids whose ratio to the median is at least this.

    Returns
    -------
    pandas.DataFrame
        One row per measure present: ``measure``, ``median``, ``p10``, ``p90``, ``max`` and
        ``grids_high``.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame({"code": list("ABC"), "workers": [1, 2, 1], "residents": [1000, 2000, 3000],
    ...                       "households": [400, 800, 1200], "buildings": [30, 60, 90]},
    ...                      geometry=[shapely.box(0, 0, 1, 1)] * 3, crs="EPSG:4549")
    >>> s = workload_summary(grid_workload(g))
    >>> s[["measure", "median", "grids_high"]].values.tolist()[0]
    ['residents', 1000.0, 1]
    """
    rows = []
    for m in MEASURES:
        col = f"{m}_per_worker"
        if col not in workload:
            continue
        s = workload[col].dropna()
        rows.append({"measure": m, "median": s.median(), "p10": s.quantile(0.1), "p90": s.quantile(0.9),
                     "max": s.max(), "grids_high": int((workload[f"{m}_ratio"] >= high).sum())})
    out = pd.DataFrame(rows)
    return out
