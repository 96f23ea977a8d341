"""Photos as evidence: checked, decoded and re-encoded, stored once by their checksum, linked to the action they
prove, and shown only to the roles with the right to see an event's evidence.

* **Checked**: at most ``max_bytes`` (8 MB) as sent (413 beyond), a JPEG, PNG or WebP that Pillow can decode
  fully (422 otherwise: a HEIC photo, a truncated file, a decompression bomb over 40 megapixels, a renamed PDF).
  The type is what the bytes are, never what the client says.
* **Re-encoded** with Pillow as a JPEG (quality 85, at most 2048 px on the long side) after turning it upright by
  its EXIF orientation, plus a 320 px thumbnail. Re-encoding drops anything hidden in the file and every metadata
  tag: camera make and serial number, the owner's name, the time, thumbnails of the uncropped picture.
* **Location** (the EXIF GPS position) is the one tag that may be kept, by this rule: only from a team member's
  photo (a grid worker, volunteer, operator or admin taking it as part of the work) and only when the point lies
  inside the event's street. A resident's photo never keeps it (where a resident stood may be their home),
  and neither does a point outside the street (the photo was not taken at the job, or its clock is wrong).
  A kept position is written back into the new file's EXIF (GPS tags only) and stored beside the photo.
* **Stored** in PostgreSQL: the bytes and thumbnail in ``photo_blobs`` under the SHA-256 of the re-encoded file
  (content-addressed: the same photo twice is stored once, and every read is checked against its name), the
  metadata in ``event_photos``. Why the database and not a folder: a photo is committed in the same transaction
  as its record (no file without a row, no row without a file), one backup (``pg_dump``) holds everything, and
  every API process, on any host, reads the same store. The cost, ~0.3 MB per photo, is small beside the
  database's other tables.
* **Linked**: a photo uploaded for an assignment waits (``pending``) until the team's next resolve or hand-up,
  which attaches every waiting photo (at most 4) in its own transaction and names them in the audit row's
  ``detail`` (``{"photos": [{"id", "sha256"}]}``). A resident's photo is attached to the report at once.
* **Shown** to admins and to the operators of the event's street (each read written to ``pii_access_log``:
  a photo may show people); every other role gets 403.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from sqlalchemy import Connection, Engine, RowMapping
from sqlalchemy.orm import Session

from gridmap.core.vocabulary import ACTIVE_ASSIGNMENT_STATUSES
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from gridmap.services.auth import Principal
from gridmap.storage import assignments as assignments_sql
from gridmap.storage import events as events_sql
from gridmap.storage import people as people_sql
from gridmap.storage import photos as store

MAX_PHOTOS = 4
MAX_SIDE = 2048
THUMB_SIDE = 320
MAX_PIXELS = 40_000_000
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
GPS_IFD = ExifTags.IFD.GPSInfo
#: which of a team's answers a photo may prove, and the assignment statuses it may be uploaded in
PHOTO_ACTIONS = ("resolve", "hand_up")
UPLOAD_STATUSES = ACTIVE_ASSIGNMENT_STATUSES  # photos come from a team still working on its assignment


@dataclass(frozen=True)
class Processed:
    data: bytes
    thumb: bytes
    sha256: str
    width: int
    height: int
    original_size: int
    lon: float | None
    lat: float | None


def _dms(value: Any) -> float | None:
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return d + m / 60 + s / 3600


def exif_position(img: Image.Image) -> tuple[float, float] | None:
    """The EXIF GPS position of an image as (lon, lat), or None."""
    try:
        gps = img.getexif().get_ifd(GPS_IFD)
    except Exception:  # noqa: BLE001 - malformed EXIF is ignored, like no EXIF at all
        return None
    if not gps or 2 not in gps or 4 not in gps:
        return None
    lat, lon = _dms(gps[2]), _dms(gps[4])
    if lat is None or lon is None:
        return None
    if str(gps.get(1, "N")).upper().startswith("S"):
        lat = -lat
    if str(gps.get(3, "E")).upper().startswith("W"):
        lon = -lon
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return lon, lat


def _gps_exif(lon: float, lat: float) -> bytes:
    def dms(v: float) -> tuple[float, float, float]:
        v = abs(v)
        d = int(v)
        m = int((v - d) * 60)
        return float(d), float(m), round((v - d - m / 60) * 3600, 4)

    exif = Image.Exif()
    exif[GPS_IFD] = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
    return exif.tobytes()


def process(data: bytes, *, max_bytes: int, keep_position: Callable[[float, float], bool]) -> Processed:
    """Check, decode and re-encode one photo (see the module). ``keep_position(lon, lat)`` decides whether its
    EXIF location survives."""
    if not data:
        raise InvalidInput("the photo is empty", field="photo", fix="attach a JPEG, PNG or WebP picture")
    if len(data) > max_bytes:
        raise TooLarge(f"the photo has {len(data):,} bytes, more than the {max_bytes:,} allowed", field="photo",
                       fix="send a smaller picture (the app shrinks photos before it sends them)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "?"
            if fmt not in FORMATS:
                raise InvalidInput(f"the photo is {fmt}, not JPEG, PNG or WebP", field="photo",
                                   fix="send a JPEG, PNG or WebP picture (set the camera to 'most compatible')")
            if img.width * img.height > MAX_PIXELS:
                raise InvalidInput(f"the photo has {img.width} x {img.height} pixels, more than "
                                   f"{MAX_PIXELS // 1_000_000} megapixels", field="photo", fix="send a smaller picture")
            img.load()
    except InvalidInput:  # ours, from the checks above: a ValueError too, not to be renamed "cannot be decoded"
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(f"the photo is not a picture that can be read ({type(exc).__name__})", field="photo",
                           fix="send a JPEG, PNG or WebP picture") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"the photo cannot be decoded: {str(exc)[:100]}", field="photo",
                           fix="send the picture again; it may have been cut off") from None
    pos = exif_position(img)
    keep = pos if pos is not None and keep_position(*pos) else None
    img = ImageOps.exif_transpose(img)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGBA").convert("RGB") if "A" in img.mode or img.mode == "P" else img.convert("RGB")
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    kw: dict[str, Any] = {"quality": 85, "optimize": True}
    if keep is not None:
        kw["exif"] = _gps_exif(*keep)
    img.save(out, "JPEG", **kw)
    small = img.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    th = io.BytesIO()
    small.save(th, "JPEG", quality=70, optimize=True)
    body = out.getvalue()
    return Processed(body, th.getvalue(), hashlib.sha256(body).hexdigest(), img.width, img.height, len(data),
                     keep[0] if keep else None, keep[1] if keep else None)


def photo_out(row: RowMapping) -> dict[str, Any]:
    pid = row["id"]
    return {"id": pid, "event_id": row["event_id"], "assignment_id": row["assignment_id"], "sha256": row["sha256"],
            "media_type": row["media_type"], "width": row["width"], "height": row["height"], "bytes": row["bytes"],
            "lon": row["lon"], "lat": row["lat"], "source": row["source"], "uploaded_at": row["uploaded_at"],
            "action": row["action"], "attached_at": row["attached_at"], "pending": row["attached_at"] is None,
            "url": f"/v1/photos/{pid}", "thumb_url": f"/v1/photos/{pid}?thumb=true"}


class PhotoService:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime], *, max_bytes: int = 8_000_000) -> None:
        self.engine = engine
        self.clock = clock
        self.max_bytes = max_bytes

    # -- a team's evidence --------------------------------------------------------------------------------
    def upload_for_assignment(self, session: Session, p: Principal, assignment_id: int, data: bytes,
                              mark: Callable[[Connection], None] | None = None) -> dict[str, Any]:
        """A team member's photo for its assignment; it waits for the next resolve or hand-up."""
        if not p.is_team:
            raise Forbidden(f"role {p.role!r} does not upload a team's photos", field="role",
                            fix="the team's grid worker or volunteer sends them from the field app")
        with session.begin():
            conn = session.connection()
            a = assignments_sql.assignment(conn, assignment_id)
            if a is None:
                raise NotFound(f"no assignment {assignment_id}", field="assignment_id", fix="check the id")
            if a["team_id"] != p.team_id:
                raise Forbidden(f"assignment {assignment_id} belongs to another team", field="assignment_id",
                                fix="send photos only for your own team's assignments")
            ev = events_sql.event(conn, a["event_id"])
        if a["status"] not in UPLOAD_STATUSES:
            raise Conflict(f"assignment {assignment_id} is {a['status']}", field="assignment_id",
                           fix="photos go with a resolve or hand-up of an assignment that is offered or accepted")
        street = ev["street_code"] if ev is not None else None

        def inside(lon: float, lat: float) -> bool:
            with Session(self.engine) as s, s.begin():
                return store.inside_street(s.connection(), street, lon, lat)

        proc = process(data, max_bytes=self.max_bytes, keep_position=inside)
        now = self.clock()
        with session.begin():
            conn = session.connection()
            a = assignments_sql.assignment(conn, assignment_id, lock=True)
            if a is None or a["status"] not in UPLOAD_STATUSES:
                raise Conflict(f"assignment {assignment_id} changed while the photo was read", field="assignment_id",
                               fix="check the assignment and send the photo again")
            waiting = store.pending(conn, assignment_id, lock=True)
            if len(waiting) >= MAX_PHOTOS:
                raise Conflict(f"{len(waiting)} photos already wait for assignment {assignment_id}'s resolve or "
                               f"hand-up (at most {MAX_PHOTOS})", field="photo",
                               fix="resolve or hand up first; send at most 4 photos with one answer")
            if mark is not None:
                mark(conn)
            store.put_blob(conn, proc.sha256, proc.data, proc.thumb)
            row = store.insert(conn, event_id=a["event_id"], assignment_id=assignment_id, sha256=proc.sha256,
                               media_type="image/jpeg", width=proc.width, height=proc.height, size=len(proc.data),
                               original_size=proc.original_size, lon=proc.lon, lat=proc.lat, source="team",
                               uploaded_by=p.username, role=p.role, at=now)
        return photo_out(row)

    def attach_pending(self, conn: Connection, assignment_id: int, action: str) -> list[dict[str, Any]]:
        """Inside a resolve or hand-up's transaction: attach the photos waiting for this assignment and name them
        in the audit row the action writes (its ``detail``)."""
        if action not in PHOTO_ACTIONS:
            return []
        waiting = store.pending(conn, assignment_id, lock=True)[:MAX_PHOTOS]
        if not waiting:
            return []
        refs = [{"id": r["id"], "sha256": r["sha256"]} for r in waiting]
        store.attach(conn, [r["id"] for r in waiting], action, self.clock())
        store.set_transition_detail(conn, json.dumps({"photos": refs}))
        return refs

    # -- a resident's photo -------------------------------------------------------------------------------
    def add_resident_photo(self, conn: Connection, event_id: int, proc: Processed, at: dt.datetime) -> dict[str, Any]:
        store.put_blob(conn, proc.sha256, proc.data, proc.thumb)
        row = store.insert(conn, event_id=event_id, assignment_id=None, sha256=proc.sha256, media_type="image/jpeg",
                           width=proc.width, height=proc.height, size=len(proc.data), original_size=proc.original_size,
                           lon=None, lat=None, source="resident", uploaded_by="resident (QR)", role="resident", at=at,
                           action="report")
        return {"id": row["id"], "sha256": row["sha256"]}

    # -- reading ------------------------------------------------------------------------------------------
    @staticmethod
    def _may_read(p: Principal, street: str | None, what: str, community: str | None = None) -> None:
        if not p.sees_personal_data:
            raise Forbidden(f"role {p.role!r} does not see photos", field="role",
                            fix="photos of events are shown to operators (their area) and admins")
        p.check_street(street, what, community)

    def _readable(self, p: Principal, row: Mapping[Any, Any] | None, what: str, field: str) -> Mapping[Any, Any]:
        """``row`` (an event or a photo, with its street and community) if ``p`` may see its photos."""
        if row is None:
            raise NotFound(f"no {what}", field=field, fix="check the id")
        self._may_read(p, row["street_code"], what, row["community_code"])
        return row

    def of_event(self, session: Session, p: Principal, event_id: int) -> list[dict[str, Any]]:
        if not p.sees_personal_data:  # refused before the database is asked anything
            self._may_read(p, None, f"event {event_id}")
        with session.begin():
            conn = session.connection()
            self._readable(p, events_sql.event(conn, event_id), f"event {event_id}", "event_id")
            rows = store.of_event(conn, event_id)
            if rows:
                people_sql.log_pii_access(conn, p.username, "photo evidence", "event_photos", len(rows),
                                          {"event_id": event_id, "role": p.role})
        return [photo_out(r) for r in rows]

    def read(self, session: Session, p: Principal, photo_id: int, *, thumb: bool = False) -> tuple[bytes, str]:
        """The bytes of a photo (or its thumbnail), checked against their checksum."""
        if not p.sees_personal_data:
            self._may_read(p, None, f"photo {photo_id}")
        with session.begin():
            conn = session.connection()
            row = self._readable(p, store.photo(conn, photo_id), f"photo {photo_id}", "photo_id")
            data = store.blob(conn, row["sha256"], thumb=thumb)
            people_sql.log_pii_access(conn, p.username, "photo evidence", "event_photos", 1,
                                      {"photo_id": photo_id, "event_id": row["event_id"], "thumb": thumb, "role": p.role})
        if data is None:
            raise NotFound(f"the bytes of photo {photo_id} are missing", field="photo_id", fix="report this to an admin")
        if not thumb and hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise Conflict(f"photo {photo_id} does not match its checksum", field="photo_id",
                           fix="the stored file is damaged: restore it from a backup")
        return data, "image/jpeg"
