"""pydeck layers of the command-centre map, one builder per layer.

Every builder takes either a GeoDataFrame (a notebook: the data is encoded and inlined) or a URL (the
dashboard: deck.gl fetches it, per viewport or as vector tiles). Styling lives here, as deck.gl JSON
expressions (``"..."``) over the fields the encoders write, so a layer looks the same either way.

>>> import gridmap as gm, gridmap.viz as gv                                        # doctest: +SKIP
>>> db = gm.connect()                                                               # doctest: +SKIP
>>> deck = gv.deck([gv.buildings_layer(db.layer("buildings", area="330106900001"))])  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import geopandas as gpd
import pydeck as pdk
from pydeck.types import String as S

from gridmap.errors import InvalidInput
from gridmap.viz import encode

#: What a layer draws: a GeoDataFrame (encoded and inlined), records already encoded, or a URL deck.gl fetches.
LayerData: TypeAlias = gpd.GeoDataFrame | list[dict[str, Any]] | str

# -- palettes (RGBA) ---------------------------------------------------------------------------------------
#: Residents per building: class lower bounds and colours (grey: nobody lives there).
RESIDENT_BREAKS = (0, 1, 20, 50, 100, 200)
RESIDENT_COLORS = ((150, 150, 160), (255, 237, 160), (254, 198, 95), (253, 141, 60), (240, 59, 32), (189, 0, 38))
#: Open events per grid.
OPEN_EVENT_BREAKS = (0, 1, 2, 4, 8)
OPEN_EVENT_COLORS = ((40, 120, 200, 40), (255, 220, 90, 110), (255, 160, 50, 140), (240, 80, 40, 160),
                     (190, 0, 40, 180))
#: Safety index (0–100, higher is safer) per grid.
SAFETY_BREAKS = (0, 40, 60, 80)
SAFETY_COLORS = ((200, 30, 40, 170), (245, 130, 40, 150), (250, 210, 70, 120), (60, 170, 90, 90))
GRID_COLOR_BY = {"open_events": ("open_events", OPEN_EVENT_BREAKS, OPEN_EVENT_COLORS),
                 "safety": ("safety_index", SAFETY_BREAKS, SAFETY_COLORS)}
EQUIPMENT_COLORS = {"micro_fire_station": (220, 30, 30), "micro_fire_truck": (255, 90, 0),
                    "hydrant": (30, 110, 230), "extinguisher_cabinet": (150, 60, 200), "smart_alarm": (0, 170, 170)}
EQUIPMENT_RADIUS = {"micro_fire_station": 30, "micro_fire_truck": 24, "hydrant": 4, "extinguisher_cabinet": 3,
                    "smart_alarm": 2.5}
EQUIPMENT_STATUS_LINE = {"in_service": (255, 255, 255), "faulty": (255, 215, 0), "out_of_service": (0, 0, 0)}
#: Team states: the status, or ``stale`` when the last position is too old.
TEAM_COLORS = {"available": (40, 180, 80), "assigned": (30, 120, 240), "on_site": (160, 60, 220),
               "off_duty": (120, 120, 120), "stale": (200, 200, 200)}
EVENT_COLORS = {"reported": (230, 30, 30), "dispatched": (255, 130, 0), "accepted": (250, 200, 0),
                "on_site": (40, 120, 255), "resolved": (40, 170, 80), "closed": (140, 140, 140)}
#: boundary colour and width in pixels, by level
BOUNDARY_STYLE = {"district": ((110, 110, 140), 4), "street": ((240, 240, 240), 3), "community": ((0, 170, 210), 2)}

LAYER_IDS = ("boundaries", "grids", "buildings", "equipment", "routes", "teams", "events")


# -- deck.gl JSON expressions ------------------------------------------------------------------------------
def _rgba(c: Sequence[float]) -> str:
    return "[" + ", ".join(str(int(v)) for v in c) + "]"


def step_expr(field: str, breaks: Sequence[float], colors: Sequence[Sequence[float]]) -> str:
    """deck.gl expression mapping a number to the colour of the class it falls in (lower bounds).

    pydeck sends string accessors as ``@@=`` expressions; string constants go as :class:`pydeck.types.String`.
    """
    if len(breaks) != len(colors):
        raise InvalidInput(f"{len(breaks)} breaks for {len(colors)} colours", field="breaks",
                           fix="give one colour per class lower bound")
    expr = _rgba(colors[0])
    for b, c in zip(breaks[1:], colors[1:], strict=True):
        expr = f"{field} >= {b} ? {_rgba(c)} : ({expr})"
    return expr


def match_expr(field: str, mapping: Mapping[str, object], default: object) -> str:
    """deck.gl expression mapping a category to a value (colour, radius...)."""
    def lit(v: object) -> str:
        return _rgba(v) if isinstance(v, tuple | list) else json.dumps(v)
    expr = lit(default)
    for k, v in reversed(list(mapping.items())):
        expr = f"{field} == {json.dumps(k)} ? {lit(v)} : ({expr})"
    return expr


def _data(data: LayerData, what: str, kind: str,
          columns: list[str] | None) -> str | list[dict[str, Any]] | dict[str, Any]:
    """URL strings pass through; GeoDataFrames are encoded for the layer type."""
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return data
    if not isinstance(data, gpd.GeoDataFrame):
        raise InvalidInput(f"{what}: data is a {type(data).__name__}", field="data",
                           fix="pass a GeoDataFrame or the URL the layer should fetch")
    if kind == "features":
        return encode.features(data, columns, what=what)
    if kind == "points":
        return encode.points(data, columns, what=what)
    return encode.paths(data, columns, what=what)


def _present(data: LayerData, columns: list[str]) -> list[str] | None:
    if isinstance(data, gpd.GeoDataFrame):
        return [c for c in columns if c in data.columns]
    return None


# -- builders ------------------------------------------------------------------------------------------------
def boundaries_layer(data: LayerData, *, id: str = "boundaries") -> pdk.Layer:
    """District, street and community boundaries (outlines; ``level`` picks the style)."""
    cols = _present(data, ["code", "level", "name", "name_zh"])
    colors = {k: v[0] for k, v in BOUNDARY_STYLE.items()}
    widths = {k: v[1] for k, v in BOUNDARY_STYLE.items()}
    return pdk.Layer(
        "GeoJsonLayer", _data(data, id, "features", cols), id=id, pickable=True, stroked=True, filled=False,
        get_line_color=match_expr("properties.level", colors, (60, 60, 60)),
        get_line_width=match_expr("properties.level", widths, 1), line_width_min_pixels=1,
        line_width_units=S("pixels"),
    )


def grids_layer(data: LayerData, *, color_by: str = "open_events", id: str = "grids") -> pdk.Layer:
    """Grid (网格) polygons with their outline, filled by open events or by safety index."""
    if color_by not in GRID_COLOR_BY:
        raise InvalidInput(f"cannot colour grids by {color_by!r}", field="color_by",
                           fix=f"use one of {', '.join(GRID_COLOR_BY)}")
    if isinstance(data, gpd.GeoDataFrame) and GRID_COLOR_BY[color_by][0] not in data.columns:
        raise InvalidInput(f"the grids have no {GRID_COLOR_BY[color_by][0]!r} column", field="color_by",
                           fix="read them with gridmap.services.dashboard.Dashboard.grids()")
    field, breaks, colors = GRID_COLOR_BY[color_by]
    cols = _present(data, ["code", "name", "name_zh", "community_code", "residents", "open_events",
                           "safety_index", "recent_weighted"])
    return pdk.Layer(
        "GeoJsonLayer", _data(data, id, "features", cols), id=id, pickable=True, stroked=True, filled=True,
        get_fill_color=step_expr(f"properties.{field}", breaks, colors), get_line_color=[255, 255, 255, 200],
        get_line_width=4, line_width_min_pixels=1, line_width_units=S("meters"),
        update_triggers={"getFillColor": color_by},
    )


BUILDING_COLUMNS = ["code", "address", "floors", "height", "use", "grid_code", "residents", "businesses"]


def buildings_layer(data: LayerData, *, id: str = "buildings", min_zoom: int = 11, max_zoom: int = 14,
                    elevation_scale: float = 1.0) -> pdk.Layer:
    """Extruded building footprints: height from floors, colour by resident count.

    ``data`` is a GeoDataFrame of buildings with ``residents`` (and ``height`` or ``floors``), or a tile
    URL template ``.../{z}/{x}/{y}.json`` whose tiles are GeoJSON with the same properties (a deck.gl
    TileLayer: only the tiles in view are fetched; deeper zooms reuse ``max_zoom`` tiles).
    """
    color = step_expr("properties.residents", RESIDENT_BREAKS, RESIDENT_COLORS)
    common = dict(id=id, pickable=True, auto_highlight=True, highlight_color=[0, 255, 255, 200], extruded=True,
                  wireframe=False, filled=True, stroked=False, get_elevation="properties.height",
                  elevation_scale=elevation_scale, get_fill_color=color)
    if isinstance(data, str):
        if not all(s in data for s in ("{z}", "{x}", "{y}")):
            raise InvalidInput(f"{data!r} is not a tile URL template", field="data",
                               fix="give a URL with {z}, {x} and {y}, e.g. /dashboard/tiles/buildings/{z}/{x}/{y}.json")
        return pdk.Layer("TileLayer", data, min_zoom=min_zoom, max_zoom=max_zoom, max_requests=32,
                         refinement_strategy=S("no-overlap"), **common)
    if isinstance(data, gpd.GeoDataFrame):
        data = data.copy()
        if "height" not in data.columns:
            if "height_m" in data.columns:
                data["height"] = data["height_m"].fillna(data.get("floors", 1) * 3.0)
            elif "floors" in data.columns:
                data["height"] = data["floors"] * 3.0
            else:
                raise InvalidInput("buildings have neither height, height_m nor floors", field="buildings",
                                   fix="read them with gm.connect().layer('buildings')")
        if "residents" not in data.columns:
            raise InvalidInput("buildings have no 'residents' count", field="buildings.residents",
                               fix="use gridmap.services.dashboard.Dashboard.buildings() or add the counts")
    cols = _present(data, BUILDING_COLUMNS)
    return pdk.Layer("GeoJsonLayer", _data(data, id, "features", cols), **common)


def equipment_layer(data: LayerData, *, id: str = "equipment") -> pdk.Layer:
    """Fire equipment: colour and size by kind, ring by status (white in service, yellow faulty, black out)."""
    cols = _present(data, ["code", "kind", "status", "name", "last_inspected"])
    return pdk.Layer(
        "ScatterplotLayer", _data(data, id, "points", cols), id=id, pickable=True, stroked=True, filled=True,
        get_position="position", get_fill_color=match_expr("kind", EQUIPMENT_COLORS, (128, 128, 128)),
        get_radius=match_expr("kind", EQUIPMENT_RADIUS, 3), radius_min_pixels=1.5, radius_max_pixels=12,
        get_line_color=match_expr("status", EQUIPMENT_STATUS_LINE, (0, 0, 0)), line_width_units=S("meters"),
        get_line_width=1.5, line_width_min_pixels=0,
    )


def teams_layer(data: LayerData, *, id: str = "teams") -> pdk.Layer:
    """Teams at their last position, coloured by state (available / assigned / on site / off duty / stale)."""
    cols = _present(data, ["code", "name", "kind", "status", "state", "position_at", "age_s", "event_id",
                           "assignment_status"])
    return pdk.Layer(
        "ScatterplotLayer", _data(data, id, "points", cols), id=id, pickable=True, stroked=True, filled=True,
        get_position="position", get_fill_color=match_expr("state", TEAM_COLORS, (100, 100, 100)),
        get_line_color=[20, 20, 20], get_radius=40, radius_min_pixels=5, radius_max_pixels=16,
        line_width_min_pixels=2,
    )


def events_layer(data: LayerData, *, id: str = "events") -> pdk.Layer:
    """Events: colour by state, size by severity (1–4); overdue ones get a thick black ring."""
    cols = _present(data, ["id", "code", "category", "category_zh", "severity", "status", "title", "reported_at",
                           "age_s", "overdue", "team", "grid_code"])
    return pdk.Layer(
        "ScatterplotLayer", _data(data, id, "points", cols), id=id, pickable=True, stroked=True, filled=True,
        get_position="position", get_fill_color=match_expr("status", EVENT_COLORS, (128, 128, 128)),
        get_radius="20 + 15 * severity", radius_min_pixels=4, radius_max_pixels=20,
        get_line_color="overdue ? [0, 0, 0] : [255, 255, 255]", get_line_width="overdue ? 3 : 1",
        line_width_units=S("pixels"),
    )


def routes_layer(data: LayerData, *, id: str = "routes", color: Sequence[int] = (0, 90, 255, 220),
                 width_px: float = 4) -> pdk.Layer:
    """Routes of active dispatches (the team's road path to the event)."""
    cols = _present(data, ["assignment_id", "event_id", "team", "status", "eta_s", "distance_m", "severity"])
    return pdk.Layer(
        "PathLayer", _data(data, id, "paths", cols), id=id, pickable=True, get_path="path",
        get_color=list(color), get_width=width_px, width_units=S("pixels"), cap_rounded=True, joint_rounded=True,
    )


def selection_layer(data: LayerData | None = None, *, id: str = "selection") -> pdk.Layer:
    """What the operator selected: the route of a drill-down (nearest responder, a team's route)."""
    return pdk.Layer(
        "PathLayer", [] if data is None else _data(data, id, "paths", None), id=id, pickable=False,
        get_path="path", get_color=[255, 0, 200, 240], get_width=7, width_units=S("pixels"), cap_rounded=True,
        joint_rounded=True,
    )
