"""The command-centre page: one HTML shell around the pydeck deck, with a side panel and live refresh;
and its login form.

The page holds no data: it loads the deck (pydeck JSON) and every layer's data from the app, per
viewport or as vector tiles. Scripts and styles are the app's own files (``static/``) and the deck.gl
bundle of the pydeck wheel, served by the app; the page references nothing outside its own host.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridmap.viz import layers as L

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Hover text per layer; ``{field}`` is read from the picked object (or its ``properties``).
TOOLTIPS = {
    "buildings": "<b>{address}</b><br>楼栋 building {code} · {floors} floors · {use}<br>"
                 "居民 residents: <b class='gm-residents'>{residents}</b> · 商户 businesses: {businesses}",
    "grids": "<b>网格 grid {code}</b> {name_zh}<br>open events: {open_events} · safety index: {safety_index}"
             "<br>residents: {residents}",
    "boundaries": "<b>{name_zh}</b> {name} ({level})",
    "equipment": "<b>{kind}</b> {name}<br>{code} · {status}",
    "teams": "<b>{name}</b> ({code})<br>{kind} · <b>{state}</b>",
    "events": "<b>{category_zh}</b> {category} · severity {severity}<br>{status} · {title}",
    "routes": "team {team} → event {event_id}<br>ETA {eta_s} s · {distance_m} m",
}

LEGEND = {
    "buildings (residents)": [[f"≥ {b}", list(c)] for b, c in zip(L.RESIDENT_BREAKS, L.RESIDENT_COLORS, strict=True)],
    "teams": [[k, list(v)] for k, v in L.TEAM_COLORS.items()],
    "events": [[k, list(v)] for k, v in L.EVENT_COLORS.items() if k != "closed"],
    "equipment": [[k, list(v)] for k, v in L.EQUIPMENT_COLORS.items()],
}


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{{name}}`` replaced by ``values[name]`` (already escaped by the caller), in one
    pass: a value that itself contains ``{{...}}`` (a user's name) is never substituted again. Placeholders
    without a value stay as they are."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values.get(m.group(1), m.group(0)), template)


def render(name: str, values: Mapping[str, str]) -> str:
    """``static/<name>`` filled with ``values``; its ``{{head}}`` is ``static/_head.html`` (the screens' one
    ``<head>``: charset, viewport, title, the shared stylesheet), filled with the same values first. The page
    title is ``values["page_title"]``, else ``values["title"]``."""
    head = fill((STATIC_DIR / "_head.html").read_text(encoding="utf-8"), {"page_title": values.get("title", ""),
                                                                           **values})
    return fill((STATIC_DIR / name).read_text(encoding="utf-8"), {**values, "head": head})


def script_json(obj: Any) -> str:
    """JSON for a ``<script type="application/json">``: "</" escaped, so that no value can close the tag."""
    return json.dumps(obj, ensure_ascii=False).replace("</", "<\\/")


def dashboard_html(config: dict, *, bundle_url: str, static_url: str, title: str = "gridmap 指挥中心",
                   user: str = "", logout_url: str = "") -> str:
    """The page. ``config`` tells the script where the deck and the data are (see ``static/dashboard.js``);
    ``user`` is the signed-in account as shown beside the logout button (posting to ``logout_url``)."""
    cfg = {"tooltips": TOOLTIPS, "legend": LEGEND, **config}
    return render("dashboard.html", {"title": html.escape(title), "bundle_url": html.escape(bundle_url, quote=True),
                           "static_url": html.escape(static_url.rstrip("/"), quote=True), "user": html.escape(user),
                           "logout_url": html.escape(logout_url, quote=True), "config": script_json(cfg)})


def login_html(*, action: str, next_url: str, static_url: str, error: str | None = None,
               notice: str | None = None, title: str = "gridmap 指挥中心") -> str:
    """The login form of the command-centre screen (same stylesheet; its script is ``static/login.js``).

    ``error`` is shown under the form (wrong credentials, a role without access); ``notice`` above it
    (e.g. the session has expired). Every value is HTML-escaped.
    """
    values = {"title": html.escape(title), "page_title": f"{html.escape(title)} · 登录 log in", "action": html.escape(action, quote=True),
              "next": html.escape(next_url, quote=True), "static_url": html.escape(static_url.rstrip("/"), quote=True),
              "error": html.escape(error or ""), "error_hidden": "" if error else "hidden",
              "notice": html.escape(notice or ""), "notice_hidden": "" if notice else "hidden"}
    return render("login.html", values)


def static_file(name: str) -> Path:
    """A file of the page (``dashboard.js``, ``dashboard.css``); names outside ``static/`` are refused."""
    p = (STATIC_DIR / name).resolve()
    if p.parent != STATIC_DIR or not p.is_file():
        raise FileNotFoundError(name)
    return p
