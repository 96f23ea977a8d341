"""CRS handling: GCJ-02 ⇄ WGS84, the measuring CRS (EPSG:4549), swap/projection detection, PII masks.

References are independent of gridmap: the ``prcoords`` library, the committed WGS84 conversion of the
Amap district file (data/boundaries, see SOURCES.md), and PROJ's geodesics (``pyproj.Geod``).
No database here.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import prcoords
import pytest
import shapely
from pyproj import Geod, Transformer

from gridmap.config import HANGZHOU_BBOX
from gridmap.core import crs
from gridmap.core.privacy import mask_frame, mask_id_card, mask_name, mask_phone

DATA = Path(__file__).resolve().parents[2] / "data" / "boundaries"
GCJ_FILE = DATA / "hangzhou_districts_2020_amap_gcj02.geojson"
WGS_FILE = DATA / "hangzhou_districts_2020_amap_wgs84.geojson"
TIANDITU_FILE = DATA / "hangzhou_districts_tianditu.geojson"

WGS84 = Geod(ellps="WGS84")
HANGZHOU = (120.1551, 30.2741)  # West Lake
XIANLIN = (120.00, 30.25)


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance in metres, element-wise."""
    _, _, d = WGS84.inv(np.asarray(lon1, float), np.asarray(lat1, float), np.asarray(lon2, float),
                        np.asarray(lat2, float))
    return np.asarray(d)


@pytest.fixture(scope="module")
def china_points() -> tuple[np.ndarray, np.ndarray]:
    """A few hundred WGS84 points across mainland China, densest around Hangzhou."""
    rng = np.random.default_rng(20261122)
    lon = np.r_[rng.uniform(75.0, 134.0, 300), rng.uniform(118.3, 120.8, 100), HANGZHOU[0], XIANLIN[0]]
    lat = np.r_[rng.uniform(18.5, 53.0, 300), rng.uniform(29.15, 30.6, 100), HANGZHOU[1], XIANLIN[1]]
    return lon, lat


@pytest.fixture(scope="module")
def amap() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    gcj = gpd.read_file(GCJ_FILE)
    wgs = gpd.read_file(WGS_FILE)
    return gcj, wgs


# -- GCJ-02 against prcoords ---------------------------------------------------------------------
def test_forward_matches_prcoords(china_points):
    lon, lat = china_points
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    ref = np.array([prcoords.wgs_gcj((la, lo)) for lo, la in zip(lon, lat, strict=True)])  # (lat, lon)
    d = metres(glon, glat, ref[:, 1], ref[:, 0])
    assert d.max() < 1.0, f"forward GCJ-02 differs from prcoords by up to {d.max():.3f} m"
    # and the offset is real (hundreds of metres), so the comparison above is not trivially true
    assert metres(lon, lat, glon, glat).min() > 50


def test_inverse_matches_prcoords(china_points):
    lon, lat = china_points
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    wlon, wlat = crs.gcj02_to_wgs84(glon, glat)
    ref = np.array([prcoords.gcj_wgs_bored((la, lo)) for lo, la in zip(glon, glat, strict=True)])
    d = metres(wlon, wlat, ref[:, 1], ref[:, 0])
    assert d.max() < 1.0, f"GCJ-02 → WGS84 differs from prcoords.gcj_wgs_bored by up to {d.max():.3f} m"
    # the inverse lands on the original WGS84 points, within 1 m as well
    assert metres(wlon, wlat, lon, lat).max() < 1.0


def test_offset_near_xianlin_is_the_documented_one():
    """SOURCES.md: at (120.00E, 30.25N) the forward offset is +0.00468° lon, −0.00246° lat, ≈527 m ESE."""
    glon, glat = crs.wgs84_to_gcj02(*XIANLIN)
    assert float(glon) - XIANLIN[0] == pytest.approx(0.00468, abs=1e-5)
    assert float(glat) - XIANLIN[1] == pytest.approx(-0.00246, abs=1e-5)
    assert metres(*XIANLIN, glon, glat) == pytest.approx(527, abs=3)


def test_round_trip_wgs_gcj_wgs_is_sub_micrometre(china_points):
    lon, lat = china_points
    back_lon, back_lat = crs.gcj02_to_wgs84(*crs.wgs84_to_gcj02(lon, lat))
    d = metres(lon, lat, back_lon, back_lat)
    assert d.max() < 1e-6, f"round trip drifts {d.max():.2e} m"


def test_inverse_is_exact_inverse_of_forward(china_points):
    """gcj02_to_wgs84 then wgs84_to_gcj02 gives back the GCJ-02 input."""
    lon, lat = china_points
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    again = crs.wgs84_to_gcj02(*crs.gcj02_to_wgs84(glon, glat))
    assert metres(glon, glat, *again).max() < 1e-6


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(139.6917, 35.6895),  # Tokyo
     (-0.1276, 51.5072),  # London
     (-74.006, 40.7128),  # New York
     (151.2093, -33.8688),  # Sydney
     (0.0, 0.0),
     (60.0, 30.0),  # west of the GCJ-02 box
     (120.0, 56.5)],  # north of it
)
def test_points_outside_china_are_unchanged(lon, lat):
    glon, glat = crs.wgs84_to_gcj02(lon, lat)
    assert (float(glon), float(glat)) == (lon, lat)
    wlon, wlat = crs.gcj02_to_wgs84(lon, lat)
    assert (float(wlon), float(wlat)) == (lon, lat)


def test_mixed_array_only_moves_the_points_in_china():
    lon = np.array([139.6917, HANGZHOU[0], -0.1276])
    lat = np.array([35.6895, HANGZHOU[1], 51.5072])
    wlon, wlat = crs.gcj02_to_wgs84(lon, lat)
    assert (wlon[[0, 2]] == lon[[0, 2]]).all() and (wlat[[0, 2]] == lat[[0, 2]]).all()
    assert metres(lon[1], lat[1], wlon[1], wlat[1]) > 100


def test_geometries_conversion_keeps_structure_and_converts_every_vertex():
    ring = [(120.10, 30.27), (120.12, 30.27), (120.12, 30.29), (120.10, 30.29), (120.10, 30.27)]
    hole = [(120.105, 30.275), (120.11, 30.275), (120.11, 30.28), (120.105, 30.275)]
    geoms = np.array([shapely.Polygon(ring, [hole]), shapely.Point(HANGZHOU), shapely.LineString(ring[:3]), None],
                     dtype=object)
    out = crs.geometries_gcj02_to_wgs84(geoms)
    assert out[3] is None
    for g, o in zip(geoms[:3], out[:3], strict=True):
        assert o.geom_type == g.geom_type
        assert shapely.get_num_coordinates(o) == shapely.get_num_coordinates(g)
        c, co = shapely.get_coordinates(g), shapely.get_coordinates(o)
        ex, ey = crs.gcj02_to_wgs84(c[:, 0], c[:, 1])
        np.testing.assert_allclose(co, np.column_stack([ex, ey]), rtol=0, atol=1e-11)  # ≈1 µm
    assert len(out[0].interiors) == 1


# -- GCJ-02 against the committed WGS84 conversion of the Amap districts ----------------------------
def test_amap_files_describe_the_same_districts(amap):
    gcj, wgs = amap
    assert len(gcj) == len(wgs) == 13
    assert gcj["adcode"].astype(str).tolist() == wgs["adcode"].astype(str).tolist()


def test_every_amap_vertex_converts_to_the_reference_within_1_m(amap):
    gcj, wgs = amap
    worst = []
    for (code, name, g), w in zip(gcj[["adcode", "name", "geometry"]].itertuples(index=False), wgs.geometry,
                                  strict=True):
        cg, cw = shapely.get_coordinates(g), shapely.get_coordinates(w)
        assert cg.shape == cw.shape, f"{code} {name}: vertex counts differ ({len(cg)} vs {len(cw)})"
        lon, lat = crs.gcj02_to_wgs84(cg[:, 0], cg[:, 1])
        d = metres(lon, lat, cw[:, 0], cw[:, 1])
        worst.append((d.max(), code, name, int(d.argmax())))
        # sanity: without the conversion the vertices are hundreds of metres off
        assert metres(cg[:, 0], cg[:, 1], cw[:, 0], cw[:, 1]).min() > 100
    top = max(worst)
    assert top[0] < 1.0, f"district {top[1]} {top[2]} vertex #{top[3]} is {top[0]:.3f} m from the reference"


def test_geometry_conversion_of_amap_districts_matches_the_reference(amap):
    gcj, wgs = amap
    out = crs.geometries_gcj02_to_wgs84(gcj.geometry.to_numpy())
    for o, w in zip(out, wgs.geometry, strict=True):
        # equals within 1e-5° (≈1 m) vertex by vertex, and the same topology
        assert shapely.equals_exact(o, w, tolerance=1e-5)
        assert o.is_valid


# -- measuring CRS: EPSG:4549 against geodesics -----------------------------------------------------
def _hangzhou_pairs(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = HANGZHOU_BBOX
    lon1, lon2 = rng.uniform(minx, maxx, (2, n))
    lat1, lat2 = rng.uniform(miny, maxy, (2, n))
    # also short hops (100 m – 5 km), the distances dispatch really uses
    k = n // 2
    ang = rng.uniform(0, 2 * np.pi, k)
    dist = rng.uniform(100, 5000, k)
    lon2[:k], lat2[:k], _ = WGS84.fwd(lon1[:k], lat1[:k], np.degrees(ang), dist)
    return lon1, lat1, lon2, lat2


def _projected_lengths(lon1, lat1, lon2, lat2, measure=crs.to_measure_crs) -> np.ndarray:
    lines = shapely.linestrings(np.stack([np.column_stack([lon1, lon2]), np.column_stack([lat1, lat2])], axis=-1))
    return shapely.length(measure(lines))


def test_4549_distances_agree_with_geodesic_within_0_1_percent():
    lon1, lat1, lon2, lat2 = _hangzhou_pairs(2000, seed=7)
    planar = _projected_lengths(lon1, lat1, lon2, lat2)
    geodesic = metres(lon1, lat1, lon2, lat2)
    rel = np.abs(planar / geodesic - 1)
    i = int(rel.argmax())
    assert rel.max() < 1e-3, (
        f"EPSG:4549 distance off by {rel[i]:.4%} between ({lon1[i]:.4f}, {lat1[i]:.4f}) and "
        f"({lon2[i]:.4f}, {lat2[i]:.4f})"
    )


def test_the_distance_check_would_catch_a_wrong_measuring_crs():
    """Negative control: Web Mercator (EPSG:3857) is ≈15 % long at 30°N, and the same check sees it."""
    lon1, lat1, lon2, lat2 = _hangzhou_pairs(200, seed=8)
    t = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)

    def mercator(g):
        return shapely.transform(g, lambda c: np.column_stack(t.transform(c[:, 0], c[:, 1])))

    planar = _projected_lengths(lon1, lat1, lon2, lat2, measure=mercator)
    assert np.abs(planar / metres(lon1, lat1, lon2, lat2) - 1).min() > 0.1


def test_to_measure_crs_is_easting_northing_in_metres():
    p = crs.to_measure_crs(np.array([shapely.Point(120.0, 30.0)], dtype=object))[0]
    # on the central meridian 120E: easting = false easting 500 000 m; northing ≈ 3 320 km
    assert p.x == pytest.approx(500_000, abs=1e-3)
    assert 3_300_000 < p.y < 3_350_000


@pytest.mark.parametrize("path", [TIANDITU_FILE, WGS_FILE], ids=["tianditu", "amap_wgs84"])
def test_4549_areas_of_real_districts_within_0_1_percent_of_geodesic(path):
    districts = gpd.read_file(path)
    planar = shapely.area(crs.to_measure_crs(districts.geometry.to_numpy()))
    geodesic = np.array([abs(WGS84.geometry_area_perimeter(g)[0]) for g in districts.geometry])
    rel = np.abs(planar / geodesic - 1)
    i = int(rel.argmax())
    assert rel.max() < 1e-3, f"{districts['name'].iloc[i]}: EPSG:4549 area off by {rel[i]:.4%}"
    assert geodesic.min() > 1e7  # real districts, tens of km² at least


def test_yuhang_areas_match_sources_md():
    """SOURCES.md gives Yuhang 942.7 km² (Tianditu) and old Yuhang 1232.6 km² (Amap 2020); its figures are
    planar UTM 51N (≈0.13 % large here), hence the 0.3 % tolerance."""
    tianditu = gpd.read_file(TIANDITU_FILE)
    amap_wgs = gpd.read_file(WGS_FILE)
    for frame, expected in ((tianditu, 942.7), (amap_wgs, 1232.6)):
        g = frame.loc[frame["adcode"].astype(str) == "330110", "geometry"].iloc[0]
        km2 = shapely.area(crs.to_measure_crs(np.array([g], dtype=object)))[0] / 1e6
        assert km2 == pytest.approx(expected, rel=3e-3)


# -- placement: lat/lon swap and projected coordinates --------------------------------------------
def _points(xy) -> np.ndarray:
    return np.array([shapely.Point(x, y) for x, y in xy], dtype=object)


def test_placement_of_lon_lat_points_inside_the_area():
    where, inside = crs.placement(_points([(120.1, 30.28), (119.5, 29.6), (121.5, 31.2)]), HANGZHOU_BBOX)
    assert (where.n, where.inside, where.inside_if_swapped, where.not_degrees) == (3, 2, 0, 0)
    assert inside.tolist() == [True, True, False]
    assert not where.looks_swapped and not where.looks_projected


def test_placement_detects_lat_lon_swap_and_does_not_call_it_projected():
    where, inside = crs.placement(_points([(30.28, 120.1), (29.6, 119.5), (30.1, 120.3)]), HANGZHOU_BBOX)
    assert where.looks_swapped
    assert not where.looks_projected  # (30, 120) is not metres: y > 90 only because it is swapped
    assert not inside.any()
    fixed, inside = crs.placement(crs.swap_xy(_points([(30.28, 120.1)])), HANGZHOU_BBOX)
    assert fixed.inside == 1 and not fixed.looks_swapped


def test_placement_detects_projected_metres():
    lonlat = _points([(120.1, 30.28), (119.5, 29.6), (120.3, 30.1)])
    for epsg in ("EPSG:4549", "EPSG:32651"):
        metres_xy = gpd.GeoSeries(lonlat, crs="EPSG:4326").to_crs(epsg).to_numpy()
        where, inside = crs.placement(metres_xy, HANGZHOU_BBOX)
        assert where.looks_projected, epsg
        assert not where.looks_swapped and where.inside == 0 and not inside.any()


def test_placement_thresholds_and_missing_geometries():
    # one projected point among three lon/lat ones is not "projected"; two of three is
    mixed = _points([(120.1, 30.28), (120.2, 30.2), (120.0, 30.1), (500_000, 3_350_000)])
    assert not crs.placement(mixed, HANGZHOU_BBOX)[0].looks_projected
    mostly = _points([(120.1, 30.28), (510_000, 3_350_000), (500_000, 3_350_000)])
    assert crs.placement(mostly, HANGZHOU_BBOX)[0].looks_projected
    # None and empty geometries are not counted at all
    geoms = np.array([None, shapely.Point(), shapely.Point(120.1, 30.28)], dtype=object)
    where, inside = crs.placement(geoms, HANGZHOU_BBOX)
    assert where.n == 1 and where.inside == 1 and inside.tolist() == [False, False, True]
    # nothing to judge: neither swapped nor projected
    empty = crs.placement(np.array([], dtype=object), HANGZHOU_BBOX)[0]
    assert empty.n == 0 and not empty.looks_swapped and not empty.looks_projected


def test_placement_judges_polygons_by_their_whole_extent():
    straddling = shapely.box(120.7, 30.0, 120.9, 30.1)  # crosses the east edge (120.8)
    where, inside = crs.placement(np.array([straddling, shapely.box(120.1, 30.2, 120.2, 30.3)]), HANGZHOU_BBOX)
    assert inside.tolist() == [False, True]


def test_swap_xy_swaps_every_vertex():
    poly = shapely.Polygon([(1, 2), (3, 2), (3, 5), (1, 2)])
    out = crs.swap_xy(np.array([poly], dtype=object))[0]
    np.testing.assert_array_equal(shapely.get_coordinates(out), shapely.get_coordinates(poly)[:, ::-1])


def test_is_geographic():
    assert crs.is_geographic("EPSG:4326") and crs.is_geographic("EPSG:4490")
    assert not crs.is_geographic("EPSG:4549") and not crs.is_geographic("EPSG:32651")


# -- masking of personal data --------------------------------------------------------------------
@pytest.mark.parametrize(("name", "masked"), [("张三丰", "张**"), ("李四", "李*"), ("欧阳娜娜", "欧***"),
                                             (None, None), ("", "")])
def test_mask_name(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("number", "masked"),
    [("330106199001011234", "330106********1234"),  # 18 digits: birth date hidden
     ("33010619900101123X", "330106********123X"),
     ("330106900101123", "330106*****1123"),  # old 15-digit card
     ("123456", "******"),  # too short to keep anything
     (None, None)],
)
def test_mask_id_card(number, masked):
    assert mask_id_card(number) == masked


@pytest.mark.parametrize(("phone", "masked"), [("13812345678", "138****5678"), ("057187654321", "057*****4321"),
                                               ("12345", "*****"), (None, None)])
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


def test_masks_never_reveal_birth_date_or_middle_digits():
    rng = np.random.default_rng(3)
    for _ in range(200):
        region = "".join(rng.choice(list("0123456789"), 6))
        birth = f"{rng.integers(1930, 2020)}{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}"
        card = region + birth + "".join(rng.choice(list("0123456789"), 3)) + rng.choice(list("0123456789X"))
        m = mask_id_card(card)
        assert len(m) == 18 and m[:6] == region and m[-4:] == card[-4:] and set(m[6:14]) == {"*"}
        phone = "1" + "".join(rng.choice(list("0123456789"), 10))
        mp = mask_phone(phone)
        assert mp[3:7] == "****" and len(mp) == 11


def test_mask_frame_masks_only_personal_columns_and_copies():
    df = pd.DataFrame({"id": [1, 2], "name": ["张三丰", "王五"], "id_card": ["330106199001011234", None],
                       "phone": ["13812345678", "13900000000"], "room": ["201", "302"]}, dtype=object)
    out = mask_frame(df)
    assert out["name"].tolist() == ["张**", "王*"]
    assert out["id_card"].iloc[0] == "330106********1234" and pd.isna(out["id_card"].iloc[1])
    assert out["phone"].tolist() == ["138****5678", "139****0000"]
    assert out["room"].tolist() == ["201", "302"] and out["id"].tolist() == [1, 2]
    assert df["name"].tolist() == ["张三丰", "王五"]  # the input is untouched
