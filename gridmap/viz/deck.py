"""The deck: layers + a view, no basemap (``map_provider=None``), and offline HTML for notebooks.

deck.gl comes from the bundle that ships inside the pydeck wheel (:func:`bundle_path`); nothing is
fetched from a CDN. :func:`to_html` writes a self-contained page (the bundle inlined) with every
external ``<script>``/``<link>`` tag of pydeck's template removed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pydeck as pdk

from gridmap.errors import InvalidInput
from gridmap.viz import layers as L

BACKGROUND = "#0b1a2a"
_EXTERNAL_TAG = re.compile(
    r"<script[^>]*\bsrc=['\"]?(?:https?:)?//[^>]*>\s*</script>|<link[^>]*\bhref=['\"]?(?:https?:)?//[^>]*>",
    re.IGNORECASE)
_EXTERNAL_REF = re.compile(r"<(?:script|link|img|iframe)[^>]*\b(?:src|href)\s*=\s*['\"]?(?:https?:)?//", re.IGNORECASE)


def bundle_path() -> Path:
    """The deck.gl bundle (``@deck.gl/jupyter-widget``) inside the installed pydeck wheel."""
    p = Path(pdk.__file__).resolve().parent / "nbextension" / "static" / "index.js"
    if not p.is_file():
        raise InvalidInput(f"the pydeck wheel has no deck.gl bundle at {p}", field="pydeck",
                           fix="reinstall pydeck (pip install --force-reinstall 'pydeck>=0.9')")
    return p


def fit_view(bbox: tuple[float, float, float, float], *, width: int = 1280, height: int = 800,
             pitch: float = 45.0, bearing: float = 0.0, padding: float = 0.05) -> pdk.ViewState:
    """A view that shows the whole bbox (Web Mercator zoom, like deck.gl's ``fitBounds``)."""
    minx, miny, maxx, maxy = bbox
    if not (minx < maxx and miny < maxy):
        raise InvalidInput(f"bbox {bbox} is empty", field="bbox", fix="give (min_lon, min_lat, max_lon, max_lat)")

    def merc_y(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    dx = (maxx - minx) / 360.0
    dy = (merc_y(maxy) - merc_y(miny)) / (2 * math.pi)
    usable = 1.0 - 2 * padding
    zoom = min(math.log2(width * usable / 512.0 / dx), math.log2(height * usable / 512.0 / dy))
    return pdk.ViewState(longitude=(minx + maxx) / 2, latitude=(miny + maxy) / 2, zoom=round(zoom, 3),
                         pitch=pitch, bearing=bearing, max_pitch=70)


def deck(layers: list[pdk.Layer], view: pdk.ViewState | None = None, *,
         bbox: tuple[float, float, float, float] | None = None,
         tooltip: dict | bool = True) -> pdk.Deck:
    """A pydeck Deck of ``layers`` with no basemap (works offline). ``bbox`` fits the view when no view is given."""
    if view is None:
        if bbox is None:
            raise InvalidInput("no view and no bbox", field="view", fix="pass view=fit_view(bbox) or bbox=(...)")
        view = fit_view(bbox)
    return pdk.Deck(layers=layers, initial_view_state=view, map_provider=None, map_style=None,
                    views=[pdk.View(type="MapView", controller=True)], tooltip=tooltip)


def dashboard_deck(urls: dict[str, str], bbox: tuple[float, float, float, float], *,
                   grid_color: str = "open_events", pitch: float = 45.0) -> pdk.Deck:
    """The command-centre deck: every layer fetches its data from ``urls`` (keys: :data:`layers.LAYER_IDS`)."""
    missing = [k for k in L.LAYER_IDS if k not in urls]
    if missing:
        raise InvalidInput(f"no URL for layer(s) {', '.join(missing)}", field="urls", fix="give one per layer")
    layers = [
        L.grids_layer(urls["grids"], color_by=grid_color),
        L.boundaries_layer(urls["boundaries"]),
        L.buildings_layer(urls["buildings"]),
        L.equipment_layer(urls["equipment"]),
        L.routes_layer(urls["routes"]),
        L.teams_layer(urls["teams"]),
        L.events_layer(urls["events"]),
        L.selection_layer(),
    ]
    return deck(layers, fit_view(bbox, pitch=pitch), tooltip=False)


def strip_external(html: str) -> str:
    """Remove every ``<script src=//...>`` and ``<link href=//...>`` (CDN scripts, stylesheets, fonts)."""
    return _EXTERNAL_TAG.sub("", html)


def has_external_refs(html: str) -> bool:
    """True if a ``<script>``, ``<link>``, ``<img>`` or ``<iframe>`` tag points outside the page's own host."""
    return _EXTERNAL_REF.search(html) is not None


def to_html(d: pdk.Deck, path: str | Path | None = None) -> str:
    """Self-contained offline HTML of a deck (deck.gl inlined from the pydeck wheel, no external tags).

    In a notebook, ``IPython.display.HTML(to_html(deck))`` or open the written file in a browser.
    """
    html = d.to_html(as_string=True, offline=True, notebook_display=False)
    # pydeck's template also links the widget stylesheet from a CDN and mapbox/bootstrap assets
    html = strip_external(html)
    html = re.sub(r"<link[^>]*href=\S*cdn[^>]*>", "", html)
    if has_external_refs(html):
        raise InvalidInput("the deck HTML still references an external URL", field="html",
                           fix="report this: pydeck's template changed")
    if path is not None:
        Path(path).write_text(html, encoding="utf-8")
    return html
