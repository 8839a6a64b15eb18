"""An image at an exact target size: the delivered file, and each rendition of it.

A target's ratio rarely matches what the API returned, so the ratio is reconciled
locally by the registered ``fit`` operation (:mod:`pipeline.ops.fit`): ``cover``
center-crops then resizes, ``contain`` resizes to fit and pads, ``stretch`` ignores the
ratio. An API image already at its target comes back byte for byte (keeping the
provenance the API embedded). Only the colour profile survives a re-encode. A spec's
``ops:`` run on the fitted pixels, before the one encode, so a lossy format loses
quality once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from PIL import Image

from pipeline import ops
from pipeline.jobs import RenditionOp
from pipeline.jobs.job import Fit as FitMode
from pipeline.jobs.job import OpCall
from pipeline.ops.fit import FitParams
from pipeline.postprocess import gif, svg
from pipeline.postprocess.decoding import MAX_API_PIXELS, decode_within, source_format
from pipeline.postprocess.encoding import (
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
_TRANSPARENT: Final = "#00000000"
_WHITE: Final = "#FFFFFFFF"
_FITS: Final = frozenset({"cover", "contain", "stretch"})


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
    result = fit(normalize_mode(image), width, height, "cover")
    delivered = encode(_with_profile(result, profile), fmt, compression)
    return delivered, result if fmt == "png" else None


def deliver_operated(
    data: bytes,
    width: int,
    height: int,
    output_format: str,
    compression: int | None,
    calls: Sequence[OpCall],
    memo: ops.OpMemo | None = None,
) -> bytes:
    """The delivered file of an asset with ``ops:``: the image ``data`` (the API's) cut
    to exactly ``width`` x ``height`` as :func:`deliver` does, then ``calls`` applied,
    then encoded once in ``output_format``. Always re-encoded (the operations changed it).
    """
    fmt = normalize_format(output_format)
    _check_size(width, height)
    encoder_quality(compression)
    image = decode_within(data)
    profile = _profile(image)
    result = ops.apply_ops(fit(normalize_mode(image), width, height, "cover"), calls, memo)
    return encode(_with_profile(result, profile), fmt, compression)


def render_rendition(data: bytes, op: RenditionOp, memo: ops.OpMemo | None = None) -> bytes:
    """A rendition of a delivered image: ``op.width`` x ``op.height`` in ``op.format``,
    then ``op.ops`` (which may change the size).

    ``op.fit`` chooses how the ratio is reconciled: ``cover`` center-crops to the target
    ratio then resizes (nothing is distorted, edges may be lost); ``contain`` resizes to
    fit inside and pads the rest (transparent for png/webp, white for jpeg); ``stretch``
    resizes to the exact size, ignoring the ratio. ``memo`` keeps the results of
    expensive operations.
    """
    _check_size(op.width, op.height)
    if op.format == "svg":  # the same sanitized drawing, its root at the rendition's size
        if not svg.is_svg(data):
            raise ImageOptionError("an svg rendition needs an svg asset")
        try:
            return svg.sanitize(data, (op.width, op.height)).data
        except svg.SvgError as exc:
            raise ImageOptionError(str(exc)) from None
    fmt = normalize_format(op.format)
    encoder_quality(op.compression)
    if op.fit not in _FITS:
        raise ImageOptionError(f"unknown fit {op.fit!r}: expected cover, contain or stretch")
    image = _source_pixels(data, op)
    profile = _profile(image)
    source = normalize_mode(image)
    # Padding is transparent where the file can carry it (or the source has alpha: a jpeg
    # then flattens it on white), and white otherwise.
    clear = source.mode == "RGBA" or fmt in _ALPHA_FORMATS
    result = fit(source, op.width, op.height, op.fit, _TRANSPARENT if clear else _WHITE)
    if op.ops:
        result = ops.apply_ops(result, op.ops, memo)
    return encode(_with_profile(result, profile), fmt, op.compression)


def _source_pixels(data: bytes, op: RenditionOp) -> Image.Image:
    """A rendition's source as pixels: one frame of a GIF, an SVG drawn at the scale the
    rendition needs (so a small icon is drawn small, not shrunk, and a large one stays
    sharp), or a raster decoded."""
    try:
        if op.frame is not None:
            return gif.frame(data, op.frame - 1)
        if svg.is_svg(data):
            iw, ih = svg.intrinsic_size(data)
            scales = (op.width / iw, op.height / ih)
            scale = min(scales) if op.fit == "contain" else max(scales)
            return svg.rasterize(data, width=max(1, round(iw * scale)))
    except (svg.SvgError, gif.GifError) as exc:
        raise ImageOptionError(str(exc)) from None
    return decode_within(data)


def fit(
    image: Image.Image, width: int, height: int, mode: FitMode, color: str = _TRANSPARENT
) -> Image.Image:
    """``image`` at exactly ``width`` x ``height`` by the registered ``fit`` operation.

    Its parameters are not validated again: the size is checked here against
    :data:`MAX_EDGE` (a sheet's frames may be larger than a spec's ``ops:`` may ask for),
    ``mode`` against the three fits, and ``color`` is one of this module's two."""
    operation = ops.get("fit")
    if operation is None:  # pragma: no cover - a built-in, which no plugin can replace
        raise ImageOptionError("the fit operation is not registered")
    params = FitParams.model_construct(size=(width, height), mode=mode, color=color)
    result: Image.Image = operation.apply(image, params)
    return result


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
