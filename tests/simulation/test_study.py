"""The policy study's arithmetic over several days, on small made-up inputs with values worked out by hand: the
t interval of the day's figures, the difference from (a) paired by day, complete days only, and combining
studies played apart. (Playing the study itself takes minutes a rule-day: `gridmap simulate study`.)"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gridmap.simulation.study import PolicyRun, StudyResult, paired_by_day, t_interval

T_975_DF2 = 4.302652729749462  # Student's t, two-sided 95 %, 2 degrees of freedom (tables: 4.303)
T_975_DF1 = 12.706204736174694  # ... 1 degree of freedom (tables: 12.706)


def test_t_interval_of_three_days():
    mean, lo, hi = t_interval(np.array([2.0, 4.0, 3.0]))  # mean 3, s = 1
    half = T_975_DF2 / math.sqrt(3)
    assert mean == 3.0 and lo == pytest.approx(3.0 - half, rel=1e-12) and hi == pytest.approx(3.0 + half, rel=1e-12)
    # another level: 90 % is narrower
    _m, lo90, hi90 = t_interval(np.array([2.0, 4.0, 3.0]), level=0.90)
    assert lo < lo90 < 3.0 < hi90 < hi


def test_t_interval_without_enough_days_or_with_a_day_nobody_reached():
    assert all(math.isnan(v) for v in t_interval(np.array([])))  # nothing
    m, lo, hi = t_interval(np.array([5.0]))
    assert m == 5.0 and math.isnan(lo) and math.isnan(hi)  # one day: no interval
    m, lo, hi = t_interval(np.array([5.0, math.inf, 6.0]))
    assert m == math.inf and math.isnan(lo) and math.isnan(hi)  # a p90 of "never" on one day


def test_paired_by_day_differences_from_the_baseline():
    wide = pd.DataFrame({"road_eta": [1.0, 2.0, 3.0], "straight_line": [2.0, 4.0, 3.0],
                         "own_grid": [4.0, 6.0, 8.0]}, index=["2026-11-02", "2026-11-03", "2026-11-04"])
    r = paired_by_day(wide, baseline="road_eta").set_index("rule")
    assert list(r.index) == ["road_eta", "straight_line", "own_grid"] and (r["days"] == 3).all()
    half = T_975_DF2 / math.sqrt(3)
    # the baseline: its own figures, no difference from itself
    a = r.loc["road_eta"]
    assert (a["mean"], a["diff"], a["diff_lo"], a["diff_hi"]) == (2.0, 0.0, 0.0, 0.0)
    assert a["lo"] == pytest.approx(2.0 - half) and (a["worse_days"], a["better_days"]) == (0, 0)
    # straight-line: day by day +1, +2, 0 -> mean 1, s = 1: the interval holds 0 (the days cannot tell them apart)
    c = r.loc["straight_line"]
    assert c["mean"] == 3.0 and c["diff"] == 1.0
    assert c["diff_lo"] == pytest.approx(1.0 - half) and c["diff_hi"] == pytest.approx(1.0 + half)
    assert c["diff_lo"] < 0 < c["diff_hi"] and (c["worse_days"], c["better_days"]) == (2, 0)
    # own grid: +3, +4, +5 -> mean 4, s = 1, every day worse; paired, the interval excludes 0 although the
    # rules' own intervals (over days that differ a lot) overlap
    e = r.loc["own_grid"]
    assert e["diff"] == 4.0 and e["diff_lo"] == pytest.approx(4.0 - half) and e["diff_lo"] > 0
    assert e["lo"] < a["hi"] and (e["worse_days"], e["better_days"]) == (3, 0)


def test_paired_by_day_two_days_and_a_missing_baseline():
    wide = pd.DataFrame({"road_eta": [10.0, 20.0], "straight_line": [11.0, 23.0]})
    c = paired_by_day(wide, baseline="road_eta").set_index("rule").loc["straight_line"]
    # differences 1 and 3: mean 2, s = sqrt(2), half = t(1) * sqrt(2) / sqrt(2)
    assert c["diff"] == 2.0 and c["diff_hi"] == pytest.approx(2.0 + T_975_DF1)
    with pytest.raises(KeyError, match="baseline"):
        paired_by_day(wide, baseline="own_grid")


def _run(day: str, rule: str, median: float | None, seed: int = 1) -> PolicyRun:
    return PolicyRun(rule, day, seed, {"events": 10, "median_min": median, "_response_min": []}, "digest", 1.0)


def test_intervals_count_only_the_days_every_rule_played():
    runs = [_run("2026-11-02", "road_eta", 3.0), _run("2026-11-02", "straight_line", 3.5),
            _run("2026-11-03", "road_eta", 4.0), _run("2026-11-03", "straight_line", 4.0),
            _run("2026-11-04", "road_eta", 5.0)]  # day 3: (c) not played (yet)
    study = StudyResult("now", "here", 1, ["2026-11-02", "2026-11-03", "2026-11-04"], runs)
    wide = study.per_day("median_min")
    assert list(wide.columns) == ["road_eta", "straight_line"] and math.isnan(wide.loc["2026-11-04", "straight_line"])
    iv = study.intervals(["median_min"]).set_index("rule")
    assert (iv["days"] == 2).all() and iv.loc["road_eta", "mean"] == 3.5  # not 4.0: day 3 left out
    assert iv.loc["straight_line", "diff"] == 0.25 and iv.loc["straight_line", "worse_days"] == 1
    with pytest.raises(KeyError, match="day metric"):
        study.per_day("_response_min")


def test_combine_studies_played_apart():
    mon = StudyResult("2026-12-06T10:00", "vm", 1, ["2026-11-02"],
                      [_run("2026-11-02", "own_grid", 5.0), _run("2026-11-02", "road_eta", 3.0)])
    tue = StudyResult("2026-12-06T11:00", "vm", 1, ["2026-11-03"], [_run("2026-11-03", "road_eta", 4.0)])
    both = StudyResult.combine([tue, mon])
    assert both.days == ["2026-11-02", "2026-11-03"] and both.made_at == "2026-12-06T11:00"
    # runs by day, then in the rules' order (a) .. (e)
    assert [(r.day, r.rule) for r in both.runs] == [("2026-11-02", "road_eta"), ("2026-11-02", "own_grid"),
                                                    ("2026-11-03", "road_eta")]
    assert StudyResult.from_json(both.to_json()).runs == both.runs
    with pytest.raises(ValueError, match="more than once"):
        StudyResult.combine([mon, mon])
    other_seed = StudyResult("x", "vm", 2, ["2026-11-04"], [_run("2026-11-04", "road_eta", 4.0, seed=2)])
    with pytest.raises(ValueError, match="seeds"):
        StudyResult.combine([mon, other_seed])
