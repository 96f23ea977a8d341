"""What the simulated street does, in one place: the behaviour parameters and the street's profile.

:class:`Behaviour` holds every figure the simulation assumes about people (shares, durations, speeds, shifts).
Its defaults are drawn from the sample street's year of events where that year records them (answer delays,
time on site by category, review before closing, events per day), and are stated assumptions where it does
not (declines, GPS noise, patrol speed, shifts); ``docs/simulation.md`` tabulates them with their sources, and
``tests/simulation/test_model.py`` checks the drawn ones against the year itself (:func:`measure_history`).

:class:`StreetProfile` is the year itself, aggregated: arrival rates per channel and category, their hour-of-day,
weekday and month profiles, and the places where each kind of event happened (the arrivals resample them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from gridmap.core.vocabulary import BASE_CHANNELS, LOCAL_TZ

CHANNELS = BASE_CHANNELS  # residents report through the five original channels (no walk-ins, no director line)
#: the median time on site (on site -> resolved) of each category in the sample year, minutes
SAMPLE_ON_SITE_MEDIAN_MIN = {
    "fire_hazard": 25.0, "public_security": 40.0, "fraud": 90.0, "neighbour_dispute": 90.0,
    "consumer_dispute": 120.0, "food_drug_safety": 180.0, "environment": 240.0, "parking": 15.0,
    "road_facility": 1440.0, "elderly_care": 60.0,
}


@dataclass(frozen=True)
class Shift:
    """When a kind of team is on duty: from ``start_h`` to ``end_h`` (local hours; end < start runs past
    midnight; (0, 24): always), on a share ``days_share`` of days (volunteers come some days)."""

    start_h: float
    end_h: float
    days_share: float = 1.0


def _shifts() -> dict[str, Shift]:
    return {"grid_patrol": Shift(8.0, 20.0), "volunteer": Shift(9.0, 17.0, 0.6), "mediation": Shift(8.5, 17.5),
            "micro_fire_crew": Shift(0.0, 24.0), "auxiliary_police": Shift(0.0, 24.0)}


@dataclass(frozen=True)
class Behaviour:
    """Every behaviour figure of the simulation. Sources: "sample" = measured on the sample street's year of
    events (see :func:`measure_history`); "assumed" = no record holds it (the reason is given beside the figure)."""

    # -- positions ---------------------------------------------------------------------------------------
    #: a fix from every on-duty team's phone every this many seconds (the issue's figure)
    fix_every_s: float = 30.0
    #: GPS error per axis, metres, 1 sigma (assumed: a phone in a built-up street); the phone reports
    #: accuracy_m = 2 sigma, and drops fixes beyond ``gps_clip_sigmas`` (its own filter)
    gps_sigma_m: float = 5.0
    gps_clip_sigmas: float = 3.0
    # -- answering an offer --------------------------------------------------------------------------------
    #: median seconds from the offer to the answer (sample: dispatched -> accepted, 0.98-1.02 min on the
    #: hotline, chat, QR and alarm channels) and the log-normal sigma (sample generator: 0.6)
    answer_median_s: float = 60.0
    answer_sigma: float = 0.6
    #: shares of offers declined and never answered (assumed: the sample year records no declines); an answer
    #: later than the offer's 120 s is refused by the API, so slow answers become time-outs too
    decline_share: float = 0.05
    no_answer_share: float = 0.03
    # -- on site ------------------------------------------------------------------------------------------
    #: median minutes on site by category (sample: on site -> resolved), log-normal sigma (sample: 0.9), and
    #: the share of cases that drag on ``slow_factor`` times longer (sample: 6 %, x25)
    on_site_median_min: dict[str, float] = field(default_factory=lambda: dict(SAMPLE_ON_SITE_MEDIAN_MIN))
    on_site_sigma: float = 0.9
    slow_share: float = 0.06
    slow_factor: float = 25.0
    #: a case that needs longer than this on site is handed up one rung instead, after ``hand_up_after_min``
    #: (assumed: a team does not hold a street for hours; the next rung settles it), plus ``hand_up_share`` of
    #: all cases handed up for other reasons (assumed)
    on_site_cap_min: float = 180.0
    hand_up_after_min: float = 30.0
    hand_up_share: float = 0.03
    #: the rung a case was handed or escalated up to settles it in this share of its time limit (median,
    #: log-normal sigma 0.5; assumed)
    higher_rung_share_of_limit: float = 0.5
    #: an escalated event nobody holds is dispatched again by the command room after this many minutes
    #: (assumed: the sweep offers only first-rung events to teams)
    redispatch_escalated_min: float = 10.0
    #: median hours from resolved to closed (sample: review and call-back, 3.5 days; log-normal sigma 0.8)
    review_median_h: float = 84.0
    review_sigma: float = 0.8
    # -- events ------------------------------------------------------------------------------------------
    #: multiplies the sample year's arrival rates (1: the year's own)
    arrival_rate_factor: float = 1.0
    #: share of events reported a second time (another channel, another resident) within ``duplicate_within_min``
    #: and ``duplicate_radius_m`` (assumed 4 %: the sample year has 0.4 %, coincidences only, since its generator
    #: draws no repeated reports, while a hotline receives several calls about one noise or one blocked lane)
    duplicate_share: float = 0.04
    duplicate_within_min: float = 25.0
    duplicate_radius_m: float = 60.0
    # -- patrols and shifts ------------------------------------------------------------------------------
    #: patrols ride at this share of the road's speed (assumed: e-bikes and on foot, ~15 km/h on a 40 km/h street)
    patrol_speed_factor: float = 0.35
    #: at a junction a patrol stops this often, for a log-normal median of ``patrol_pause_median_s`` (assumed)
    patrol_pause_share: float = 0.2
    patrol_pause_median_s: float = 120.0
    #: which kinds of team patrol their grids; the others wait at their base (fire crews at their station)
    patrolling_kinds: tuple[str, ...] = ("grid_patrol", "volunteer", "auxiliary_police")
    shifts: dict[str, Shift] = field(default_factory=_shifts)
    #: a share of the grid patrols covers the night (20:00-08:00) in turn (assumed)
    night_cover_share: float = 0.25
    #: shift starts and ends vary by this many minutes (1 sigma; assumed)
    shift_jitter_min: float = 10.0
    # -- the command room and the run ---------------------------------------------------------------------
    #: fast mode sweeps (offer time-outs, waiting events, escalation) as often as the API does by default
    sweep_every_s: float = 30.0
    #: live mode reads the open events this often, to see what the API's own sweep did
    discover_every_s: float = 10.0

    def table(self) -> list[tuple[str, object]]:
        """(name, value) of every parameter, in order (for docs and the run log)."""
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, dict):
                v = {k: (vars(x) if isinstance(x, Shift) else x) for k, x in v.items()}
            out.append((f.name, v))
        return out

    def shift_for(self, kind: str) -> Shift:
        return self.shifts.get(kind, Shift(8.0, 20.0))


# -- the street's profile ---------------------------------------------------------------------------------------
@dataclass
class StreetProfile:
    """The year of events, aggregated for the arrivals (see :mod:`gridmap.simulation.arrivals`)."""

    #: events per day, by (channel, category), over the year
    daily_rate: dict[tuple[str, str], float]
    #: hour-of-day profile by channel (24 weights summing to 1)
    hourly: dict[str, np.ndarray]
    #: weekday factor by category (7 values, Monday first, mean 1)
    weekday: dict[str, np.ndarray]
    #: month factor by category (12 values, January first, mean 1)
    monthly: dict[str, np.ndarray]
    #: the year's events by (channel, category): grid, lon, lat, building code, severity, title (resampled)
    places: dict[tuple[str, str], pd.DataFrame]
    days: float

    @classmethod
    def from_history(cls, history: pd.DataFrame) -> StreetProfile:
        """Aggregate a year of events (:func:`gridmap.storage.events.event_history`)."""
        if history.empty:
            raise ValueError("no events to draw the arrivals from: load the sample street (its year of events)")
        h = history.copy()
        t = pd.to_datetime(h["reported_at"], utc=True).dt.tz_convert(LOCAL_TZ)
        h["hour"], h["weekday"], h["month"] = t.dt.hour, t.dt.day_of_week, t.dt.month - 1
        days = max((t.max() - t.min()).total_seconds() / 86400.0, 1.0)
        sizes = h.groupby(["channel", "category"]).size()
        daily = {(str(ch), str(cat)): float(n) / days for (ch, cat), n in zip(sizes.index, sizes.to_numpy(), strict=True)}
        hourly = {}
        for ch, g in h.groupby("channel"):
            w = np.bincount(g["hour"], minlength=24).astype(float) + 0.05  # no hour impossible
            hourly[str(ch)] = w / w.sum()
        weekday, monthly = {}, {}
        n_weekdays = np.bincount(pd.date_range(t.min().normalize(), t.max().normalize(), freq="D").day_of_week,
                                 minlength=7).astype(float)
        n_months = np.bincount(pd.date_range(t.min().normalize(), t.max().normalize(), freq="D").month - 1,
                               minlength=12).astype(float)
        for cat, g in h.groupby("category"):
            per = np.bincount(g["weekday"], minlength=7) / np.maximum(n_weekdays, 1)
            weekday[str(cat)] = per / per.mean() if per.mean() > 0 else np.ones(7)
            per_m = np.bincount(g["month"], minlength=12) / np.maximum(n_months, 1)
            seen = n_months > 0
            monthly[str(cat)] = np.where(seen, per_m / per_m[seen].mean(), 1.0) if per_m[seen].mean() > 0 else np.ones(12)
        places = {(str(ch), str(cat)): g[["grid_code", "lon", "lat", "building_code", "severity", "title"]]
                  .reset_index(drop=True) for (ch, cat), g in h.groupby(["channel", "category"])}
        return cls(daily, hourly, weekday, monthly, places, days)

    def events_per_day(self) -> float:
        return float(sum(self.daily_rate.values()))


def measure_history(history: pd.DataFrame) -> dict[str, float]:
    """The behaviour figures a year of events records, as :class:`Behaviour` states them (its drawn defaults)."""
    h = history
    mins = {k: (pd.to_datetime(h[b], utc=True) - pd.to_datetime(h[a], utc=True)).dt.total_seconds() / 60.0
            for k, a, b in (("answer", "dispatched_at", "accepted_at"), ("on_site", "on_site_at", "resolved_at"),
                            ("review", "resolved_at", "closed_at"))}
    not_patrol = h["channel"] != "patrol"
    out: dict[str, float] = {
        "answer_median_s": float(mins["answer"][not_patrol].median() * 60.0),
        "review_median_h": float(mins["review"].median() / 60.0),
        "events_per_day": float(len(h) / max((pd.to_datetime(h["reported_at"]).max()
                                               - pd.to_datetime(h["reported_at"]).min()).total_seconds() / 86400, 1)),
    }
    for cat, v in mins["on_site"].groupby(h["category"]):
        out[f"on_site_median_min.{cat}"] = float(v.median())
    ln = np.log(mins["answer"][not_patrol].dropna().clip(lower=1e-3))
    out["answer_sigma"] = float(ln.std())
    return out


def local_day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
