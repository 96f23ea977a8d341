"""The analyses' reads on the real sample: filters push down to PostGIS and agree with the registry.

Each check compares a pushed-down read (``gridmap.analysis.load_*``) with the same answer got the long way
(the whole layer through ``Registry.layer`` and a pandas filter, or a count in plain SQL). The sample has two
streets: ``STREET`` (330106900, the main one) and the smaller 330106901 carved from its south-east corner;
the sample's totals (8,966 buildings, 260,000 residents, 36,000 events, 149 grids) are those of the two
together (a read with no area), a read of ``STREET`` is that street's share of them.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from gridmap import analysis as ga
from gridmap.errors import NotFound
from gridmap.services.dispatch import Dispatcher
from tests.analysis.analysis_helpers import STREET

pytestmark = [pytest.mark.db, pytest.mark.slow]
TZ = ZoneInfo("Asia/Shanghai")
AS_OF = dt.datetime(2026, 11, 1, tzinfo=TZ)


@pytest.fixture(scope="module")
def community(street):
    """A busy community of the main street: the one these tests always read (the fifth by code before the second
    street took 003, 004 and 012 away, now 901001-901003)."""
    code = "330106900005"
    assert code in set(street.layer("communities", area=STREET).code)
    return code


def test_buildings_of_a_community_with_their_people_counted_in_postgis(street, community):
    mine = ga.load_buildings(street, area=community)
    whole = ga.load_buildings(street)  # the sample: both streets
    assert len(whole) == 8966 and int(whole.residents.sum()) == 260_000
    main = ga.load_buildings(street, area=STREET)
    in_main = whole.community_code.isin(street.layer("communities", area=STREET).code)
    assert set(main.code) == set(whole.loc[in_main, "code"]) and 0 < len(main) < len(whole)
    assert int(main.residents.sum()) == int(whole.loc[in_main, "residents"].sum())
    assert set(mine.code) == set(whole.loc[whole.community_code == community, "code"])
    assert int(mine.residents.sum()) == len(street.residents(area=community))
    with street.engine.connect() as conn:
        hh = conn.execute(text("SELECT count(*) FROM households h JOIN buildings b ON b.id = h.building_id "
                               "WHERE b.community_code = :c"), {"c": community}).scalar_one()
    assert int(mine.households.sum()) == hh
    assert mine.crs == "EPSG:4326"


def test_road_graph_reads_only_roads_near_the_area(street, community):
    whole = ga.load_road_graph(street)
    assert (whole.n_nodes, whole.n_edges) == (1407, 3166)
    near = ga.load_road_graph(street, area=community, margin_m=200)
    assert 0 < near.n_edges < whole.n_edges / 2
    minx, miny, maxx, maxy = ga.area_bounds(street, community)
    roads = ga.load_roads(street, area=community, margin_m=200).to_crs(4326)
    assert len(roads) == near.n_edges
    assert roads.intersects(__import__("shapely").box(minx - 0.01, miny - 0.01, maxx + 0.01, maxy + 0.01)).all()
    with pytest.raises(NotFound):
        ga.load_road_graph(street, area="999999999")


def test_equipment_and_events_filters_match_the_registry(street, community):
    stations = ga.load_equipment(street, "micro_fire_station", area=STREET)
    fe = street.layer("fire_equipment", area=STREET)
    ref = fe[(fe.kind == "micro_fire_station") & (fe.status == "in_service")]
    assert sorted(stations.code) == sorted(ref.code) and 0 < len(stations) < 28  # the main street's share
    assert len(ga.load_equipment(street, "micro_fire_station")) == 28  # of the sample's (both streets)
    assert len(ga.load_equipment(street, ["micro_fire_station", "micro_fire_truck"], status=None)) == 30 + 40
    start, end = dt.datetime(2026, 3, 1, tzinfo=TZ), dt.datetime(2026, 5, 1, tzinfo=TZ)
    ev = ga.load_events(street, area=community, start=start, end=end, categories=["parking", "fraud"])
    allev = street.layer("events", area=community)
    want = allev[(allev.reported_at >= start) & (allev.reported_at < end) & allev.category.isin(["parking", "fraud"])]
    assert sorted(ev.code) == sorted(want.code) and len(ev) > 20


@pytest.mark.parametrize("level", ["grid", "community", "street"])
def test_month_counts_in_postgis_equal_counting_the_events(street, level):
    sql = ga.load_event_month_counts(street, level=level, area=STREET, windows=ga.WINDOWS, as_of=AS_OF)
    ev = ga.load_events(street, area=STREET)
    mine = ga.count_events(ev, level=level, as_of=AS_OF)
    pd.testing.assert_frame_equal(sql, mine, check_dtype=False)
    with street.engine.connect() as conn:
        in_street = conn.execute(text("SELECT count(*) FROM events WHERE street_code = :s"), {"s": STREET}).scalar_one()
    assert int(sql.events.sum()) == in_street and 0 < in_street < 36_000
    assert sql.month.nunique() == 12
    # the sample (both streets): every event, counted once, the same in PostGIS as in pandas
    both = ga.load_event_month_counts(street, level=level, windows=ga.WINDOWS, as_of=AS_OF)
    pd.testing.assert_frame_equal(both, ga.count_events(ga.load_events(street), level=level, as_of=AS_OF),
                                  check_dtype=False)
    assert int(both.events.sum()) == 36_000


def test_grid_registry_counts(street):
    reg = ga.load_grid_registry(street)  # the sample: both streets
    assert len(reg) == 149 and int(reg.residents.sum()) == 260_000
    main = ga.load_grid_registry(street, area=STREET)
    grids = street.layer("grids", area=STREET)
    assert sorted(main.code) == sorted(grids.code) and len(main) < 149
    assert int(main.residents.sum()) == int(reg.set_index("code").residents[main.code].sum())
    assert (reg.residents == reg.population).all()
    assert int(reg.workers.sum()) == 189 and (reg.workers >= 1).all()
    one = ga.load_grid_registry(street, area=reg.code.iloc[0])
    assert one.code.tolist() == [reg.code.iloc[0]]


def test_coverage_agrees_with_the_dispatch_service(street):
    """building_coverage's ETAs are the dispatcher's many-to-one ETAs from the in-service micro stations (the
    dispatcher's are the sample's, both streets: so are the analysis' here; a station reaches across a street
    boundary)."""
    g = ga.load_road_graph(street)
    b = ga.load_buildings(street)
    st = ga.load_equipment(street, "micro_fire_station")
    cov = ga.building_coverage(g, st, b, minutes=3)
    d = Dispatcher.from_database(street.engine, now=AS_OF)
    pts = b.to_crs("EPSG:4549").representative_point().to_crs(4326)
    ref = d.eta_to_nearest(pts.x.to_numpy(), pts.y.to_numpy(), kind="micro_fire_station")
    assert np.array_equal(np.isinf(ref), np.isinf(cov.eta_s.to_numpy()))
    ok = np.isfinite(ref)
    assert np.allclose(cov.eta_s.to_numpy()[ok], ref[ok], atol=1e-6)
    share = ga.coverage_summary(cov)["share_covered"]
    assert 0.5 < share < 0.95
