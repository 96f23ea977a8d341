"""The dispatch-policy study: the same seeded days, five ways of choosing the responder.

For each day and each :class:`~gridmap.services.dispatch.DispatchRule`, a fresh simulation database is copied
from the template with that rule in its mark, and the day is played in fast mode with the same seed: the same
reports at the same places and times, the same shifts, and the same answer and time on site whenever the same
team is offered the same event (decisions are drawn from streams keyed by event and team). What differs is who
is sent, and everything that follows from it. Each run is then measured from the database like any other data
(response times from the events' milestones, declines and time-outs from the assignments) and from the run log
(distance driven, jobs per team):

* report -> on site: median, 90th percentile, the share within the first rung's time limit and within 15 min
  (an event nobody reached counts as late, never as fast);
* the mean road ETA of the first responder offered (what the rule promised);
* distance driven to events; jobs per team (Gini over the teams on duty that day);
* declines and offers that timed out; resolution and closure rates at the end of the run.

Over several days the figures are given two ways: pooled (:meth:`StudyResult.table`: every event of every day
together) and day by day (:meth:`StudyResult.intervals`): each day is one observation of each rule, and because
every rule plays the same days, the difference of a rule from (a) is paired by day. The interval is Student's t
over the days (:func:`paired_by_day`): the days are the independent units (events of one day share its teams
and its load), so a bootstrap over events would be too narrow, and one over three to seven days has too few
distinct resamples to mean anything.

The result (JSON) is what ``notebooks/05_dispatch_policy_study.ipynb`` presents and docs/benchmarks.md quotes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy.orm import Session

from gridmap.config import Settings
from gridmap.core.vocabulary import LOCAL_TZ
from gridmap.services.dispatch import DispatchRule
from gridmap.simulation.model import Behaviour
from gridmap.simulation.run import DEFAULT_DAY, run_fast
from gridmap.simulation.runlog import read_log
from gridmap.simulation.world import db_url
from gridmap.storage import escalation as escalation_sql
from gridmap.storage import events as events_sql
from gridmap.storage.db import make_engine

#: the issue's letters for the rules
LETTERS = {DispatchRule.ROAD_ETA: "a", DispatchRule.ROAD_ETA_NO_TIE: "b", DispatchRule.STRAIGHT_LINE: "c",
           DispatchRule.STRAIGHT_LINE_THEN_ROAD: "d", DispatchRule.OWN_GRID: "e"}
LABELS = {DispatchRule.ROAD_ETA: "road ETA + tie window (gridmap today)",
          DispatchRule.ROAD_ETA_NO_TIE: "road ETA, no tie window",
          DispatchRule.STRAIGHT_LINE: "straight-line nearest (Resgrid ClosestUnit, TicketsCAD)",
          DispatchRule.STRAIGHT_LINE_THEN_ROAD: "straight-line top 5 by road ETA (Resgrid UseRoutedEta)",
          DispatchRule.OWN_GRID: "the event's own grid team only"}
#: the committed result the notebook reads (made by `gridmap simulate study`)
RESULT_FILE = Path(__file__).resolve().parents[2] / "data" / "simulation" / "dispatch_policy_study.json"
WITHIN_MIN = 15.0
#: the per-run figures compared day by day (:meth:`StudyResult.intervals`), with what they measure
DAY_METRICS = {"median_min": "report → on site, median (min)", "p90_min": "report → on site, 90th percentile (min)",
               "within_rung": "share on site within the first rung's limit", "within_15min": "share on site within 15 min",
               "first_eta_min": "road ETA the first offer promised (min)", "driven_km": "km driven to events",
               "jobs_gini": "jobs per team, Gini", "declines": "declined offers", "timeouts": "offers timed out",
               "unreached": "events nobody reached", "resolution_rate": "share resolved at the end of the run"}
BASELINE = DispatchRule.ROAD_ETA.value


@dataclass
class PolicyRun:
    rule: str
    day: str
    seed: int
    metrics: dict[str, Any]  # figures, and the events' response times (a list) under "_response_min"
    digest: str
    wall_s: float


@dataclass
class StudyResult:
    made_at: str
    machine: str
    seed: int
    days: list[str]
    runs: list[PolicyRun] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per rule: the metrics pooled over the days (counts summed, rates and times from all events)."""
        rows = []
        for rule in DispatchRule:
            runs = [r for r in self.runs if r.rule == rule.value]
            if not runs:
                continue
            m = pd.DataFrame([r.metrics for r in runs])
            n = m["events"].sum()
            resp = np.concatenate([np.asarray(r.metrics["_response_min"], dtype=float) for r in runs])
            within = sum(r.metrics["within_rung"] * r.metrics["events"] for r in runs) / n if n else math.nan
            rows.append({
                "rule": f"({LETTERS[rule]}) {rule.value}", "label": LABELS[rule], "events": int(n),
                "median_min": _pct(resp, 50), "p90_min": _pct(resp, 90),
                "within_rung": within, "within_15min": float(np.mean(resp <= WITHIN_MIN)) if len(resp) else math.nan,
                "first_eta_min": float(np.nanmean(m["first_eta_min"])),
                "driven_km": float(m["driven_km"].sum()), "km_per_job": float(m["driven_km"].sum() / max(m["jobs"].sum(), 1)),
                "jobs_gini": float(np.mean(m["jobs_gini"])), "max_jobs": int(m["max_jobs"].max()),
                "declines": int(m["declines"].sum()), "timeouts": int(m["timeouts"].sum()),
                "resolution_rate": float((m["resolution_rate"] * m["events"]).sum() / n) if n else math.nan,
                "closure_rate": float((m["closure_rate"] * m["events"]).sum() / n) if n else math.nan,
            })
        return pd.DataFrame(rows)

    def per_day(self, metric: str) -> pd.DataFrame:
        """One metric, one row per day and one column per rule (the rules' order; a missing run is NaN)."""
        if metric not in DAY_METRICS:
            raise KeyError(f"{metric!r} is not a day metric; use one of {', '.join(DAY_METRICS)}")
        frame = pd.DataFrame([{"day": r.day, "rule": r.rule, "value": _number(r.metrics.get(metric))}
                              for r in self.runs], columns=["day", "rule", "value"])
        wide = frame.pivot(index="day", columns="rule", values="value")
        return wide.reindex(columns=[r.value for r in DispatchRule if r.value in wide.columns]).sort_index()

    def intervals(self, metrics: list[str] | None = None, *, level: float = 0.95) -> pd.DataFrame:
        """Per rule and metric: the mean over the days of the day's figure with its t interval, and the difference
        from (a) paired by day with its interval (see :func:`paired_by_day`). Only days that every rule played
        count, so that the pairs are complete."""
        out = []
        for metric in metrics or list(DAY_METRICS):
            wide = self.per_day(metric)
            complete = wide[wide.columns].notna().all(axis=1)
            table = paired_by_day(wide[complete], baseline=BASELINE, level=level)
            out.append(table.assign(metric=metric))
        cols = ["metric", "rule", "days", "mean", "lo", "hi", "diff", "diff_lo", "diff_hi", "worse_days", "better_days"]
        return pd.concat(out, ignore_index=True)[cols]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    @classmethod
    def combine(cls, parts: list[StudyResult]) -> StudyResult:
        """Studies of other days (played apart, e.g. one day per process) as one: their runs together, days in
        order. They must share the seed, and no (day, rule) may be played twice."""
        if not parts:
            raise ValueError("nothing to combine")
        if len({p.seed for p in parts}) != 1:
            raise ValueError(f"the studies have different seeds {sorted({p.seed for p in parts})}: the days would "
                             f"not be the same seeded days")
        runs = sorted((r for p in parts for r in p.runs), key=lambda r: (r.day, list(LETTERS).index(DispatchRule(r.rule))))
        twice = [k for k, n in Counter((r.day, r.rule) for r in runs).items() if n > 1]
        if twice:
            raise ValueError(f"(day, rule) played more than once: {twice}")
        return cls(max(p.made_at for p in parts), parts[0].machine, parts[0].seed,
                   sorted({d for p in parts for d in p.days}), runs)

    @classmethod
    def from_json(cls, text: str) -> StudyResult:
        d = json.loads(text)
        return cls(d["made_at"], d["machine"], d["seed"], d["days"], [PolicyRun(**r) for r in d["runs"]])


def load_result(path: Path = RESULT_FILE) -> StudyResult:
    """The committed study (``gridmap simulate study`` wrote it)."""
    return StudyResult.from_json(path.read_text(encoding="utf-8"))


def _number(v: Any) -> float:
    """A metric as a float (None, a missing figure, as NaN; ``inf`` stays: nobody reached enough events)."""
    return math.nan if v is None else float(v)


def t_interval(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``x`` and its two-sided Student-t interval at ``level``: mean ± t(level, n-1)·s/√n.

    Fewer than two values give no interval (NaN bounds); a non-finite value (an ``inf`` percentile: that day
    too many events were never reached) gives the mean ``inf`` and no interval."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    if not np.all(np.isfinite(x)):
        return float(np.mean(x)), math.nan, math.nan
    mean = float(np.mean(x))
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * np.std(x, ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def paired_by_day(wide: pd.DataFrame, *, baseline: str, level: float = 0.95) -> pd.DataFrame:
    """Day-by-day figures of each rule against ``baseline``, paired by day.

    Parameters
    ----------
    wide : DataFrame
        One metric: a row per day, a column per rule (every rule played every row's day).
    baseline : str
        The column the others are compared with (the study's (a), ``road_eta``).
    level : float
        Confidence level of the intervals.

    Returns
    -------
    DataFrame
        A row per rule: ``days``; ``mean``, ``lo``, ``hi`` (the mean of the day's figures and its t interval);
        ``diff``, ``diff_lo``, ``diff_hi`` (the mean of rule − baseline over the days, and its t interval:
        an interval that holds 0 means the days cannot tell the rule from the baseline); ``worse_days`` and
        ``better_days`` (days on which the rule's figure was above, below the baseline's).

    Examples
    --------
    >>> w = pd.DataFrame({"a": [1.0, 2.0, 3.0], "c": [2.0, 4.0, 3.0]}, index=["d1", "d2", "d3"])
    >>> r = paired_by_day(w, baseline="a").set_index("rule")
    >>> float(r.loc["c", "diff"]), int(r.loc["c", "worse_days"]), int(r.loc["c", "better_days"])
    (1.0, 2, 0)
    """
    if baseline not in wide.columns:
        raise KeyError(f"the baseline {baseline!r} is not among the rules {list(wide.columns)}")
    base = wide[baseline].to_numpy(dtype=float)
    rows = []
    for rule in wide.columns:
        v = wide[rule].to_numpy(dtype=float)
        mean, lo, hi = t_interval(v, level)
        with np.errstate(invalid="ignore"):  # inf - inf on a day when neither reached enough events
            d = v - base
        diff, dlo, dhi = t_interval(d, level) if rule != baseline else (0.0, 0.0, 0.0)
        rows.append({"rule": rule, "days": len(v), "mean": mean, "lo": lo, "hi": hi, "diff": diff, "diff_lo": dlo,
                     "diff_hi": dhi, "worse_days": int(np.sum(v > base)), "better_days": int(np.sum(v < base))})
    return pd.DataFrame(rows)


def _pct(v: np.ndarray, q: float) -> float:
    """A percentile where an event nobody reached (inf) counts as late."""
    if len(v) == 0:
        return math.nan
    p = float(np.percentile(v, q, method="inverted_cdf"))
    return p


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative counts (0: every team the same; 1: one team does everything)."""
    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum()))


def measure(settings: Settings, database: str, start: dt.datetime, end: dt.datetime, log: list[dict]) -> dict:
    """The study's metrics of one run, from its database and its log."""
    engine = make_engine(db_url(settings, database), pool_size=1, max_overflow=1)
    try:
        with Session(engine) as session, session.begin():
            conn = session.connection()
            ev = events_sql.run_outcome(conn, start)
            limits = escalation_sql.first_rungs(conn)
    finally:
        engine.dispose()
    ev = ev[(ev["reported_at"] < end) & ev["duplicate_of"].isna()] if len(ev) else ev
    n = len(ev)
    resp = ((pd.to_datetime(ev["on_site_at"], utc=True) - pd.to_datetime(ev["reported_at"], utc=True))
            .dt.total_seconds() / 60.0).to_numpy(dtype=float) if n else np.array([])
    resp = np.where(np.isnan(resp), np.inf, resp)
    limit = ev["category"].map(lambda c: limits.get(c, (math.inf, ""))[0]).to_numpy(dtype=float) if n else np.array([])
    jobs: Counter[str] = Counter()
    on_duty: set[str] = set()
    driven_m = 0.0
    first_eta = []
    for r in log:
        if r["kind"] == "drive":
            jobs[r["team"]] += 1
            driven_m += r["distance_m"]
        elif r["kind"] == "on_duty":
            on_duty |= set(r["teams"])
        elif r["kind"] == "duty" and r["status"] == "available" and r["done"]:
            on_duty.add(r["team"])
        elif r["kind"] == "report" and r.get("eta_s") is not None and r.get("duplicate_of") is None:
            first_eta.append(r["eta_s"] / 60.0)
    counts = np.array([jobs.get(t, 0) for t in sorted(on_duty | set(jobs))])
    status = ev["status"] if n else pd.Series(dtype=str)
    return {
        "events": n, "median_min": _pct(resp, 50), "p90_min": _pct(resp, 90),
        "within_rung": float(np.mean(resp <= limit)) if n else None,
        "within_15min": float(np.mean(resp <= WITHIN_MIN)) if n else None,
        "unreached": int(np.isinf(resp).sum()),
        "first_eta_min": float(np.mean(first_eta)) if first_eta else None,
        "driven_km": driven_m / 1000.0, "jobs": int(counts.sum()), "jobs_gini": gini(counts),
        "max_jobs": int(counts.max()) if len(counts) else 0, "teams_on_duty": len(counts),
        "declines": int(ev["declines"].sum()) if n else 0, "timeouts": int(ev["timeouts"].sum()) if n else 0,
        "resolution_rate": float(status.isin(["resolved", "closed"]).mean()) if n else None,
        "closure_rate": float((status == "closed").mean()) if n else None,
        "_response_min": [round(float(v), 3) if math.isfinite(v) else math.inf for v in resp],
    }


def run_study(settings: Settings, *, days: list[dt.date] | None = None, seed: int = 1,
              rules: list[DispatchRule] | None = None, runs_dir: Path | None = None, hours: float | None = None,
              behaviour: Behaviour | None = None, say: Callable[[str], None] = lambda m: None,
              on_run: Callable[[StudyResult], object] | None = None) -> StudyResult:
    """Play each day under each rule; returns the metrics of every run (the caller writes them). ``on_run`` is
    called with the result so far after each run (the CLI writes it, so that an interrupted study keeps the days
    it finished)."""
    days = days or [DEFAULT_DAY]
    rules = rules or list(DispatchRule)
    runs_dir = runs_dir or Path(settings.data_dir) / "simulation-runs"
    result = StudyResult(dt.datetime.now(LOCAL_TZ).isoformat(timespec="seconds"),
                         f"{platform.node()} ({platform.machine()}, {_cores()} cores)", seed,
                         [d.isoformat() for d in days])
    for day in days:
        start = dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
        end = start + (dt.timedelta(hours=hours) if hours else dt.timedelta(days=1))
        for rule in rules:
            log_path = runs_dir / f"{day.isoformat()}_{rule.value}_seed{seed}.jsonl.gz"
            t0 = time.perf_counter()
            say(f"{day} ({LETTERS[rule]}) {rule.value}: playing the day ...")
            res = run_fast(settings, day=day, seed=seed, rule=rule.value, database=f"{settings.db_name}_sim_{rule.value}",
                           log_path=log_path, log_fixes=False, behaviour=behaviour, hours=hours)
            metrics = measure(settings, res.database, start, end, read_log(log_path))
            wall = time.perf_counter() - t0
            result.runs.append(PolicyRun(rule.value, day.isoformat(), seed, metrics, res.summary.digest, round(wall, 1)))
            say(f"  {metrics['events']} events, median {metrics['median_min']:.1f} min, p90 {metrics['p90_min']:.1f} "
                f"min, {wall:.0f} s")
            if on_run is not None:
                on_run(result)
    return result


def _cores() -> int:
    import os

    return os.cpu_count() or 0
