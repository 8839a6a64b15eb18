"""An image at an exact target size: the delivered file, and each rendition of it.

A target's ratio rarely matches what the API returned, so the ratio is reconciled
locally: ``cover`` center-crops then resizes, ``contain`` resizes to fit and pads,
``stretch`` ignores the ratio. The crop is computed on fractional pixels so no rounding
shifts the center, and an API image already at its target comes back byte for byte
(keeping the provenance the API embedded). Only the colour profile survives a re-encode.
"""

from __future__ import annotations

import math
from typing import Final

from PIL import Image

from pipeline.jobs import RenditionOp
from pipeline.postprocess.decoding import MAX_API_PIXELS, decode_within, source_format
from pipeline.postprocess.encoding import (
    WHITE,
    ImageOptionError,
    encode,
    encoder_quality,
    normalize_format,
    normalize_mode,
)

MAX_EDGE: Final = 16383
"""Largest target side accepted: WebP's limit, far beyond any image model's output."""

_ALPHA_FORMATS: Final = frozenset({"png", "webp"})
_PROFILE_MODES: Final = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "P", "PA"})
_TRANSPARENT: Final = (0, 0, 0, 0)
_LANCZOS: Final = Image.Resampling.LANCZOS


def deliver(
    data: bytes, width: int, height: int, output_format: str, compression: int | None
) -> bytes:
    """The delivered file for an API image: exactly ``width`` x ``height`` in ``output_format``.

    When the API already returned that size and format, ``data`` comes back unchanged,
    byte for byte, which keeps the C2PA provenance the API embedded. Otherwise the image
    is center-cropped to the target ratio, resized and re-encoded (transparency kept for
    png and webp; see :func:`encode`).
    """
    return deliver_decoded(data, width, height, output_format, compression)[0]


def deliver_decoded(
    data: bytes, width: int, height: int, output_format: str, compression: int | None
) -> tuple[bytes, Image.Image | None]:
    """:func:`deliver`, plus the delivered file's pixels when they are known without
    decoding it again: the API's image when it is delivered as it is, or the cropped image
    written losslessly (png). None when a lossy encoder changed them (webp, jpeg)."""
    fmt = normalize_format(output_format)
    _check_size(width, height)
    encoder_quality(compression)
    image = decode_within(data, MAX_API_PIXELS)
    if image.size == (width, height) and source_format(image) == fmt:
        return data, image
    profile = _profile(image)
    result = _cover(normalize_mode(image), width, height)
    delivered = encode(_with_profile(result, profile), fmt, compression)
    return delivered, result if fmt == "png" else None


def render_rendition(data: bytes, op: RenditionOp) -> bytes:
    """A rendition of a delivered image: exactly ``op.width`` x ``op.height`` in ``op.format``.

    ``op.fit`` chooses how the ratio is reconciled: ``cover`` center-crops to the target
    ratio then resizes (nothing is distorted, edges may be lost); ``contain`` resizes to
    fit inside and pads the rest (transparent for png/webp, white for jpeg); ``stretch``
    resizes to the exact size, ignoring the ratio.
    """
    fmt = normalize_format(op.format)
    _check_size(op.width, op.height)
    encoder_quality(op.compression)
    image = decode_within(data)
    profile = _profile(image)
    source = normalize_mode(image)
    if op.fit == "cover":
        result = _cover(source, op.width, op.height)
    elif op.fit == "contain":
        result = _contain(source, op.width, op.height, fmt)
    elif op.fit == "stretch":
        result = source.resize((op.width, op.height), _LANCZOS)
    else:
        raise ImageOptionError(f"unknown fit {op.fit!r}: expected cover, contain or stretch")
    return encode(_with_profile(result, profile), fmt, op.compression)


def _profile(image: Image.Image) -> bytes | None:
    """The ICC profile worth keeping: only an RGB one, since output is always RGB(A)."""
    profile = image.info.get("icc_profile")
    if image.mode in _PROFILE_MODES and isinstance(profile, bytes) and profile:
        return profile
    return None


def _with_profile(image: Image.Image, profile: bytes | None) -> Image.Image:
    """``image`` with its metadata reduced to the colour profile (if any)."""
    image.info = {"icc_profile": profile} if profile else {}
    return image


def _check_size(width: int, height: int) -> None:
    """Reject target sizes no encoder can write before any pixel work is done."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ImageOptionError(f"target {name} must be an integer, got {value!r}")
        if not 1 <= value <= MAX_EDGE:
            raise ImageOptionError(f"target {name} must be between 1 and {MAX_EDGE}, got {value}")


def _cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Center-crop ``image`` to the target ratio and resize it to exactly that size.

    The image is first cut to the whole pixels the crop touches, so the resampler never
    blends in pixels from outside it; the exact (fractional) crop box is then handed to
    the resampler, so no rounding shifts the center. An image already at the target size
    comes back as an exact copy.
    """
    source_w, source_h = image.size
    if source_w * height > source_h * width:  # wider than the target: trim the sides
        crop_w = source_h * width / height
        left = (source_w - crop_w) / 2
        box = (left, 0.0, left + crop_w, float(source_h))
    else:  # taller (or the same ratio): trim top and bottom
        crop_h = source_w * height / width
        top = (source_h - crop_h) / 2
        box = (0.0, top, float(source_w), top + crop_h)
    left, top, right, bottom = box
    whole = (math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom))
    inner = (left - whole[0], top - whole[1], right - whole[0], bottom - whole[1])
    return image.crop(whole).resize((width, height), _LANCZOS, box=inner)


def _contain(image: Image.Image, width: int, height: int, fmt: str) -> Image.Image:
    """Resize ``image`` to fit inside the target and pad it, centered, to the exact size.

    The padding is transparent when the output can carry alpha (png, webp) or the source
    has it (a jpeg then flattens it on white), and white otherwise.
    """
    source_w, source_h = image.size
    scale = min(width / source_w, height / source_h)
    fitted_w = min(width, max(1, round(source_w * scale)))
    fitted_h = min(height, max(1, round(source_h * scale)))
    fitted = image.resize((fitted_w, fitted_h), _LANCZOS)
    if image.mode == "RGBA" or fmt in _ALPHA_FORMATS:
        canvas = Image.new("RGBA", (width, height), _TRANSPARENT)
    else:
        canvas = Image.new("RGB", (width, height), WHITE)
    canvas.paste(fitted, ((width - fitted_w) // 2, (height - fitted_h) // 2))
    return canvas
