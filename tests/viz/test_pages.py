"""The HTML shells of the screens (dashboard, login, levels, unit inbox, field app): every value escaped, the
config unable to close its script tag, and each placeholder filled once (a value is never read as a template)."""

from __future__ import annotations

import re

from gridmap.viz.field_page import receipt_html
from gridmap.viz.page import dashboard_html, fill, login_html
from gridmap.viz.screens import levels_html, unit_html

NASTY = '{{config}}<script>alert(1)</script>"'


def _pages() -> dict[str, str]:
    cfg = {"x": "</script><script>alert(2)</script>"}
    return {
        "dashboard": dashboard_html(cfg, bundle_url="/b.js", static_url="/s", user=NASTY, logout_url="/o"),
        "levels": levels_html(cfg, static_url="/s", user=NASTY, logout_url="/o"),
        "unit": unit_html(cfg, static_url="/s", user=NASTY, logout_url="/o"),
        "login": login_html(action="/l", next_url=NASTY, static_url="/s", error=NASTY, notice=NASTY),
        "receipt": receipt_html(NASTY),
    }


def test_values_are_escaped_and_never_filled_twice():
    for name, page in _pages().items():
        assert "<script>alert(1)" not in page, name
        assert "&lt;script&gt;alert(1)" in page, name
        assert "{{config}}&lt;script&gt;" in page, name  # the user's text, kept as text, not replaced by the config
        assert not re.search(r"\{\{(?!config\}\}&lt;)\w+\}\}", page), (name, re.findall(r"\{\{\w+\}\}", page))


def test_the_config_cannot_close_its_script_tag():
    for name in ("dashboard", "levels", "unit"):
        page = _pages()[name]
        config = page.split('id="gm-config">', 1)[1].split("</script>", 1)[0]
        assert "<\\/script>" in config, name


def test_fill_is_one_pass_and_keeps_unknown_placeholders():
    assert fill("{{a}} {{b}} {{c}}", {"a": "{{b}}", "b": "B"}) == "{{b}} B {{c}}"
