"""gridmap.viz without a database: GeoDataFrames in, pydeck layers / deck JSON / offline HTML out."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import gridmap.viz as gv
from gridmap.errors import InvalidInput


def buildings(crs="EPSG:4326") -> gpd.GeoDataFrame:
    polys = [shapely.box(120.1 + i * 0.001, 30.28, 120.1005 + i * 0.001, 30.2805) for i in range(3)]
    gdf = gpd.GeoDataFrame({"code": ["B1", "B2", "B3"], "address": ["a", "b", "c"], "floors": [3, 6, 30],
                            "height_m": [None, 18.5, None], "residents": [0, 42, 250], "businesses": [1, 0, 2]},
                           geometry=polys, crs="EPSG:4326")
    return gdf if crs == "EPSG:4326" else gdf.to_crs(crs)


def layer_json(layer) -> dict:
    return json.loads(gv.deck([layer], bbox=(120.0, 30.2, 120.2, 30.3)).to_json())["layers"][0]


def test_a_frame_in_another_crs_is_drawn_at_the_same_place():
    a = gv.features(buildings())["features"]
    b = gv.features(buildings("EPSG:4549"))["features"]
    for fa, fb in zip(a, b, strict=True):
        assert np.allclose(fa["geometry"]["coordinates"][0], fb["geometry"]["coordinates"][0], atol=2e-6)
    pts = gv.points(gpd.GeoDataFrame({"k": [1]}, geometry=[shapely.Point(500000, 3350000)], crs="EPSG:4549"))
    assert pts[0]["position"] == pytest.approx([120.0, 30.27], abs=0.01) and pts[0]["k"] == 1


def test_a_frame_without_crs_or_with_the_wrong_geometry_is_refused():
    with pytest.raises(InvalidInput, match="set_crs"):
        gv.features(buildings().set_crs(None, allow_override=True))
    with pytest.raises(InvalidInput, match="GeoDataFrame"):
        gv.points(pd.DataFrame({"a": [1]}))
    with pytest.raises(InvalidInput, match="Polygon"):
        gv.points(buildings())
    with pytest.raises(InvalidInput, match="nope"):
        gv.features(buildings(), ["code", "nope"])


def test_buildings_layer_from_a_frame_is_extruded_by_height_and_coloured_by_residents():
    lj = layer_json(gv.buildings_layer(buildings()))
    assert lj["@@type"] == "GeoJsonLayer" and lj["extruded"] is True and lj["pickable"] is True
    assert lj["getElevation"] == "@@=properties.height"
    assert lj["getFillColor"].startswith("@@=properties.residents >= 200 ? [189, 0, 38]")
    props = [f["properties"] for f in lj["data"]["features"]]
    assert [p["height"] for p in props] == [9.0, 18.5, 90.0]  # height_m, else 3 m a floor
    assert [p["residents"] for p in props] == [0, 42, 250]
    with pytest.raises(InvalidInput, match="residents"):
        gv.buildings_layer(buildings().drop(columns="residents"))


def test_buildings_layer_from_a_url_fetches_tiles():
    lj = layer_json(gv.buildings_layer("/t/{z}/{x}/{y}.json"))
    assert lj["@@type"] == "TileLayer" and lj["data"] == "/t/{z}/{x}/{y}.json"
    assert lj["minZoom"] == 11 and lj["maxZoom"] == 14 and lj["extruded"] is True
    with pytest.raises(InvalidInput, match="tile URL"):
        gv.buildings_layer("/buildings.json")


def test_expressions():
    assert gv.step_expr("x", (0, 10), ((1, 2, 3), (4, 5, 6))) == "x >= 10 ? [4, 5, 6] : ([1, 2, 3])"
    assert gv.match_expr("s", {"a": 1, "b": 2}, 0) == 's == "a" ? 1 : (s == "b" ? 2 : (0))'
    with pytest.raises(InvalidInput):
        gv.step_expr("x", (0, 1), ((1, 2, 3),))


def test_grids_layer_switches_colouring():
    g = buildings().assign(open_events=[0, 3, 9], safety_index=[95.0, 70.0, 10.0])
    a, b = layer_json(gv.grids_layer(g)), layer_json(gv.grids_layer(g, color_by="safety"))
    assert "open_events" in a["getFillColor"] and a["updateTriggers"] == {"getFillColor": "open_events"}
    assert "safety_index" in b["getFillColor"] and b["updateTriggers"] == {"getFillColor": "safety"}
    with pytest.raises(InvalidInput, match="colour"):
        gv.grids_layer(g, color_by="crime")
    with pytest.raises(InvalidInput, match="safety_index"):
        gv.grids_layer(g.drop(columns="safety_index"), color_by="safety")


def test_point_and_path_layers():
    pts = gpd.GeoDataFrame({"code": ["T1", "T2"], "state": ["available", "stale"],
                            "position_at": pd.to_datetime(["2026-10-31T23:00:00+08:00", None], utc=True)},
                           geometry=[shapely.Point(120.1, 30.28), shapely.Point(120.2, 30.29)], crs="EPSG:4326")
    lj = layer_json(gv.teams_layer(pts))
    assert lj["@@type"] == "ScatterplotLayer" and lj["getPosition"] == "@@=position"
    assert lj["data"][0]["position_at"].startswith("2026-10-31T15:00:00") and lj["data"][1]["position_at"] is None
    assert 'state == "stale" ? [200, 200, 200]' in lj["getFillColor"]
    line = gpd.GeoDataFrame({"event_id": [7]}, geometry=[shapely.LineString([(120.1, 30.28), (120.11, 30.29)])],
                            crs="EPSG:4326")
    rj = layer_json(gv.routes_layer(line))
    assert rj["data"] == [{"event_id": 7, "path": [[120.1, 30.28], [120.11, 30.29]]}]
    ej = layer_json(gv.events_layer(pts.assign(severity=[1, 4], overdue=[False, True], status="reported")))
    assert ej["getRadius"] == "@@=20 + 15 * severity" and ej["data"][1]["overdue"] is True


def test_deck_has_no_basemap_and_the_offline_html_no_external_tag(tmp_path):
    d = gv.deck([gv.buildings_layer(buildings())], bbox=(120.1, 30.28, 120.103, 30.281))
    j = json.loads(d.to_json())
    # map_provider=None: pydeck leaves the key out and deck.gl draws no basemap (nothing to fetch)
    assert d.map_provider is None and j.get("mapProvider") is None and j.get("mapStyle") is None
    html = gv.to_html(d, tmp_path / "map.html")
    assert not gv.has_external_refs(html) and "createDeck" in html and len(html) > 1_000_000
    assert (tmp_path / "map.html").read_text(encoding="utf-8") == html
    raw = d.to_html(as_string=True, offline=False, notebook_display=False)
    assert gv.has_external_refs(raw) and not gv.has_external_refs(gv.strip_external(raw))


def test_fit_view_shows_the_whole_bbox():
    import math

    bbox = (120.06, 30.255, 120.135, 30.315)
    v = gv.fit_view(bbox, width=1280, height=800, pitch=0)
    scale = 512 * 2 ** v.zoom  # pixels per world width at this zoom
    width_px = (bbox[2] - bbox[0]) / 360 * scale

    def merc(lat):
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    height_px = (merc(bbox[3]) - merc(bbox[1])) / (2 * math.pi) * scale
    assert width_px <= 1280 and height_px <= 800 and max(width_px / 1280, height_px / 800) > 0.85
    assert (v.longitude, v.latitude) == pytest.approx(((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2))
    with pytest.raises(InvalidInput):
        gv.fit_view((1, 1, 1, 2))


def test_dumps_handles_pandas_and_numpy():
    out = gv.dumps({"a": np.int64(3), "b": float("nan"), "c": pd.NA, "d": pd.Timestamp("2026-01-01T00:00Z"),
                    "e": np.array([1.5, 2.5])})
    assert json.loads(out) == {"a": 3, "b": None, "c": None, "d": "2026-01-01T00:00:00+00:00", "e": [1.5, 2.5]}
