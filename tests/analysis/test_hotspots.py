"""Getis-Ord Gi* hot spots on H3 cells: a planted cluster is found, uniform noise is not."""

from __future__ import annotations

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from gridmap.analysis import cells_for, getis_ord, hex_counts, hotspot_table, hotspots

# a 4 km x 4 km study square around (120.10 E, 30.28 N); about 160 res-9 cells
AREA = gpd.GeoDataFrame({"code": ["X"]}, geometry=[shapely.box(120.08, 30.262, 120.12, 30.298)], crs="EPSG:4326")
CLUSTER = (120.101, 30.281)


def uniform_events(n: int, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = AREA.total_bounds
    return gpd.GeoDataFrame({"category": ["parking"] * n},
                            geometry=gpd.points_from_xy(rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)),
                            crs="EPSG:4326")


def planted(n_noise: int = 400, n_cluster: int = 120, seed: int = 5) -> gpd.GeoDataFrame:
    """Uniform noise plus a knot of events within ~120 m of CLUSTER (drawn in metres, EPSG:4549)."""
    rng = np.random.default_rng(seed)
    centre = gpd.GeoSeries([shapely.Point(CLUSTER)], crs="EPSG:4326").to_crs("EPSG:4549").iloc[0]
    knot = gpd.GeoSeries(gpd.points_from_xy(centre.x + rng.normal(0, 60, n_cluster),
                                            centre.y + rng.normal(0, 60, n_cluster)), crs="EPSG:4549").to_crs(4326)
    noise = uniform_events(n_noise, seed + 1)
    knot = gpd.GeoDataFrame({"category": ["fraud"] * n_cluster}, geometry=knot.values, crs="EPSG:4326")
    return pd.concat([noise, knot], ignore_index=True)


def test_a_planted_cluster_is_a_hotspot_and_the_rest_is_not():
    ev = planted()
    res = hotspots(ev, AREA)
    hot = res[res.hotspot == "hot"]
    centre_cell = h3.latlng_to_cell(CLUSTER[1], CLUSTER[0], 9)
    assert centre_cell in set(hot.cell)
    # every hot cell is in or next to the knot (within 2 rings of its centre), none far away
    assert all(h3.grid_distance(c, centre_cell) <= 2 for c in hot.cell)
    assert len(hot) >= 3
    assert (res.loc[res.cell == centre_cell, "gi_z"] > 5).all()
    t = hotspot_table(res)
    assert t.loc[0, "hot_cells"] == len(hot) and t.loc[0, "events"] == len(ev)
    assert t.loc[0, "share_in_hot"] > 0.2


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_uniform_noise_has_no_hotspot(seed):
    res = hotspots(uniform_events(600, seed), AREA)
    assert (res.hotspot == "not significant").all()
    # ... while without the false-discovery-rate cut some noise cells pass p <= 0.05 (about 1 in 20 of the
    # cells above expectation): the FDR cut is what keeps noise quiet
    raw = getis_ord(hex_counts(uniform_events(600, seed), AREA), fdr=False)
    assert 1 <= (raw.hotspot == "hot").sum() <= 0.1 * len(raw)


def test_groups_are_tested_separately():
    fraud = planted(n_noise=300, seed=8)  # a knot of fraud over a fraud background
    fraud["category"] = "fraud"
    ev = pd.concat([fraud, uniform_events(400, 21)], ignore_index=True)  # and parking noise
    res = hotspots(ev, AREA, by="category")
    by = hotspot_table(res, "category").set_index("category")
    assert by.loc["fraud", "hot_cells"] >= 3
    assert by.loc["parking", "hot_cells"] == 0
    assert by.loc["fraud", "events"] == 420 and by.loc["parking", "events"] == 400
    # every group is tested on the same cells
    assert res.groupby("category").cell.apply(frozenset).nunique() == 1


def test_hex_counts_fill_every_cell_of_the_area_with_zeros():
    ev = uniform_events(50, 3)
    c = hex_counts(ev, AREA)
    assert c.n.sum() == 50
    assert set(cells_for(AREA)) <= set(c.cell)
    assert (c.n == 0).sum() > 50 and c.crs == "EPSG:4326"
    assert c.cell.is_unique
    # hexagons tile: their areas are all about 0.1 km^2 at resolution 9
    km2 = c.to_crs("EPSG:4549").area / 1e6
    assert km2.between(0.08, 0.13).all()


def test_periods_split_by_local_month():
    ev = planted()
    t0 = pd.Timestamp("2026-01-31 23:30", tz="Asia/Shanghai")  # 15:30 UTC: still January locally
    ev["reported_at"] = [t0 if i % 2 else t0 + pd.Timedelta("1h") for i in range(len(ev))]
    res = hotspots(ev, AREA, period="month")
    months = sorted(res.month.unique())
    assert [str(m)[:10] for m in months] == ["2026-01-01", "2026-02-01"]
    assert res.groupby("month").n.sum().tolist() == [len(ev) // 2, len(ev) - len(ev) // 2]


def test_a_single_cell_cannot_be_tested_alone():
    c = getis_ord(gpd.GeoDataFrame({"cell": [h3.latlng_to_cell(30.28, 120.1, 9)], "n": [5]},
                                   geometry=[shapely.Point(0, 0)], crs="EPSG:4326"))
    assert c.hotspot.tolist() == ["not significant"]
