"""HTTP adapter of the resident's QR page (余安码): the page a code opens (``/q/{code}``), the report it sends, and
the receipt (``/r/{token}``) that shows the status and asks "is it fixed?". Public: no login.

A device cookie (random, HttpOnly, SameSite=Lax) lets the service count reports per phone as well as per address;
it identifies nothing else. The report and the answers change state, so they refuse another site's Origin.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api.deps import SessionDep, client_address
from api.errors import ERROR_RESPONSES
from api.schemas import Code
from gridmap.errors import Forbidden, InvalidInput
from gridmap.services.qr import ResidentService
from gridmap.viz import field_page

router = APIRouter(tags=["resident"], responses=ERROR_RESPONSES)
DEVICE_COOKIE = "gridmap_device"
Token = Annotated[str, Path(pattern=r"^[A-Za-z0-9_\-]{20,64}$", description="the receipt's token")]
PlaceCode = Annotated[Code, Path(description="a business (S…) or building (B…) code, as printed in the QR code")]
# the page, or a JSON error (documented as JSON: the route's HTML class would otherwise claim them too)
_HTML: dict[int | str, dict[str, Any]] = {
    **{code: {"description": spec["description"],
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
       for code, spec in ERROR_RESPONSES.items()},
    200: {"content": {"text/html": {}}, "description": "the page"}}


def get_residents(request: Request) -> ResidentService:
    return request.app.state.residents


def _device(request: Request) -> str | None:
    v = request.cookies.get(DEVICE_COOKIE)
    return v if v and 16 <= len(v) <= 64 and v.replace("-", "").replace("_", "").isalnum() else None


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.headers.get("host", "")):
        raise Forbidden(f"a report sent from {origin}", field="Origin", fix="report from the page the QR code opens")


@router.get("/q/{code}", response_class=HTMLResponse, responses=_HTML)
def place_page(request: Request, code: PlaceCode, session: SessionDep) -> HTMLResponse:
    """The page a place's QR code opens: the place, and a short form to report what happened."""
    place = get_residents(request).place(session, code)
    response = HTMLResponse(field_page.resident_html(place), headers={"Cache-Control": "no-store"})
    if _device(request) is None:
        response.set_cookie(DEVICE_COOKIE, secrets.token_urlsafe(18), max_age=365 * 86400, httponly=True,
                            samesite="lax", secure=request.url.scheme == "https", path="/")
    return response


class ReportOut(BaseModel):
    event_code: str
    receipt: str


@router.post("/q/{code}/report", status_code=201)
def report(request: Request, code: PlaceCode, session: SessionDep,
           category: Annotated[str, Form(min_length=1, max_length=64, pattern=r"^[a-z_]+$")],
           description: Annotated[str, Form(max_length=1000)] = "",
           phone: Annotated[str, Form(max_length=24)] = "",
           photo: Annotated[UploadFile | None, File(description="an optional photo (JPEG, PNG, WebP; at most 8 MB)")]
           = None) -> ReportOut:
    """A resident's report from the place's page (throttled per device and address): the receipt's link."""
    _same_origin(request)
    if "\x00" in description or "\x00" in phone:
        raise InvalidInput("the text holds a NUL character", field="description", fix="send plain text")
    data = photo.file.read(8_000_001) if photo is not None and photo.filename else None
    svc = get_residents(request)
    out = svc.report(session, code, category=category, description=description.strip() or None,
                     phone=phone.strip() or None, photo=data or None, device=_device(request),
                     address=client_address(request), max_photo_bytes=request.app.state.photos.max_bytes)
    return ReportOut(event_code=out["event_code"], receipt=out["receipt"])


@router.get("/r/{token}", response_class=HTMLResponse, responses=_HTML)
def receipt_page(request: Request, token: Token, session: SessionDep) -> HTMLResponse:
    """The receipt: the report's status (reported → dispatched → on site → resolved), nothing else."""
    get_residents(request).status(session, token)  # 404 for an unknown link
    return HTMLResponse(field_page.receipt_html(token), headers={"Cache-Control": "no-store",
                                                                 "Referrer-Policy": "no-referrer"})


class StepOut(BaseModel):
    key: str
    zh: str
    done: bool
    at: Any


class ReceiptOut(BaseModel):
    code: str
    category: str
    category_name: str | None
    category_name_zh: str | None
    place_code: str | None
    status: str
    status_zh: str
    step: int
    steps: list[StepOut]
    merged: bool
    ask_fixed: bool
    answered: dict[str, Any] | None
    reopened: bool | None = None


@router.get("/r/{token}/status")
def receipt_status(request: Request, token: Token, session: SessionDep) -> ReceiptOut:
    """The receipt's status as JSON (the page polls it)."""
    return ReceiptOut(**get_residents(request).status(session, token))


class AnswerIn(BaseModel):
    fixed: bool


@router.post("/r/{token}/answer")
def receipt_answer(request: Request, token: Token, body: AnswerIn, session: SessionDep) -> ReceiptOut:
    """"Is it fixed? 解决了吗?": yes is recorded; no reopens the event, which is offered to a team again."""
    _same_origin(request)
    out = get_residents(request).answer(session, token, body.fixed, device=_device(request),
                                        address=client_address(request))
    return ReceiptOut(**out)


