"""Response times of past events: report → on site, by grid, category and month, against targets.

The response time of an event is ``on_site_at - reported_at`` (what a resident waits for someone to
arrive). Events nobody reached yet (``on_site_at`` empty) are counted as ``open``, never as fast.
Targets are minutes per category; the defaults are the command room's working targets (configurable,
pass your own ``targets``): 10 minutes for fire hazards, public security and elderly-care calls,
15 minutes for everything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import geopandas as gpd
import pandas as pd

from gridmap.errors import InvalidInput

from ._frames import local_month, require

#: Minutes from report to on site, per category (``default`` for the others).
DEFAULT_TARGETS_MIN: dict[str, float] = {
    "fire_hazard": 10.0, "public_security": 10.0, "elderly_care": 10.0, "default": 15.0,
}


def response_times(events: gpd.GeoDataFrame, *, targets: Mapping[str, float] | None = None,
                   start: str = "reported_at", end: str = "on_site_at") -> gpd.GeoDataFrame:
    """Compute each event's response time, its target, whether it was met and the local month.

    The response time is ``end - start`` (on site minus reported). An event without an ``end`` time is
    ``open`` and never within target: nobody has arrived yet.

    Parameters
    ----------
    events : geopandas.GeoDataFrame
        Events with ``category`` and the ``start`` and ``end`` columns (time-zone aware), e.g.
        :func:`gridmap.analysis.load_events`.
    targets : mapping of str to float, optional
        Minutes per category, updating :data:`DEFAULT_TARGETS_MIN` (``default`` for the others).
    start : str, default "reported_at"
        The column the clock starts at.
    end : str, default "on_site_at"
        The column the clock stops at.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``events`` with ``response_min``, ``open``, ``target_min``, ``within_target`` and
        ``month`` (the first day of the local Asia/Shanghai month of ``start``).

    Examples
    --------
    >>> import pandas as pd, geopandas as gpd, shapely
    >>> t0 = pd.Timestamp("2026-03-01 08:00", tz="Asia/Shanghai")
    >>> ev = gpd.GeoDataFrame({"category": ["fire_hazard", "parking"], "reported_at": [t0, t0],
    ...                        "on_site_at": [t0 + pd.Timedelta("12min"), t0 + pd.Timedelta("12min")]},
    ...                       geometry=[shapely.Point(120.1, 30.3)] * 2, crs="EPSG:4326")
    >>> response_times(ev)[["target_min", "within_target"]].values.tolist()
    [[10.0, False], [15.0, True]]
    >>> response_times(ev, targets={"parking": 10})["within_target"].tolist()
    [False, False]
    """
    require(events, "events", ("category", start, end))
    tg = dict(DEFAULT_TARGETS_MIN)
    tg.update(targets or {})
    out = events.copy()
    t0 = pd.to_datetime(out[start])
    t1 = pd.to_datetime(out[end])
    out["response_min"] = (t1 - t0).dt.total_seconds() / 60.0
    out["open"] = t1.isna()
    out["target_min"] = out["category"].map(lambda c: tg.get(c, tg["default"])).astype(float)
    out["within_target"] = (out["response_min"] <= out["target_min"]).fillna(False).astype(bool)
    out["month"] = local_month(t0)
    return out


def response_summary(timed: pd.DataFrame, by: str | Sequence[str] = "category") -> pd.DataFrame:
    """Summarise response times per group: events, open, median and p90 minutes, share within target.

    ``share_within`` counts open events as late; ``target_min`` is the category's target (grouped by
    category) or the mean target of the group's events (their category mix).

    Parameters
    ----------
    timed : pandas.DataFrame
        :func:`response_times`' frame.
    by : str or sequence of str, default "category"
        One or more of its columns: ``category``, ``grid_code``, ``community_code``, ``month``,
        ``channel`` ...

    Returns
    -------
    pandas.DataFrame
        Per group, sorted by the groups: ``events``, ``open``, ``median_min``, ``p90_min``,
        ``target_min`` and ``share_within``.

    Examples
    --------
    >>> import pandas as pd
    >>> timed = pd.DataFrame({"category": ["parking"] * 4, "response_min": [5.0, 10.0, 20.0, None],
    ...                       "open": [False, False, False, True], "target_min": [15.0] * 4,
    ...                       "within_target": [True, True, False, False]})
    >>> s = response_summary(timed)
    >>> s[["events", "open", "median_min", "share_within"]].values.tolist()
    [[4.0, 1.0, 10.0, 0.5]]
    """
    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in ("response_min", "within_target", "open", "target_min", *keys) if c not in timed.columns]
    if missing:
        raise InvalidInput(f"timed lacks column(s) {', '.join(missing)}", field="timed",
                           fix="pass the frame response_times() returns")
    g = pd.DataFrame(timed).groupby(keys, sort=True, observed=True)
    out = pd.DataFrame({
        "events": g.size(),
        "open": g["open"].sum().astype(int),
        "median_min": g["response_min"].median(),
        "p90_min": g["response_min"].quantile(0.9),
        "target_min": g["target_min"].first() if keys == ["category"] else g["target_min"].mean(),
        "share_within": g["within_target"].mean(),
    })
    return out.reset_index()


def response_by_area(timed: pd.DataFrame, areas: gpd.GeoDataFrame, *, key: str = "grid_code") -> gpd.GeoDataFrame:
    """Join :func:`response_summary` per area to the area polygons, for maps.

    Parameters
    ----------
    timed : pandas.DataFrame
        :func:`response_times`' frame, with the ``key`` column.
    areas : geopandas.GeoDataFrame
        The area polygons, with ``code`` (e.g. ``db.layer("grids")``).
    key : str, default "grid_code"
        The column of ``timed`` naming each event's area: ``grid_code``, ``community_code`` or
        ``street_code``.

    Returns
    -------
    geopandas.GeoDataFrame
        ``areas`` with :func:`response_summary`'s columns; ``events`` is 0 (and the rest NaN) where no
        event was reported.

    Examples
    --------
    >>> import pandas as pd, geopandas as gpd, shapely
    >>> grids = gpd.GeoDataFrame({"code": ["G1", "G2"]}, crs="EPSG:4549",
    ...                          geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)])
    >>> timed = pd.DataFrame({"grid_code": ["G1", "G1"], "response_min": [5.0, 25.0], "open": [False, False],
    ...                       "target_min": [15.0, 15.0], "within_target": [True, False]})
    >>> response_by_area(timed, grids)[["code", "events", "share_within"]].values.tolist()
    [['G1', 2, 0.5], ['G2', 0, nan]]
    """
    require(areas, "areas", ("code",))
    s = response_summary(timed, key).rename(columns={key: "code"})
    out = areas.merge(s, on="code", how="left")
    out["events"] = out["events"].fillna(0).astype(int)
    return out


def worst(summary: pd.DataFrame, n: int = 10, *, min_events: int = 20) -> pd.DataFrame:
    """Pick the ``n`` groups with the lowest share within target, ignoring the small ones.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`response_summary`'s frame.
    n : int, default 10
        How many groups.
    min_events : int, default 20
        Groups with fewer events are left out (their share is noise).

    Returns
    -------
    pandas.DataFrame
        The ``n`` rows with the lowest ``share_within`` (ties: the slower ``p90_min`` first).

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"grid_code": ["G1", "G2", "G3"], "events": [40, 50, 5],
    ...                   "share_within": [0.9, 0.6, 0.1], "p90_min": [12.0, 30.0, 50.0]})
    >>> worst(s, 2).grid_code.tolist()                   # G3 has too few events to judge
    ['G2', 'G1']
    """
    s = summary[summary["events"] >= min_events]
    return s.sort_values(["share_within", "p90_min"], ascending=[True, False]).head(n)

