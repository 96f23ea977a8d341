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
    """Per event: ``response_min``, its ``target_min``, ``within_target`` and the local ``month``.

    ``within_target`` is False for events still without an ``end`` time (``open`` is True for those).

    Examples
    --------
    >>> import pandas as pd, geopandas as gpd, shapely
    >>> t0 = pd.Timestamp("2026-03-01 08:00", tz="Asia/Shanghai")
    >>> ev = gpd.GeoDataFrame({"category": ["fire_hazard", "parking"], "reported_at": [t0, t0],
    ...                        "on_site_at": [t0 + pd.Timedelta("12min"), t0 + pd.Timedelta("12min")]},
    ...                       geometry=[shapely.Point(120.1, 30.3)] * 2, crs="EPSG:4326")
    >>> response_times(ev)[["target_min", "within_target"]].values.tolist()
    [[10.0, False], [15.0, True]]
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
    """Per group: events, open, median / p90 response minutes and the share within target.

    ``timed`` comes from :func:`response_times`; ``by`` is one or more of its columns (``category``,
    ``grid_code``, ``community_code``, ``month``, ``channel`` ...). ``share_within`` counts open events
    as late; ``target_min`` is the category's target (grouped by category) or the mean target of the
    group's events (their category mix). Rows sorted by the groups.
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
    """:func:`response_summary` per area joined to the area polygons (``areas.code``), for maps."""
    require(areas, "areas", ("code",))
    s = response_summary(timed, key).rename(columns={key: "code"})
    out = areas.merge(s, on="code", how="left")
    out["events"] = out["events"].fillna(0).astype(int)
    return out


def worst(summary: pd.DataFrame, n: int = 10, *, min_events: int = 20) -> pd.DataFrame:
    """The ``n`` groups with the lowest share within target (ties: slower p90 first), ignoring groups
    with fewer than ``min_events`` events (their share is noise)."""
    s = summary[summary["events"] >= min_events]
    return s.sort_values(["share_within", "p90_min"], ascending=[True, False]).head(n)

