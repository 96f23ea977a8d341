"""The screens of the levels of command: a district's (or street's, community's) areas side by side, and a
unit's inbox. Like the command-centre page (:mod:`gridmap.viz.page`), each is an HTML shell around a config;
the data come from the app (``static/levels.js``, ``static/unit.js``), and nothing outside its host is loaded.
"""

from __future__ import annotations

import html
import json
from typing import Any

from gridmap.viz.page import STATIC_DIR


def _render(template_name: str, config: dict[str, Any], *, static_url: str, title: str, user: str,
            logout_url: str) -> str:
    cfg_json = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")  # no value can close the script tag
    template = (STATIC_DIR / template_name).read_text(encoding="utf-8")
    return (template.replace("{{title}}", html.escape(title))
            .replace("{{static_url}}", html.escape(static_url.rstrip("/"), quote=True))
            .replace("{{user}}", html.escape(user))
            .replace("{{logout_url}}", html.escape(logout_url, quote=True))
            .replace("{{config}}", cfg_json))


def levels_html(config: dict[str, Any], *, static_url: str, user: str, logout_url: str,
                title: str = "gridmap 区级指挥 levels of command") -> str:
    """The overview page: ``config`` says where its data are (``static/levels.js``)."""
    return _render("levels.html", config, static_url=static_url, title=title, user=user, logout_url=logout_url)


def unit_html(config: dict[str, Any], *, static_url: str, user: str, logout_url: str,
              title: str = "gridmap 单位待办 unit inbox") -> str:
    """A unit's inbox page (``static/unit.js``)."""
    return _render("unit.html", config, static_url=static_url, title=title, user=user, logout_url=logout_url)
