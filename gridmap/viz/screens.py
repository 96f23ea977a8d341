"""The screens of the levels of command: a district's (or street's, community's) areas side by side, and a
unit's inbox. Like the command-centre page (:mod:`gridmap.viz.page`), each is an HTML shell around a config;
the data come from the app (``static/levels.js``, ``static/unit.js``), and nothing outside its host is loaded.
"""

from __future__ import annotations

import html
from typing import Any

from gridmap.viz.page import render, script_json


def _render(script: str, header: str, main: str, config: dict[str, Any], *, static_url: str, title: str, user: str,
            logout_url: str) -> str:
    """``static/screen.html`` (the screens' one shell, with ``static/screen.js``) around one screen's parts."""
    parts = {"header": header, "main": main, "script": script, "title": html.escape(title),
             "static_url": html.escape(static_url.rstrip("/"), quote=True), "user": html.escape(user),
             "logout_url": html.escape(logout_url, quote=True), "config": script_json(config)}
    return render("screen.html", parts)


_LEVELS_MAIN = '<main id="gm-areas" aria-live="polite"></main>'
_UNIT_MAIN = """<main>
    <table id="gm-inbox"><thead><tr><th>事件 event</th><th>类别 category</th><th>状态 status</th><th>层级 rung</th>
      <th>到达 entered</th><th>时限 due</th><th>剩余 left</th><th>承办 taken by</th><th>调解 case</th>
      <th>操作 act</th></tr></thead>
      <tbody id="gm-inbox-body"></tbody></table>
    <h2 class="gm-h2">本单位统计 figures, last 365 days</h2>
    <table id="gm-unit-figures"><thead><tr><th>层级 rung</th><th>到达 taken in</th><th>在办 open</th>
      <th>办结 settled</th><th>上报 escalated</th><th>转诉讼 referred</th><th>退回 returned</th><th>超时 overdue</th>
      <th>解决率 resolution</th><th>办结用时 to settle p50 / p90 (min)</th></tr></thead>
      <tbody id="gm-unit-figures-body"></tbody></table>
    <p id="gm-unit-cases"></p>
  </main>"""


def levels_html(config: dict[str, Any], *, static_url: str, user: str, logout_url: str,
                title: str = "gridmap 区级指挥 levels of command") -> str:
    """The overview page: ``config`` says where its data are (``static/levels.js``)."""
    return _render("levels.js", '<div id="gm-crumbs"></div>', _LEVELS_MAIN, config, static_url=static_url,
                   title=title, user=user, logout_url=logout_url)


def unit_html(config: dict[str, Any], *, static_url: str, user: str, logout_url: str,
              title: str = "gridmap 单位待办 unit inbox") -> str:
    """A unit's inbox page (``static/unit.js``)."""
    return _render("unit.js", '<div id="gm-unit-name"></div>', _UNIT_MAIN, config, static_url=static_url,
                   title=title, user=user, logout_url=logout_url)
