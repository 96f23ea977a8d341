"""Masking of personal data for display (names, PRC ID-card numbers, phone numbers)."""

from __future__ import annotations

import pandas as pd


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NA


def mask_name(name: str | None) -> str | None:
    """张三丰 → 张**; a one-character name is masked entirely (张 → *)."""
    if _missing(name) or not name:
        return None if _missing(name) else name
    if len(name) == 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


def mask_id_card(number: str | None) -> str | None:
    """330106199001011234 → 330106********1234 (region kept, birth date hidden)."""
    if _missing(number) or not number:
        return None if _missing(number) else number
    if len(number) < 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_phone(phone: str | None) -> str | None:
    """13812345678 → 138****5678."""
    if _missing(phone) or not phone:
        return None if _missing(phone) else phone
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


MASKS = {"name": mask_name, "id_card": mask_id_card, "phone": mask_phone}


def mask_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with every personal column masked."""
    out = df.copy()
    for col, fn in MASKS.items():
        if col in out.columns:
            out[col] = out[col].map(fn)
    return out
