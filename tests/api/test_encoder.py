"""The one JSON encoder (gridmap.core.encode): every kind of value a response can carry, written once, the
same way everywhere (API, dashboard, layers, live feed)."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pytest
import shapely
from fastapi.routing import APIRoute

import gridmap.viz as gv
from api.app import create_app
from api.errors import GridmapJSON
from gridmap.core.encode import dumps, feature_collection, jsonable, records

TZ = ZoneInfo("Asia/Shanghai")


class Colour(enum.Enum):
    RED = "red"


def roundtrip(v):
    return orjson.loads(dumps({"v": v}))["v"]


@pytest.mark.parametrize(("value", "want"), [
    (None, None), (pd.NA, None), (pd.NaT, None), (float("nan"), None), (float("inf"), None), (float("-inf"), None),
    (np.float64("nan"), None), (np.float32(1.5), 1.5), (np.int64(7), 7), (np.uint8(255), 255), (np.bool_(True), True),
    (np.datetime64("NaT"), None), (np.timedelta64("NaT"), None),
    (pd.Timestamp("2026-11-02 09:30", tz="Asia/Shanghai"), "2026-11-02T09:30:00+08:00"),
    (pd.Timestamp("2026-11-02 09:30"), "2026-11-02T09:30:00"),
    (dt.datetime(2026, 11, 2, 9, 30, tzinfo=TZ), "2026-11-02T09:30:00+08:00"),
    (dt.date(2026, 11, 2), "2026-11-02"), (dt.time(9, 30), "09:30:00"),
    (np.datetime64("2026-11-02T09:30"), "2026-11-02T09:30:00"),
    (dt.timedelta(minutes=2), 120.0), (pd.Timedelta(hours=1), 3600.0), (np.timedelta64(90, "s"), 90.0),
    (decimal.Decimal("12.50"), 12.5), (decimal.Decimal("NaN"), None), (decimal.Decimal("Infinity"), None),
    (np.array([1.0, np.nan, np.inf]), [1.0, None, None]), (np.array([[1, 2], [3, 4]]), [[1, 2], [3, 4]]),
    (np.array(["2026-11-02", "NaT"], dtype="datetime64[ns]"), ["2026-11-02T00:00:00", None]),
    (np.array([pd.Timestamp("2026-11-02"), None, np.nan], dtype=object), ["2026-11-02T00:00:00", None, None]),
    (pd.Series([1, None], dtype="Int64"), [1, None]),
    (pd.Series(pd.to_datetime(["2026-11-02", None], utc=True)), ["2026-11-02T00:00:00+00:00", None]),
    (pd.array([True, None], dtype="boolean"), [True, None]),
    (pd.Categorical(["a", None]), ["a", None]),
    (shapely.Point(120.1, 30.2), {"type": "Point", "coordinates": [120.1, 30.2]}),
    (shapely.LineString([(0, 0), (1, 1)]), {"type": "LineString", "coordinates": [[0.0, 0.0], [1.0, 1.0]]}),
    (shapely.Point(), None),
    ({3, 1, 2}, [1, 2, 3]), ((1, "a"), [1, "a"]), (b"text", "text"),
    (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"), (Colour.RED, "red"),
    ([[np.float64("nan"), pd.NaT, {"t": pd.Timestamp("2026-01-01", tz="UTC")}]], [[None, None, {"t": "2026-01-01T00:00:00+00:00"}]]),
    ("王小明 ünïcode", "王小明 ünïcode"), (10**18, 10**18), (True, True),
])
def test_every_kind_of_value_is_written(value, want):
    assert roundtrip(value) == want


def test_keys_that_are_not_strings_and_unicode_are_written_as_is():
    out = dumps({1: "a", dt.date(2026, 1, 1): "b", "名": "王"})
    assert orjson.loads(out) == {"1": "a", "2026-01-01": "b", "名": "王"}
    assert "王".encode() in out  # UTF-8, not \\u escapes


def test_an_unknown_kind_is_an_error_naming_it_never_silently_a_string():
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Opaque"):
        dumps({"x": Opaque()})
    with pytest.raises(TypeError, match="binary"):
        jsonable(b"\xff\xfe")


def test_records_and_feature_collections_of_a_frame_with_missing_values():
    df = gpd.GeoDataFrame({
        "title": pd.Series([None, "堵车", np.nan], dtype=object),
        "n": pd.Series([1, None, 3], dtype="Int64"),
        "at": pd.to_datetime(["2026-11-02 09:00", None, "2026-11-02 10:00"]).tz_localize("Asia/Shanghai"),
        "x": [1.5, np.nan, 2.0],
        "geometry": [shapely.Point(120.123456789, 30.2), None, shapely.Point(120.1, 30.3)],
    }, crs="EPSG:4326")
    recs = records(df, ["title", "n", "at", "x"])
    assert recs[1] == {"title": "堵车", "n": None, "at": None, "x": None}
    assert recs[0]["title"] is None and recs[2]["title"] is None and recs[0]["at"] == "2026-11-02T09:00:00+08:00"
    fc = orjson.loads(dumps(feature_collection(df, precision=6)))
    assert fc["features"][0]["geometry"]["coordinates"] == [120.123457, 30.2]
    assert fc["features"][1]["geometry"] is None and fc["features"][1]["properties"]["n"] is None
    # the dashboard's encoders are the same ones
    assert orjson.loads(gv.dumps(gv.features(df, ["title", "n", "at", "x"]))) == fc
    assert gv.dumps({"t": pd.NaT}) == dumps({"t": pd.NaT})


def test_the_api_writes_its_untyped_json_with_the_one_encoder(api_settings):
    """Every route either declares a response model (pydantic writes its typed fields) or answers with the
    one encoder's response class, or builds its own Response (the dashboard, the layers) from ``dumps``."""
    app = create_app(api_settings)
    assert GridmapJSON({"t": pd.Timestamp("2026-01-01", tz="UTC"), "v": pd.NA}).body == \
        b'{"t":"2026-01-01T00:00:00+00:00","v":null}'
    plain = []
    for r in app.routes:
        if not isinstance(r, APIRoute):
            continue
        cls = getattr(r.response_class, "value", r.response_class)
        if r.response_model is None and not issubclass(cls, GridmapJSON) and cls.__name__ in ("JSONResponse",):
            plain.append(r.path)
    assert plain == [], f"routes answering with the standard library's JSON: {plain}"
