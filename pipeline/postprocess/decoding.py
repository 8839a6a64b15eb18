"""Opening image bytes nobody vouches for, and saying what the image is.

API answers and the cache are untrusted (see the threat model in docs/reliability.md), and
decoding is where an image can hurt: a container Pillow hands to an outside program, or a
header that claims billions of pixels. Only PNG, WebP and JPEG are ever opened
(:data:`DECODE_FORMATS`; an EPS would make Pillow run Ghostscript), and the pixel count a
header claims is checked before any pixel is decoded: :data:`MAX_API_PIXELS` for what the
API returned, :data:`MAX_PIXELS` for the rest. Pillow's own ``DecompressionBombWarning`` is
treated as the error it warns about, and every decoder failure becomes one
:class:`ImageDecodeError`.

An SVG or an animated GIF asked for with ``format: svg``/``gif`` is not a raster of
those three: :func:`peek` reads its size from its markup or header, and
:func:`decode_within` draws a (sanitized) SVG with resvg and takes a GIF's first frame,
so the checks, the thumbnail and renditions see pixels (:mod:`.svg`, :mod:`.gif`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from PIL import Image, UnidentifiedImageError

# WebP registered by name: Pillow registers PNG, JPEG, GIF, BMP and PPM up front, and
# loads every one of its ~40 other plugins (Image.init, ~30 ms a process) the first time a
# format outside those is opened or saved, as WebP is (thumbnails, renditions).
from PIL import WebPImagePlugin as _WebP  # noqa: F401

from pipeline.errors import PipelineError
from pipeline.postprocess import gif, svg

DECODE_FORMATS: Final = ("PNG", "WEBP", "JPEG")
"""The only containers decoded (Pillow's names); nothing else is even identified."""

MAX_API_PIXELS: Final = 4096 * 4096
"""Largest image accepted from the API (16.8 MP): twice the largest native size any model
returns (3840x2160 is 8.3 MP), so no real answer comes near it, and a bomb stops here."""

MAX_PIXELS: Final = 89_478_485
"""Largest image decoded at all (a delivered file, a cached one, a rendition's source):
Pillow's own decompression-bomb warning threshold, about 9459x9459."""

_SOURCE_ALIASES: Final = {"mpo": "jpeg"}  # Pillow calls a JPEG with an MPF segment "MPO"


class ImageDecodeError(PipelineError):
    """Bytes that should be an image but that Pillow cannot decode."""


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a decoded image is: its pixel size, container format and transparency.

    ``has_alpha`` is true only when the image can be transparent *and* some pixel
    actually is (alpha < 255): an RGBA file that is fully opaque does not count.
    """

    width: int
    height: int
    format: str
    mode: str
    has_alpha: bool

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return (self.width, self.height)


def measure(data: bytes, max_pixels: int = MAX_API_PIXELS) -> tuple[int, int]:
    """``(width, height)`` from the header alone (no pixel is decoded), after checking the
    container is PNG, WebP or JPEG and the size is within ``max_pixels``; raises
    :class:`ImageDecodeError` otherwise. Cheap enough to run on every API answer."""
    return peek(data, max_pixels)[0]


def peek(data: bytes, max_pixels: int = MAX_API_PIXELS) -> tuple[tuple[int, int], str]:
    """``((width, height), format)`` from the header alone, checked as :func:`measure`
    checks it; the format is lower-case (``png``, ``webp``, ``jpeg``, and ``svg``/``gif``)."""
    vector = _vector_or_animated(data)
    if vector is not None:
        return vector
    image = open_within(data, max_pixels)
    try:
        return image.size, source_format(image)
    finally:
        image.close()


def probe(data: bytes) -> ImageInfo:
    """Decode ``data`` fully and describe it; raise :class:`ImageDecodeError` if it is not
    an image (or is truncated), so a corrupt download is caught before it is delivered."""
    return describe(decode(data))


def decode(data: bytes) -> Image.Image:
    """Open and fully decode ``data``; one clear :class:`ImageDecodeError` for any failure.

    Callers that inspect a file several ways (checks, hash, thumbnail) decode it once.
    """
    return decode_within(data)


def describe(image: Image.Image) -> ImageInfo:
    """Size, format, mode and real transparency of a decoded image."""
    return ImageInfo(
        width=image.width,
        height=image.height,
        format=source_format(image),
        mode=image.mode,
        has_alpha=_is_transparent(image),
    )


def decode_within(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode ``data`` of at most ``max_pixels`` pixels, turning any decoder
    failure into one clear error. An SVG is drawn at its own size, a GIF gives its first
    frame (their ``format`` says which they came from)."""
    if svg.is_svg(data):
        try:
            return svg.rasterize(data)
        except svg.SvgError as exc:
            raise ImageDecodeError(f"cannot draw the SVG: {exc}") from None
    if gif.is_gif(data):
        try:
            first = gif.frame(data, 0)
        except gif.GifError as exc:
            raise ImageDecodeError(str(exc)) from None
        first.format = "GIF"  # what the pixels were decoded from
        return first
    image = open_within(data, max_pixels)
    try:
        image.load()
    except Exception as exc:
        raise undecodable(data, exc) from exc
    return image


def open_within(data: bytes, max_pixels: int) -> Image.Image:
    """Open ``data`` (header only) as PNG, WebP or JPEG of at most ``max_pixels`` pixels."""
    if not data:
        raise ImageDecodeError("cannot decode image: got 0 bytes (expected png, webp or jpeg)")
    try:
        image = Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"cannot decode image ({len(data)} bytes, starting {data[:12]!r}): "
            "not a png, webp or jpeg file"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"cannot decode image: too large to decode safely ({exc})") from exc
    except Exception as exc:
        raise undecodable(data, exc) from exc
    width, height = image.size
    if width * height > min(max_pixels, MAX_PIXELS):
        image.close()
        raise ImageDecodeError(
            f"cannot decode image: it claims {width}x{height} pixels, more than the "
            f"{min(max_pixels, MAX_PIXELS):,} assetpipe decodes"
        )
    return image


NON_RASTER_FORMATS: Final = frozenset({"svg", "gif"})
"""Formats delivered as their own files (a sanitized SVG, the API's GIF), not re-encoded."""


def deliver_non_raster(
    data: bytes, size: tuple[int, int], fmt: str, notes: list[str]
) -> tuple[bytes, Image.Image]:
    """The delivered file of an API SVG or GIF and its (first) pixels; a file that must
    not be delivered is one :class:`ImageDecodeError`. Notes say what was changed."""
    if len(data) and fmt == "svg" and not svg.is_svg(data):
        raise ImageDecodeError(f"asked for an SVG, got {len(data)} bytes starting {data[:12]!r}")
    try:
        if fmt == "svg":
            return svg.deliver_svg(data, size, notes)
        return gif.deliver_gif(data, size, notes)
    except (svg.SvgError, gif.GifError) as exc:
        raise ImageDecodeError(str(exc)) from None


def _vector_or_animated(data: bytes) -> tuple[tuple[int, int], str] | None:
    """The size and format of an SVG or a GIF, from its markup or header (None: neither)."""
    try:
        if svg.is_svg(data):
            return svg.intrinsic_size(data), "svg"
        if gif.is_gif(data):
            info = gif.inspect(data)
            return (info.width, info.height), "gif"
    except (svg.SvgError, gif.GifError) as exc:
        raise ImageDecodeError(str(exc)) from None
    return None


def undecodable(data: bytes, exc: Exception) -> ImageDecodeError:
    # Pillow reports corrupt input through many exception types (OSError, SyntaxError,
    # struct.error, ...); all of them mean the same thing here.
    return ImageDecodeError(
        f"cannot decode image ({len(data)} bytes, starting {data[:12]!r}): {exc}"
    )


def source_format(image: Image.Image) -> str:
    """The decoded container's format, lower-case, with Pillow's variants folded in."""
    name = (image.format or "unknown").lower()
    return _SOURCE_ALIASES.get(name, name)


def has_alpha_band(image: Image.Image) -> bool:
    """Whether the image can carry transparency (alpha band or a transparent colour)."""
    bands = image.getbands()
    return "A" in bands or "a" in bands or "transparency" in image.info


def _is_transparent(image: Image.Image) -> bool:
    """Whether some pixel of the image has alpha below 255."""
    if not has_alpha_band(image):
        return False
    bands = image.getbands()
    if "A" in bands:
        alpha = image.getchannel("A")
    elif "a" in bands:
        alpha = image.getchannel("a")
    else:
        alpha = image.convert("RGBA").getchannel("A")
    return any(alpha.histogram()[:255])
