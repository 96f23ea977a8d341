"""The safety index (平安指数): hand-computed values, invariance to row order, scaling per 1,000 residents."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.analysis import DIMENSIONS, WINDOWS, count_events, index_table, safety_index
from gridmap.analysis.safety import Dimension
from gridmap.errors import InvalidInput

TZ = ZoneInfo("Asia/Shanghai")
CATS = ["public_security", "fraud", "fire_hazard", "food_drug_safety", "neighbour_dispute", "consumer_dispute",
        "parking", "environment"]


def random_events(n: int, codes: list[str], seed: int) -> pd.DataFrame:
    """Events over three months with lifecycle times; some never resolved, some late."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz=TZ)
    rep = start + pd.to_timedelta(rng.uniform(0, 90 * 86400, n), unit="s")
    res_delay = pd.to_timedelta(rng.lognormal(np.log(6 * 3600), 1.5, n), unit="s")
    resolved = (rep + res_delay).where(rng.random(n) > 0.05)
    closed = (resolved + pd.to_timedelta(rng.lognormal(np.log(5 * 86400), 1.0, n), unit="s")).where(rng.random(n) > 0.03)
    return pd.DataFrame({"grid_code": rng.choice(codes, n), "category": rng.choice(CATS, n), "reported_at": rep,
                         "resolved_at": resolved, "closed_at": closed})


AREAS = pd.DataFrame({"code": ["G1", "G2", "G3"], "population": [1200, 3400, 800]})
AS_OF = dt.datetime(2026, 4, 20, tzinfo=TZ)


def index_of(events: pd.DataFrame, areas: pd.DataFrame = AREAS) -> pd.DataFrame:
    return safety_index(count_events(events, as_of=AS_OF), areas)


def test_a_hand_computed_month():
    t = pd.Timestamp("2026-03-10 09:00", tz=TZ)
    h = pd.Timedelta("1h")
    ev = pd.DataFrame({
        "grid_code": ["G1"] * 6,
        "category": ["public_security", "public_security", "fire_hazard", "fire_hazard", "neighbour_dispute",
                     "parking"],
        "reported_at": [t] * 6,
        "resolved_at": [t + h, t + h, t + 2 * h, t + 30 * h, None, t + h],  # one hazard late, the dispute open
        "closed_at": [t + 48 * h, t + 48 * h, t + 48 * h, t + 48 * h, None, t + 40 * 24 * h],
    })
    s = safety_index(count_events(ev, as_of=AS_OF), pd.DataFrame({"code": ["G1"], "population": [2000]}))
    row = s.iloc[0]
    assert row.public_security == pytest.approx(1.0)  # 2 per 2,000 residents = 1 per 1,000
    assert row.public_security_score == pytest.approx(100 * 0.8 / 1.8)
    assert row.fraud_score == 100.0 and row.food_drug_score == 100.0
    assert row.fire_hazards == pytest.approx(1.0) and row.fire_hazards_score == pytest.approx(100 * 2 / 3)
    assert row.fire_hazard_removal == 0.5  # one of two within 24 h
    assert row.dispute_resolution == 0.0  # unresolved
    assert row.closure == pytest.approx(4 / 6)  # the parking case closed after 40 days, the dispute never
    expected = (0.20 * 100 * 0.8 / 1.8 + 0.15 * 100 + 0.10 * 100 * 2 / 3 + 0.10 * 100
                + 0.15 * 50 + 0.15 * 0 + 0.15 * 100 * 4 / 6)
    assert row["index"] == pytest.approx(expected)
    assert row.events == 6 and row["rank"] == 1


def test_invariant_to_the_order_of_input_rows():
    ev = random_events(3000, ["G1", "G2", "G3"], seed=1)
    a = index_of(ev)
    for seed in (2, 3):
        shuffled = ev.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        pd.testing.assert_frame_equal(index_of(shuffled), a)
    pd.testing.assert_frame_equal(index_of(ev, AREAS.iloc[::-1].reset_index(drop=True)), a)


@pytest.mark.parametrize("factor", [2, 5])
def test_scales_per_1000_residents(factor):
    """k times the residents and k times every event: the same rates, scores and index."""
    ev = random_events(2000, ["G1", "G2", "G3"], seed=4)
    base = index_of(ev)
    bigger = index_of(pd.concat([ev] * factor, ignore_index=True),
                      AREAS.assign(population=AREAS.population * factor))
    cols = ["index", *[d.name for d in DIMENSIONS], *[f"{d.name}_score" for d in DIMENSIONS]]
    pd.testing.assert_frame_equal(bigger[cols], base[cols], check_exact=False, rtol=1e-12)
    assert (bigger.events == factor * base.events).all()
    # and the rates are really per 1,000 residents: doubling the population alone halves them
    halved = index_of(ev, AREAS.assign(population=AREAS.population * 2))
    assert np.allclose(halved.fraud, base.fraud / 2)


def test_more_crime_lowers_the_index_and_months_compare():
    ev = random_events(2000, ["G1", "G2", "G3"], seed=6)
    base = index_of(ev).set_index(["code", "month"])
    t = pd.Timestamp("2026-02-15 20:00", tz=TZ)
    extra = pd.DataFrame({"grid_code": ["G2"] * 20, "category": ["public_security"] * 20, "reported_at": [t] * 20,
                          "resolved_at": [t + pd.Timedelta("1h")] * 20, "closed_at": [t + pd.Timedelta(days=2)] * 20})
    worse = index_of(pd.concat([ev, extra], ignore_index=True)).set_index(["code", "month"])
    feb = pd.Timestamp("2026-02-01")
    assert worse.loc[("G2", feb), "index"] < base.loc[("G2", feb), "index"]
    assert worse.loc[("G1", feb), "index"] == base.loc[("G1", feb), "index"]
    assert worse.loc[("G2", pd.Timestamp("2026-03-01")), "change"] > base.loc[("G2", pd.Timestamp("2026-03-01")), "change"]
    table = index_table(worse.reset_index())
    assert table.shape == (3, 3) and list(table.columns) == [pd.Timestamp(f"2026-0{m}-01") for m in (1, 2, 3)]


def test_a_quiet_area_scores_and_late_outcomes_are_not_yet_judged():
    ev = random_events(500, ["G1", "G2"], seed=7)
    s = index_of(ev)  # G3 has no events at all
    g3 = s[s.code == "G3"]
    assert len(g3) == 3 and g3["index"].tolist() == pytest.approx([100.0] * 3) and (g3.events == 0).all()
    # events of April 15-20: their 30-day closure is not due by AS_OF, so it does not count against them
    t = pd.Timestamp("2026-04-15 10:00", tz=TZ)
    late = pd.DataFrame({"grid_code": ["G1"], "category": ["parking"], "reported_at": [t], "resolved_at": [None],
                         "closed_at": [None]})
    s2 = index_of(pd.concat([ev, late], ignore_index=True))
    apr = s2[(s2.code == "G1") & (s2.month == pd.Timestamp("2026-04-01"))].iloc[0]
    assert apr.closure_n == 0 and np.isnan(apr.closure)


def test_the_formula_is_validated():
    counts = count_events(random_events(50, ["G1"], seed=8))
    with pytest.raises(InvalidInput, match="sum to"):
        safety_index(counts, AREAS, dimensions=(Dimension("fraud", "诈骗", "rate", ("fraud",), 0.5, reference=1.0),))
    with pytest.raises(InvalidInput, match="population"):
        safety_index(counts, AREAS.drop(columns="population"))
    with pytest.raises(InvalidInput, match="lack"):
        safety_index(counts.drop(columns="due_closed_30d"), AREAS)
    assert set(WINDOWS) == {d.window for d in DIMENSIONS if d.kind == "share"}
    assert sum(d.weight for d in DIMENSIONS) == pytest.approx(1.0)


def test_a_rate_without_its_reference_rate_is_refused():
    # (found by mypy: Dimension.reference is optional, and a rate without one failed with a TypeError)
    counts = count_events(random_events(50, ["G1"], seed=8))
    with pytest.raises(InvalidInput, match="reference") as info:
        safety_index(counts, AREAS, dimensions=(Dimension("fraud", "诈骗", "rate", ("fraud",), 1.0),))
    assert info.value.field == "dimensions" and "reference=" in info.value.fix


def test_a_geodataframe_of_areas_gives_a_map_ready_frame():
    areas = gpd.GeoDataFrame(AREAS.assign(name=["a", "b", "c"]), geometry=[shapely.box(0, 0, 1, 1)] * 3,
                             crs="EPSG:4326")
    s = safety_index(count_events(random_events(300, ["G1", "G2", "G3"], seed=9), as_of=AS_OF), areas)
    assert isinstance(s, gpd.GeoDataFrame) and s.crs == "EPSG:4326" and len(s) == 9
    assert s.name.notna().all()
