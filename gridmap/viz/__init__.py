"""pydeck layers and the command-centre deck, for the dashboard page and for notebooks.

Takes GeoDataFrames (or the URLs the page fetches), never opens the database.

>>> import gridmap as gm, gridmap.viz as gv                                           # doctest: +SKIP
>>> from gridmap.services.dashboard import Dashboard                                  # doctest: +SKIP
>>> dash = Dashboard(gm.connect().engine)                                              # doctest: +SKIP
>>> d = gv.deck([gv.grids_layer(dash.grids(), color_by="safety"),                      # doctest: +SKIP
...              gv.buildings_layer(dash.buildings(area="330106900001"))], bbox=dash.extent())
>>> gv.to_html(d, "map.html")          # offline: deck.gl inlined from the pydeck wheel   # doctest: +SKIP
"""

from gridmap.viz.deck import (
    bundle_path,
    dashboard_deck,
    deck,
    fit_view,
    has_external_refs,
    strip_external,
    to_html,
)
from gridmap.viz.encode import check_crs, dumps, features, line_coords, paths, points
from gridmap.viz.layers import (
    LAYER_IDS,
    boundaries_layer,
    buildings_layer,
    equipment_layer,
    events_layer,
    grids_layer,
    match_expr,
    routes_layer,
    selection_layer,
    step_expr,
    teams_layer,
)
from gridmap.viz.page import TOOLTIPS, dashboard_html, login_html

__all__ = [
    "LAYER_IDS",
    "TOOLTIPS",
    "boundaries_layer",
    "buildings_layer",
    "bundle_path",
    "check_crs",
    "dashboard_deck",
    "dashboard_html",
    "deck",
    "dumps",
    "equipment_layer",
    "events_layer",
    "features",
    "fit_view",
    "grids_layer",
    "has_external_refs",
    "line_coords",
    "login_html",
    "match_expr",
    "paths",
    "points",
    "routes_layer",
    "selection_layer",
    "step_expr",
    "strip_external",
    "teams_layer",
    "to_html",
]
