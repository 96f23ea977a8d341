"""The field app's and the resident page's files: the shell pages, their scripts and styles, the service worker
(``static/field/``), and the version that names the service worker's cache.

The version is a hash of every file of the app shell: any change to a file gives the cache a new name, so a phone
never runs an old script against a new API (TicketsCAD's warning: a stale cached app is invisible and cannot be
fixed by phone). Nothing here reads the database.
"""

from __future__ import annotations

import hashlib
import html
from functools import lru_cache
from pathlib import Path
from typing import Any

from gridmap.viz.page import fill, script_json

FIELD_DIR = Path(__file__).resolve().parent / "static" / "field"
#: the app shell: what the service worker precaches (besides the page itself and the manifest)
SHELL = ("app.js", "map.js", "queue.js", "feed.js", "i18n.js", "app.css", "icon-192.png", "icon-512.png")
MEDIA = {"js": "text/javascript", "css": "text/css", "html": "text/html", "png": "image/png",
         "svg": "image/svg+xml", "webmanifest": "application/manifest+json", "json": "application/json"}


def field_file(name: str) -> Path:
    """A file of the app (names outside ``static/field`` are refused)."""
    p = (FIELD_DIR / name).resolve()
    if p.parent != FIELD_DIR or not p.is_file():
        raise FileNotFoundError(name)
    return p


def media_type(path: Path) -> str:
    return MEDIA.get(path.suffix[1:], "application/octet-stream")


@lru_cache(maxsize=1)
def version() -> str:
    """A hash of the shell's files (and of the pages and the service worker): the cache's name follows it."""
    h = hashlib.sha256()
    for name in (*SHELL, "index.html", "sw.js", "manifest.webmanifest"):
        h.update(name.encode())
        h.update((FIELD_DIR / name).read_bytes())
    return h.hexdigest()[:12]


def shell_urls(base: str = "/field") -> list[str]:
    """What the service worker precaches, by path (its cache's name carries the version)."""
    return [f"{base}/", f"{base}/manifest.webmanifest", *(f"{base}/static/{n}" for n in SHELL)]


def index_html(base: str = "/field") -> str:
    cfg = {"base": base, "version": version(), "static": f"{base}/static", "sw": f"{base}/sw.js"}
    return _fill("index.html", version=version(), static=f"{base}/static", config=script_json(cfg))


def service_worker() -> str:
    return _fill("sw.js", version=version(), shell=script_json(shell_urls()))


def resident_html(place: dict[str, Any], *, static: str = "/field/static") -> str:
    cats = "".join(f'<option value="{html.escape(c["code"], quote=True)}">{html.escape(c["name_zh"])} '
                   f'{html.escape(c["name"])}</option>' for c in place["categories"])
    kind = {"business": "商户 business", "building": "楼栋 building"}.get(place["kind"], place["kind"])
    return _fill("resident.html", static=static, version=version(), code=html.escape(place["code"], quote=True),
                 name=html.escape(place["name"] or place["code"]), kind=html.escape(kind),
                 address=html.escape(place["address"] or ""), categories=cats)


def receipt_html(token: str, *, static: str = "/field/static") -> str:
    return _fill("receipt.html", static=static, version=version(), token=html.escape(token, quote=True))


def _fill(template: str, **values: str) -> str:
    return fill((FIELD_DIR / template).read_text(encoding="utf-8"), values)
