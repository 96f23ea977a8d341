"""A photo's checks name what is wrong with it (no database: :func:`gridmap.services.photos.process` alone)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gridmap.errors import InvalidInput
from gridmap.services.photos import MAX_PIXELS, process


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (_encoded(Image.new("P", (10, 10)), "GIF"), "the photo is GIF, not JPEG, PNG or WebP"),
        # a 1-bit PNG: a few kB on the wire, more pixels than allowed once decoded
        (_encoded(Image.new("1", (8_000, MAX_PIXELS // 8_000 + 1)), "PNG"), "pixels, more than 40 megapixels"),
    ],
    ids=["gif", "too-many-pixels"],
)
def test_a_refused_photo_says_why_not_that_it_cannot_be_decoded(data, says):
    """InvalidInput is a ValueError: the decoder's ``except ValueError`` must not swallow the checks' own errors."""
    with pytest.raises(InvalidInput) as exc:
        process(data, max_bytes=10_000_000, keep_position=lambda lon, lat: True)
    assert says in str(exc.value) and "cannot be decoded" not in str(exc.value)
