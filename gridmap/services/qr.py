"""The resident's QR page (余安码): the sheet of codes a community prints, the report a scan leads to, and the
receipt that follows it.

* **Codes**: every business and building has one; it encodes ``<public URL>/q/<place code>``
  (``GRIDMAP_PUBLIC_URL``). :func:`sheet` lays a community's codes out on A4 pages (PNG or PDF, composed with
  Pillow; the codes themselves are made by segno, a maintained pure-Python QR library).
* **Report**: the page sends category, what happened, an optional photo and an optional phone for a call-back.
  It enters through the normal intake (:meth:`EventService.intake`) as channel ``qr_code`` at the place's
  location, under an internal principal of the public channel (role ``intake``, name ``public:qr_code``): no
  account, no session. The phone is the reporter's personal data: stored apart (``event_reporters``) like every
  reporter's, shown only to operators and admins, never shown back on the page or the receipt. A photo is
  re-encoded without any location (:mod:`gridmap.services.photos`).
* **Throttle**: reports (and receipt answers) count per device (a random cookie) and per client address in a
  fixed window (``report_throttle``, shared by every API process): beyond ``per_device`` or ``per_address`` the
  page gets 429 with Retry-After. A client without the cookie is still counted by its address.
* **Receipt**: an unguessable link (192 random bits; only its SHA-256 is stored) shows the status and nothing
  else: reported → dispatched → on site → resolved, with the times; no staff names, no team, no positions,
  no other report. Once resolved it asks "is it fixed? 解决了吗?"; "no" reopens the event
  (:meth:`EventService.reopen_for_reporter`), which is offered to the nearest team again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import segno
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from gridmap.services import people
from gridmap.services.auth import Principal
from gridmap.services.events import EventService, Location, Report
from gridmap.services.photos import PhotoService, process
from gridmap.storage import areas as areas_sql
from gridmap.storage import events as events_sql
from gridmap.storage import receipts as sql
from gridmap.storage import registry as registry_sql

#: the public channel's internal principal: what the audit trail names as the reporter's account
PUBLIC = Principal(user_id=0, username="public:qr_code", role="intake")
STEPS = (("reported", "已上报"), ("dispatched", "已派单"), ("on_site", "已到场"), ("resolved", "已处置"))
STEP_OF = {"reported": 0, "dispatched": 1, "accepted": 1, "on_site": 2, "resolved": 3, "closed": 3}
PHONE_RE = re.compile(r"^\+?[0-9][0-9 \-]{4,19}$")
FONT_PATHS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def place_url(base_url: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/q/{code}"


def qr_image(url: str, *, scale: int = 6) -> Image.Image:
    """The QR code of ``url`` as a Pillow image (error correction M, the quiet zone included)."""
    buf = io.BytesIO()
    segno.make(url, error="m").save(buf, kind="png", scale=scale, border=4)
    buf.seek(0)
    return Image.open(buf).convert("L")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for p in FONT_PATHS:
        if Path(p).exists():
            return ImageFont.truetype(p, size)
    return ImageFont.load_default()


@dataclass(frozen=True)
class Sheet:
    pages: list[Image.Image]
    count: int
    community: str
    urls: list[str]


def sheet(engine: Engine, community: str, base_url: str, *, limit: int = 2000, columns: int = 4,
          rows: int = 5) -> Sheet:
    """A community's QR codes on A4 pages at 150 dpi (1240 x 1754 px), ``columns`` x ``rows`` per page, each with
    the place's name, code and address under it."""
    with Session(engine) as s, s.begin():
        conn = s.connection()
        com = areas_sql.community(conn, community)
        if com is None:
            raise NotFound(f"no current community {community!r}", field="--community",
                           fix="give a community's area code, e.g. 330106900001 (gridmap export communities ...)")
        places = registry_sql.places_in_community(conn, community, limit)
    if not places:
        raise NotFound(f"community {community} has no businesses or buildings", field="--community",
                       fix="load the registry first (gridmap sample load)")
    page_w, page_h, margin = 1240, 1754, 60
    cell_w, cell_h = (page_w - 2 * margin) // columns, (page_h - 2 * margin - 60) // rows
    title, small = _font(30), _font(16)
    pages: list[Image.Image] = []
    urls: list[str] = []
    per_page = columns * rows
    for start in range(0, len(places), per_page):
        page = Image.new("L", (page_w, page_h), 255)
        draw = ImageDraw.Draw(page)
        draw.text((margin, margin - 20), f"余安码 {com['name_zh'] or com['name']} ({community}) · "
                                         f"{start // per_page + 1}/{math.ceil(len(places) / per_page)}", font=title, fill=0)
        for i, pl in enumerate(places[start:start + per_page]):
            url = place_url(base_url, pl["code"])
            urls.append(url)
            img = qr_image(url, scale=5)
            side = min(cell_w - 20, cell_h - 70)
            img = img.resize((side, side), Image.Resampling.NEAREST)
            x = margin + (i % columns) * cell_w + (cell_w - side) // 2
            y = margin + 40 + (i // columns) * cell_h
            page.paste(img, (x, y))
            label = f"{pl['name'] or pl['code']}"[:18]
            draw.text((margin + (i % columns) * cell_w + 10, y + side + 2), label, font=small, fill=0)
            draw.text((margin + (i % columns) * cell_w + 10, y + side + 22), f"{pl['code']} {(pl['address'] or '')[:14]}",
                      font=small, fill=0)
        pages.append(page)
    return Sheet(pages, len(places), community, urls)


def write_sheet(sh: Sheet, out: Path) -> Path:
    """Save a sheet: PDF (all pages) or PNG (one file per page: name.png, name-2.png ...)."""
    suffix = out.suffix.lower()
    if suffix == ".pdf":
        first, *rest = sh.pages  # grayscale (L): a third of RGB
        first.save(out, "PDF", resolution=150, save_all=True, append_images=rest)
        return out
    if suffix != ".png":
        raise InvalidInput(f"{out.name}: unknown sheet format {suffix!r}", field="--out", fix="name a .pdf or .png file")
    for i, page in enumerate(sh.pages):
        page.save(out if i == 0 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}"), "PNG", optimize=True)
    return out


# -- the resident's page -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    per_device: int = 5
    per_address: int = 30
    window_s: int = 3600


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ResidentService:
    def __init__(self, engine: Engine, events: EventService, photos: PhotoService, clock: Callable[[], dt.datetime],
                 *, limits: Limits | None = None) -> None:
        self.engine = engine
        self.events = events
        self.photos = photos
        self.clock = clock
        self.limits = limits or Limits()

    def place(self, session: Session, code: str) -> dict[str, Any]:
        """What the page shows: the place (name, kind, address) and the categories to choose from."""
        pl = people.place(session, code, self.clock())
        with session.begin():
            cats = events_sql.categories(session.connection())
        return {"code": pl["code"], "kind": pl["kind"], "name": pl["name"], "place_kind": pl["place_kind"],
                "address": pl["address"],
                "categories": [{"code": c["code"], "name": c["name"], "name_zh": c["name_zh"]} for c in cats]}

    def _throttle(self, session: Session, device: str | None, address: str | None) -> None:
        """Count one report against the device and the address; 429 when either is over its limit."""
        now, lim = self.clock(), self.limits
        keys = [(f"qr:dev:{device}", lim.per_device)] if device else []
        if address:
            keys.append((f"qr:addr:{address}", lim.per_address))
        worst: dt.datetime | None = None
        with session.begin():
            conn = session.connection()
            for key, limit in keys:
                n, start = sql.count(conn, key, now, lim.window_s)
                if n > limit:
                    end = start + dt.timedelta(seconds=lim.window_s)
                    worst = end if worst is None or end > worst else worst
            if secrets.randbelow(100) == 0:
                sql.purge_throttle(conn, now, lim.window_s)
        if worst is not None:
            wait = max(1, math.ceil((worst - now).total_seconds()))
            raise TooManyRequests(f"too many reports from this phone or network: try again in {wait} s",
                                  field="report", retry_after=wait,
                                  fix="for an emergency call 110 / 119 / 120; otherwise wait, or call 12345")

    def report(self, session: Session, code: str, *, category: str, description: str | None, phone: str | None,
               photo: bytes | None, device: str | None, address: str | None, max_photo_bytes: int) -> dict[str, Any]:
        """A resident's report from a place's page: throttled, then the normal intake; returns the receipt's token."""
        if phone:
            phone = phone.strip()
            if not PHONE_RE.match(phone):
                raise InvalidInput("the phone number is not a phone number", field="phone",
                                   fix="leave it empty, or give digits only, e.g. 13812345678")
        self._throttle(session, device, address)
        proc = process(photo, max_bytes=max_photo_bytes, keep_position=lambda lon, lat: False) if photo else None
        report = Report(channel="qr_code", external_id=f"qr-{uuid.uuid4().hex}", category=category,
                        location=Location(place_code=code), description=description or None,
                        reporter_phone=phone or None)
        result = self.events.intake(session, PUBLIC, report)
        token = secrets.token_urlsafe(24)
        now = self.clock()
        event_id = result.event["id"]
        with session.begin():
            conn = session.connection()
            sql.insert(conn, _hash(token), event_id, now)
            if proc is not None:
                self.photos.add_resident_photo(conn, event_id, proc, now)
        return {"token": token, "event_code": result.event["code"], "receipt": f"/r/{token}"}

    def _receipt(self, session: Session, token: str, *, lock: bool = False) -> RowMapping:
        if not re.fullmatch(r"[A-Za-z0-9_\-]{20,64}", token or ""):
            raise NotFound("no such receipt", field="token", fix="open the link you were given after reporting")
        row = sql.find(session.connection(), _hash(token), lock=lock)
        if row is None:
            raise NotFound("no such receipt", field="token", fix="open the link you were given after reporting")
        return row

    def status(self, session: Session, token: str) -> dict[str, Any]:
        """What a receipt shows: the status, the steps with their times, the question once resolved."""
        with session.begin():
            r = self._receipt(session, token)
        step = STEP_OF.get(r["status"], 0)
        times = (r["reported_at"], r["dispatched_at"], r["on_site_at"], r["resolved_at"] or r["closed_at"])
        return {
            "code": r["code"], "category": r["category"], "category_name": r["category_name"],
            "category_name_zh": r["category_name_zh"], "place_code": r["place_code"],
            "status": STEPS[step][0], "status_zh": STEPS[step][1], "step": step,
            "steps": [{"key": k, "zh": zh, "done": i <= step, "at": times[i] if i <= step else None}
                      for i, (k, zh) in enumerate(STEPS)],
            "merged": r["duplicate_of"] is not None,
            "ask_fixed": step == 3 and r["answered_at"] is None,
            "answered": None if r["answered_at"] is None else {"fixed": r["fixed"], "at": r["answered_at"]},
        }

    def answer(self, session: Session, token: str, fixed: bool, *, device: str | None,
               address: str | None) -> dict[str, Any]:
        """The resident's answer to "is it fixed?": yes is recorded; no reopens the event (offered again)."""
        self._throttle(session, device, address)
        with session.begin():
            r = self._receipt(session, token)
        if STEP_OF.get(r["status"], 0) != 3:
            raise Conflict("the report is not marked resolved yet", field="fixed", fix="wait until it is resolved")
        if r["answered_at"] is not None:
            raise Conflict("this receipt has been answered already", field="fixed",
                           fix="if the problem came back, report it again from the place's code")
        now = self.clock()
        if fixed:
            with session.begin():
                sql.answer(session.connection(), _hash(token), True, now)
            return {"fixed": True, "reopened": False, **self.status(session, token)}

        def mark(conn: Any) -> None:
            sql.answer(conn, _hash(token), False, now)

        self.events.reopen_for_reporter(session, r["event_id"], actor="resident (QR receipt)",
                                        note="居民反馈未解决 the reporter says it is not fixed", within=mark)
        with session.begin():  # a new resolve may be answered again
            sql.reset_answer(session.connection(), r["event_id"])
        return {"fixed": False, "reopened": True, **self.status(session, token)}
