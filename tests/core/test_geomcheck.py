"""gridmap.core.geomcheck.check_geometries on hand-made geometries (no database)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import shapely

from gridmap.core.geomcheck import check_geometries

SQUARE = shapely.box(120.10, 30.28, 120.11, 30.29)
# a bow-tie: the ring crosses itself at (120.105, 30.285)
BOWTIE = shapely.Polygon([(120.10, 30.28), (120.11, 30.29), (120.11, 30.28), (120.10, 30.29), (120.10, 30.28)])
LINE = shapely.LineString([(120.10, 30.28), (120.11, 30.29)])
POINT = shapely.Point(120.10, 30.28)


def arr(*geoms) -> np.ndarray:
    return np.array(list(geoms), dtype=object)


def reasons(result) -> list[tuple[int, str, str]]:
    return [(p.index, p.action, p.reason) for p in result.problems]


def test_valid_polygons_pass_and_come_back_as_multipolygons():
    r = check_geometries(arr(SQUARE, shapely.MultiPolygon([SQUARE])), "polygon")
    assert r.keep.tolist() == [True, True] and r.problems == [] and r.repaired == 0 and r.rejected == 0
    assert [g.geom_type for g in r.geoms] == ["MultiPolygon", "MultiPolygon"]
    assert r.geoms[0].equals(SQUARE)
    np.testing.assert_array_equal(shapely.get_coordinates(r.geoms[0]), shapely.get_coordinates(SQUARE))


def test_bowtie_is_repaired_into_its_two_triangles():
    assert not BOWTIE.is_valid
    r = check_geometries(arr(BOWTIE), "polygon", keys=["B7"])
    assert r.keep.tolist() == [True] and r.repaired == 1 and r.rejected == 0
    fixed = r.geoms[0]
    assert fixed.geom_type == "MultiPolygon" and fixed.is_valid and len(fixed.geoms) == 2
    # the two lobes of the bow-tie: each half of the square's area
    assert fixed.area == pytest.approx(SQUARE.area / 2, rel=1e-9)
    assert fixed.covers(shapely.Point(120.1025, 30.285)) and fixed.covers(shapely.Point(120.1075, 30.285))
    assert not fixed.covers(shapely.Point(120.105, 30.2825))  # the empty wedges stay empty
    [(i, action, reason)] = reasons(r)
    assert (i, action) == (0, "repaired") and "Self-intersection" in reason and "make_valid" in reason
    assert str(r.problems[0]).startswith("feature #0 (B7): repaired")


def test_bowtie_is_rejected_when_repair_is_off():
    r = check_geometries(arr(SQUARE, BOWTIE), "polygon", keys=["ok", "bad"], repair=False)
    assert r.keep.tolist() == [True, False] and r.repaired == 0 and r.rejected == 1
    assert r.geoms[1] is None and r.geoms[0] is not None
    [(i, action, reason)] = reasons(r)
    assert (i, action) == (1, "rejected") and reason.startswith("invalid geometry: Self-intersection")
    assert "(bad)" in str(r.problems[0])


def test_invalid_line_is_rejected_even_with_repair():
    degenerate = shapely.LineString([(120.1, 30.28), (120.1, 30.28)])  # one distinct point
    r = check_geometries(arr(LINE, degenerate), "line")
    assert r.keep.tolist() == [True, False]
    assert "Too few points" in r.problems[0].reason


def test_collapsed_polygon_with_no_area_is_rejected():
    flat = shapely.Polygon([(120.0, 30.0), (120.25, 30.25), (120.5, 30.5), (120.0, 30.0)])  # exactly collinear
    r = check_geometries(arr(flat), "polygon")
    assert r.keep.tolist() == [False] and r.repaired == 0
    assert r.problems[0].reason.startswith("invalid geometry")


@pytest.mark.parametrize(
    ("kind", "geom", "says"),
    [("polygon", LINE, "geometry is LineString, this layer takes polygons"),
     ("polygon", POINT, "geometry is Point, this layer takes polygons"),
     ("polygon", shapely.GeometryCollection([SQUARE]), "geometry is GeometryCollection, this layer takes polygons"),
     ("point", SQUARE, "geometry is Polygon, this layer takes points"),
     ("point", LINE, "geometry is LineString, this layer takes points"),
     ("line", POINT, "geometry is Point, this layer takes lines"),
     ("line", SQUARE, "geometry is Polygon, this layer takes lines")],
)
def test_wrong_geometry_type_is_rejected(kind, geom, says):
    good = {"polygon": SQUARE, "point": POINT, "line": LINE}[kind]
    r = check_geometries(arr(good, geom), kind, keys=["k0", "k1"])
    assert r.keep.tolist() == [True, False]
    assert reasons(r) == [(1, "rejected", says)]
    assert r.geoms[1] is None


def test_missing_and_empty_geometries_are_rejected():
    r = check_geometries(arr(None, shapely.Point(), POINT, shapely.MultiPoint()), "point")
    assert r.keep.tolist() == [False, False, True, False]
    assert reasons(r) == [(0, "rejected", "no geometry"), (1, "rejected", "empty geometry"),
                          (3, "rejected", "empty geometry")]
    r = check_geometries(arr(shapely.Polygon(), None), "polygon")
    assert r.keep.tolist() == [False, False] and r.rejected == 2


def test_empty_input():
    r = check_geometries(arr(), "polygon")
    assert len(r.geoms) == 0 and r.keep.tolist() == [] and r.problems == []


def test_multipoint_with_one_part_becomes_a_point_two_parts_are_rejected():
    one = shapely.MultiPoint([(120.1, 30.28)])
    two = shapely.MultiPoint([(120.1, 30.28), (120.2, 30.29)])
    r = check_geometries(arr(one, two), "point", keys=["H1", "H2"])
    assert r.keep.tolist() == [True, False]
    assert r.geoms[0].geom_type == "Point" and r.geoms[0].equals(shapely.Point(120.1, 30.28))
    assert reasons(r) == [(1, "rejected", "MultiPoint with 2 parts; split it into one point per feature")]


def test_multilinestring_with_one_part_becomes_a_line_two_parts_are_rejected():
    one = shapely.MultiLineString([LINE])
    two = shapely.MultiLineString([LINE, shapely.LineString([(120.2, 30.2), (120.3, 30.3)])])
    r = check_geometries(arr(one, two), "line")
    assert r.keep.tolist() == [True, False]
    assert r.geoms[0].geom_type == "LineString" and r.geoms[0].equals(LINE)
    assert "MultiLineString with 2 parts" in r.problems[0].reason


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_coordinates_are_rejected(bad):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shapely warns while building these
        point = shapely.Point(120.1, bad)
        line = shapely.LineString([(120.1, 30.28), (bad, 30.29)])
        poly = shapely.Polygon([(120.1, 30.28), (120.11, bad), (120.11, 30.29), (120.1, 30.28)])
    for kind, g, good in (("point", point, POINT), ("line", line, LINE), ("polygon", poly, SQUARE)):
        r = check_geometries(arr(good, g), kind)
        assert r.keep.tolist() == [True, False], kind
        assert reasons(r) == [(1, "rejected", "coordinates are not finite numbers (NaN or infinity)")]


def test_one_problem_per_feature_and_sorted_by_index():
    geoms = arr(BOWTIE, None, LINE, SQUARE, shapely.Polygon())
    r = check_geometries(geoms, "polygon", keys=["a", "b", "c", "d", "e"])
    assert [p.index for p in r.problems] == [0, 1, 2, 4]
    assert [p.action for p in r.problems] == ["repaired", "rejected", "rejected", "rejected"]
    assert r.keep.tolist() == [True, False, False, True, False]
    assert r.rejected == 3 and r.repaired == 1


def test_input_array_is_not_modified():
    geoms = arr(BOWTIE, shapely.MultiPoint([(1, 2)]))
    check_geometries(geoms[:1], "polygon")
    assert geoms[0] is BOWTIE
