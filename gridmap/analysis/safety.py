"""The monthly safety index (平安指数) of a grid, community or street: a documented, reproducible formula.

The formula, its dimensions, weights and reference rates are written out in ``docs/safety_index.md``;
this module is its only implementation. In short, per area and local (Asia/Shanghai) month:

* **rate dimensions** (events per 1,000 residents per month; fewer is safer) score
  ``100 · r0 / (r0 + rate)``: 100 with no events, 50 at the reference rate ``r0``;
* **share dimensions** (a share of events handled within a time; more is better) score ``100 · share``,
  counting only events whose window had passed by ``as_of`` (later ones are not yet known);
* the **index** is the weighted mean of the dimension scores (weights sum to 1; a share dimension with
  no event due that month drops out and the others' weights are renormalised).

Rates divide by the area's registered population, so areas of different size compare fairly: double
the residents and the events and the index does not move. Communities and the street are scored from
their own summed counts and populations, never by averaging grid scores. The inputs are event
*counts* (:func:`count_events` from a frame, or :func:`gridmap.analysis.load_event_month_counts`
counted in PostGIS); the result does not depend on the order of their rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from gridmap.errors import InvalidInput

from ._frames import local_month

DAY = 86_400.0
#: Named windows (milestone column, seconds after the report) the share dimensions use.
WINDOWS: dict[str, tuple[str, float]] = {
    "resolved_24h": ("resolved_at", 1 * DAY),
    "resolved_7d": ("resolved_at", 7 * DAY),
    "closed_30d": ("closed_at", 30 * DAY),
}


@dataclass(frozen=True)
class Dimension:
    """One dimension of the safety index: what it counts, how it is scored, and its weight.

    A ``rate`` dimension counts ``categories`` events per 1,000 residents per month and scores
    ``100 r0 / (r0 + rate)`` (100 with no event, 50 at the reference rate r0); a ``share`` dimension
    takes the share of ``categories`` events done within ``window`` and scores ``100 share``.

    Parameters
    ----------
    name : str
        The dimension's column name in :func:`safety_index`'s result.
    label_zh : str
        Its label on the command centre's screens.
    kind : {"rate", "share"}
        How it is scored.
    categories : tuple of str or None
        The event categories counted; None: every category.
    weight : float
        Its weight in the index (the dimensions' weights sum to 1).
    reference : float, optional
        r0, the rate per 1,000 residents a month that scores 50 (rates only).
    window : str, optional
        A key of :data:`WINDOWS` (shares only).

    Examples
    --------
    A street that counts only fraud and the 30-day closure rate, half and half:

    >>> import pandas as pd
    >>> dims = (Dimension("fraud", "电信诈骗发案率", "rate", ("fraud",), 0.5, reference=0.5),
    ...         Dimension("closure", "事件30日办结率", "share", None, 0.5, window="closed_30d"))
    >>> m = pd.Timestamp("2026-03-01")
    >>> counts = pd.DataFrame({"code": ["A"], "month": [m], "category": ["fraud"], "events": [1],
    ...                        "done_closed_30d": [1], "due_closed_30d": [1]})
    >>> s = safety_index(counts, pd.DataFrame({"code": ["A"], "population": [2000]}), dimensions=dims)
    >>> s.fraud_score.round(1).tolist(), s.closure_score.tolist(), s["index"].round(1).tolist()
    ([50.0], [100.0], [75.0])
    """

    name: str
    label_zh: str
    kind: str
    categories: tuple[str, ...] | None
    weight: float
    reference: float | None = None  # r0 for rates
    window: str | None = None  # a key of WINDOWS for shares


#: The dimensions and weights of the index (docs/safety_index.md). Reference rates r0 are the sample
#: street's yearly mean monthly rate, rounded: a street office sets its own baseline and keeps it fixed.
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("public_security", "治安案件发生率", "rate", ("public_security",), 0.20, reference=0.8),
    Dimension("fraud", "电信诈骗发案率", "rate", ("fraud",), 0.15, reference=0.5),
    Dimension("fire_hazards", "消防隐患发现率", "rate", ("fire_hazard",), 0.10, reference=2.0),
    Dimension("food_drug", "食品药品安全事件率", "rate", ("food_drug_safety",), 0.10, reference=0.7),
    Dimension("fire_hazard_removal", "消防隐患24小时整改率", "share", ("fire_hazard",), 0.15, window="resolved_24h"),
    Dimension("dispute_resolution", "矛盾纠纷7日化解率", "share", ("neighbour_dispute", "consumer_dispute"), 0.15,
              window="resolved_7d"),
    Dimension("closure", "事件30日办结率", "share", None, 0.15, window="closed_30d"),
)

_LEVEL_COLUMN = {"grid": "grid_code", "community": "community_code", "street": "street_code"}


def count_events(events: pd.DataFrame, *, level: str = "grid", as_of: dt.datetime | None = None,
                 windows: dict[str, tuple[str, float]] | None = None) -> pd.DataFrame:
    """Count events per (area code, local month, category), with ``done_<w>`` / ``due_<w>`` per window.

    The same table :func:`gridmap.analysis.load_event_month_counts` computes in PostGIS, made here from a
    frame of events.

    Parameters
    ----------
    events : pandas.DataFrame
        Events with ``reported_at`` (time-zone aware), ``category``, the level's code column
        (``grid_code``, ``community_code`` or ``street_code``) and the windows' milestone columns;
        :func:`gridmap.analysis.load_events` (all columns) has them.
    level : {"grid", "community", "street"}, default "grid"
        The area each event is counted in; events without that code are left out.
    as_of : datetime.datetime, optional
        The time the counts are made at (aware): ``due_<w>`` counts only the events whose window had
        passed by then. None: every event is due.
    windows : dict, optional
        Name -> (milestone column, seconds); default :data:`WINDOWS`.

    Returns
    -------
    pandas.DataFrame
        ``code``, ``month`` (first day of the local month, naive), ``category``, ``events`` and, per
        window, ``done_<name>`` (milestone within the window) and ``due_<name>``.

    Examples
    --------
    >>> import pandas as pd
    >>> t0 = pd.Timestamp("2026-03-02 09:00", tz="Asia/Shanghai")
    >>> ev = pd.DataFrame({"grid_code": ["G1", "G1"], "category": ["fire_hazard", "fire_hazard"],
    ...                    "reported_at": [t0, t0], "resolved_at": [t0 + pd.Timedelta("2h"), pd.NaT],
    ...                    "closed_at": [t0 + pd.Timedelta(days=1), pd.NaT]})
    >>> c = count_events(ev)                          # one resolved within 24 h, one still open
    >>> c[["code", "events", "done_resolved_24h", "due_resolved_24h", "done_closed_30d"]].values.tolist()
    [['G1', 2, 1, 2, 1]]
    """
    if level not in _LEVEL_COLUMN:
        raise InvalidInput(f"unknown level {level!r}", field="level", fix=f"use one of {', '.join(_LEVEL_COLUMN)}")
    windows = WINDOWS if windows is None else windows
    col = _LEVEL_COLUMN[level]
    need = ["reported_at", "category", col, *{c for c, _ in windows.values()}]
    missing = [c for c in need if c not in events.columns]
    if missing:
        raise InvalidInput(f"events lack column(s) {', '.join(missing)}", field="events",
                           fix="read them with load_events() (all columns)")
    ev = events[events[col].notna()]
    rep = pd.to_datetime(ev["reported_at"])
    df = pd.DataFrame({"code": ev[col].to_numpy(), "month": local_month(rep).to_numpy(),
                       "category": ev["category"].to_numpy(), "events": 1})
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidInput(f"as_of {as_of} has no time zone", field="as_of", fix="pass an aware datetime")
    for name, (milestone, seconds) in windows.items():
        limit = rep + pd.to_timedelta(seconds, unit="s")
        t = pd.to_datetime(ev[milestone])
        df[f"done_{name}"] = (t.notna() & (t <= limit)).to_numpy().astype(np.int64)
        df[f"due_{name}"] = ((limit <= as_of) if as_of is not None else pd.Series(True, index=ev.index)
                             ).to_numpy().astype(np.int64)
    out = df.groupby(["code", "month", "category"], sort=True).sum().reset_index()
    out["events"] = out["events"].astype("int64")
    return out


def _score(counts: pd.DataFrame, population: pd.Series, dims: tuple[Dimension, ...]) -> pd.DataFrame:
    """Compute the dimension values, scores and the index per (code, month) from per-category counts."""
    idx = counts.groupby(["code", "month"], sort=True).size().index
    out = pd.DataFrame(index=idx)
    pop = population.reindex(idx.get_level_values("code")).to_numpy(dtype=float)
    out["population"] = pop
    out["events"] = counts.groupby(["code", "month"], sort=True)["events"].sum().reindex(idx).to_numpy()
    num = np.zeros(len(idx))
    den = np.zeros(len(idx))
    for d in dims:
        sel = counts if d.categories is None else counts[counts["category"].isin(d.categories)]
        g = sel.groupby(["code", "month"], sort=True)
        if d.kind == "rate":
            if d.reference is None:
                raise InvalidInput(f"dimension {d.name} is a rate without a reference rate", field="dimensions",
                                   fix="give reference=r0, the rate per 1,000 residents a month that scores 50")
            n = g["events"].sum().reindex(idx, fill_value=0).to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(pop > 0, n / (pop / 1000.0), np.nan)
            score = 100.0 * d.reference / (d.reference + value)
            out[f"{d.name}_n"] = n.astype(np.int64)
        elif d.kind == "share":
            done = g[f"done_{d.window}"].sum().reindex(idx, fill_value=0).to_numpy(dtype=float)
            due = g[f"due_{d.window}"].sum().reindex(idx, fill_value=0).to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(due > 0, np.minimum(done, due) / due, np.nan)
            score = 100.0 * value
            out[f"{d.name}_n"] = due.astype(np.int64)
        else:
            raise InvalidInput(f"dimension {d.name} has kind {d.kind!r}", field="dimensions", fix="use rate or share")
        out[d.name] = value
        out[f"{d.name}_score"] = score
        ok = np.isfinite(score)
        num += np.where(ok, d.weight * score, 0.0)
        den += np.where(ok, d.weight, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["index"] = np.where(den > 0, num / den, np.nan)
    return out


def safety_index(counts: pd.DataFrame, areas: pd.DataFrame, *, dimensions: tuple[Dimension, ...] = DIMENSIONS,
                 months: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """Score the safety index (平安指数) per area and month, with every dimension's value and score.

    Parameters
    ----------
    counts : pandas.DataFrame
        Events per (``code``, ``month``, ``category``) with ``events`` and the windows' ``done_*`` /
        ``due_*`` columns: :func:`count_events` or :func:`gridmap.analysis.load_event_month_counts`
        (with ``windows=WINDOWS``).
    areas : pandas.DataFrame or geopandas.GeoDataFrame
        The areas scored, one row each, with ``code`` and ``population`` (e.g. ``db.layer("grids")``). A
        GeoDataFrame gives a GeoDataFrame back, with each area's polygon, ready for a map.
    dimensions : tuple of Dimension, default :data:`DIMENSIONS`
        The formula's dimensions; their weights must sum to 1.
    months : pandas.DatetimeIndex, optional
        Months to score (default: every month in ``counts``); an area with no event in a month scores
        100 on the rates and its shares drop out.

    Returns
    -------
    pandas.DataFrame or geopandas.GeoDataFrame
        One row per (area, month), sorted by code and month: ``population``, ``events``, per dimension
        ``<name>`` (rate per 1,000 or share), ``<name>_score`` and ``<name>_n`` (events counted), the
        ``index`` (0-100, higher is safer), ``change`` (from the area's previous month) and ``rank``
        within the month (1 = safest).

    Examples
    --------
    Two grids, one with twice the residents and twice the events of the other, score the same:

    >>> import pandas as pd
    >>> m = pd.Timestamp("2026-03-01")
    >>> counts = pd.DataFrame({"code": ["A", "B"], "month": [m, m], "category": ["fraud", "fraud"],
    ...                        "events": [1, 2], "done_resolved_24h": [0, 0], "due_resolved_24h": [0, 0],
    ...                        "done_resolved_7d": [0, 0], "due_resolved_7d": [0, 0],
    ...                        "done_closed_30d": [1, 2], "due_closed_30d": [1, 2]})
    >>> areas = pd.DataFrame({"code": ["A", "B"], "population": [1000, 2000]})
    >>> s = safety_index(counts, areas)
    >>> s["index"].round(2).tolist(), s["fraud"].tolist()
    ([85.71, 85.71], [1.0, 1.0])
    """
    if not {"code", "population"} <= set(areas.columns):
        raise InvalidInput("areas need columns code and population", field="areas",
                           fix="pass db.layer('grids') (or communities/streets), or a frame with code and population")
    if areas["code"].duplicated().any():
        raise InvalidInput("areas has duplicate codes", field="areas", fix="one row per area (current boundaries)")
    need = {"code", "month", "category", "events"}
    for d in dimensions:
        if d.kind == "share":
            need |= {f"done_{d.window}", f"due_{d.window}"}
    missing = sorted(need - set(counts.columns))
    if missing:
        raise InvalidInput(f"counts lack column(s) {', '.join(missing)}", field="counts",
                           fix="use count_events(...) or load_event_month_counts(..., windows=WINDOWS)")
    total_w = sum(d.weight for d in dimensions)
    if not np.isclose(total_w, 1.0):
        raise InvalidInput(f"the dimension weights sum to {total_w}", field="dimensions", fix="make them sum to 1")
    codes = pd.Index(sorted(areas["code"]), name="code")
    c = counts[counts["code"].isin(codes)].copy()
    c["month"] = pd.to_datetime(c["month"])
    months = pd.DatetimeIndex(sorted(c["month"].unique()) if months is None else months, name="month")
    # every (area, month) is scored, with or without events: a quiet month is a safe month
    grid = pd.MultiIndex.from_product([codes, months], names=["code", "month"]).to_frame(index=False)
    grid["category"] = "__none__"
    grid["events"] = 0
    for col in need - {"code", "month", "category", "events"}:
        grid[col] = 0
    c = pd.concat([c[list(grid.columns)], grid], ignore_index=True)
    population = areas.set_index("code")["population"].astype(float)
    scored = _score(c, population, tuple(dimensions)).reset_index()
    scored = scored.sort_values(["code", "month"], kind="stable").reset_index(drop=True)
    prev = scored.groupby("code")["index"].shift(1)
    prev_month = scored.groupby("code")["month"].shift(1)
    gap_ok = (scored["month"].dt.to_period("M") - prev_month.dt.to_period("M")).map(
        lambda x: getattr(x, "n", None) == 1)
    scored["change"] = (scored["index"] - prev).where(gap_ok)
    scored["rank"] = scored.groupby("month")["index"].rank(ascending=False, method="min").astype("Int64")
    if isinstance(areas, gpd.GeoDataFrame):
        geo = areas[["code", areas.geometry.name]].drop_duplicates("code")
        extra = [col for col in ("name", "name_zh") if col in areas.columns]
        merged = scored.merge(areas[["code", *extra]], on="code", how="left").merge(geo, on="code", how="left")
        return gpd.GeoDataFrame(merged, geometry=areas.geometry.name, crs=areas.crs)
    return scored


def index_table(index: pd.DataFrame, *, value: str = "index") -> pd.DataFrame:
    """Pivot the index (or any column) to an areas x months table, for reading month over month.

    Parameters
    ----------
    index : pandas.DataFrame
        :func:`safety_index`'s frame.
    value : str, default "index"
        The column shown (e.g. ``"index"``, ``"rank"`` or a dimension's ``<name>_score``).

    Returns
    -------
    pandas.DataFrame
        One row per area code (sorted), one column per month.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"code": ["A", "A", "B"], "month": pd.to_datetime(["2026-03-01", "2026-04-01", "2026-03-01"]),
    ...                   "index": [80.0, 90.0, 70.0]})
    >>> t = index_table(s)
    >>> t.shape, t.loc["A"].tolist()
    ((2, 2), [80.0, 90.0])
    """
    return index.pivot_table(index="code", columns="month", values=value, aggfunc="first").sort_index()
