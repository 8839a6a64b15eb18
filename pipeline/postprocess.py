"""Local image work: deliver an API image at its exact target, and derive renditions.

Every function here is pure on bytes (no file I/O, no global state), so the runner can
call it from a worker thread, and the same input always gives the same output bytes. That
determinism is what lets a rendition be cached by its source's sha256 plus its operations.

Outputs are always RGB or RGBA (JPEG: RGB), carry no metadata but the source's colour
profile, and are written in one of :data:`FORMATS`.

Decoding is the risky half: API answers and the cache are untrusted (DESIGN section 11).
Only PNG, WebP and JPEG are ever opened (:data:`DECODE_FORMATS`; an EPS would make Pillow
run Ghostscript), and the pixel count a header claims is checked before any pixel is
decoded: :data:`MAX_API_PIXELS` for what the API returned, :data:`MAX_PIXELS` for the rest.
Pillow's own ``DecompressionBombWarning`` is treated as the error it warns about.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass
from typing import Final

from PIL import Image, UnidentifiedImageError

from pipeline.errors import PipelineError
from pipeline.jobs import RenditionOp

FORMATS: Final = ("png", "webp", "jpeg")
"""The output formats this module writes, by their canonical names."""

DEFAULT_QUALITY: Final = 90
"""Quality of lossy encodes (webp, jpeg) when no compression is given."""

MAX_EDGE: Final = 16383
"""Largest target side accepted: WebP's limit, far beyond any image model's output."""

DECODE_FORMATS: Final = ("PNG", "WEBP", "JPEG")
"""The only containers decoded (Pillow's names); nothing else is even identified."""

MAX_API_PIXELS: Final = 4096 * 4096
"""Largest image accepted from the API (16.8 MP): twice the largest native size any model
returns (3840x2160 is 8.3 MP), so no real answer comes near it, and a bomb stops here."""

MAX_PIXELS: Final = 89_478_485
"""Largest image decoded at all (a delivered file, a cached one, a rendition's source):
Pillow's own decompression-bomb warning threshold, about 9459x9459."""

_FORMAT_ALIASES: Final = {"jpg": "jpeg"}
_SOURCE_ALIASES: Final = {"mpo": "jpeg"}  # Pillow calls a JPEG with an MPF segment "MPO"
_ALPHA_FORMATS: Final = frozenset({"png", "webp"})
_PROFILE_MODES: Final = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "P", "PA"})
_PNG_COMPRESS_LEVEL: Final = 6
_WEBP_METHOD: Final = 4
_WHITE: Final = (255, 255, 255)
_TRANSPARENT: Final = (0, 0, 0, 0)
_LANCZOS: Final = Image.Resampling.LANCZOS


class ImageDecodeError(PipelineError):
    """Bytes that should be an image but that Pillow cannot decode."""


class ImageOptionError(PipelineError):
    """An output format, size, fit or compression that cannot be honoured."""


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


def normalize_format(name: str) -> str:
    """The canonical name of an output format (``jpg`` is ``jpeg``), or an error."""
    canonical = name.strip().lower()
    canonical = _FORMAT_ALIASES.get(canonical, canonical)
    if canonical not in FORMATS:
        raise ImageOptionError(
            f"unsupported image format {name!r}: expected one of png, webp, jpeg (or jpg)"
        )
    return canonical


def measure(data: bytes, max_pixels: int = MAX_API_PIXELS) -> tuple[int, int]:
    """``(width, height)`` from the header alone (no pixel is decoded), after checking the
    container is PNG, WebP or JPEG and the size is within ``max_pixels``; raises
    :class:`ImageDecodeError` otherwise. Cheap enough to run on every API answer."""
    image = _open(data, max_pixels)
    try:
        return image.size
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
    return _decode(data)


def describe(image: Image.Image) -> ImageInfo:
    """Size, format, mode and real transparency of a decoded image."""
    return ImageInfo(
        width=image.width,
        height=image.height,
        format=_source_format(image),
        mode=image.mode,
        has_alpha=_is_transparent(image),
    )


def deliver(
    data: bytes, width: int, height: int, output_format: str, compression: int | None
) -> bytes:
    """The delivered file for an API image: exactly ``width`` x ``height`` in ``output_format``.

    When the API already returned that size and format, ``data`` comes back unchanged,
    byte for byte, which keeps the C2PA provenance the API embedded. Otherwise the image
    is center-cropped to the target ratio, resized and re-encoded (transparency kept for
    png and webp; see :func:`encode`).
    """
    fmt = normalize_format(output_format)
    _check_size(width, height)
    _quality(compression)
    image = _decode(data, MAX_API_PIXELS)
    if image.size == (width, height) and _source_format(image) == fmt:
        return data
    profile = _profile(image)
    result = _cover(_normalize(image), width, height)
    return encode(_with_profile(result, profile), fmt, compression)


def render_rendition(data: bytes, op: RenditionOp) -> bytes:
    """A rendition of a delivered image: exactly ``op.width`` x ``op.height`` in ``op.format``.

    ``op.fit`` chooses how the ratio is reconciled: ``cover`` center-crops to the target
    ratio then resizes (nothing is distorted, edges may be lost); ``contain`` resizes to
    fit inside and pads the rest (transparent for png/webp, white for jpeg); ``stretch``
    resizes to the exact size, ignoring the ratio.
    """
    fmt = normalize_format(op.format)
    _check_size(op.width, op.height)
    _quality(op.compression)
    image = _decode(data)
    profile = _profile(image)
    source = _normalize(image)
    if op.fit == "cover":
        result = _cover(source, op.width, op.height)
    elif op.fit == "contain":
        result = _contain(source, op.width, op.height, fmt)
    elif op.fit == "stretch":
        result = source.resize((op.width, op.height), _LANCZOS)
    else:
        raise ImageOptionError(f"unknown fit {op.fit!r}: expected cover, contain or stretch")
    return encode(_with_profile(result, profile), fmt, op.compression)


def encode(image: Image.Image, output_format: str, compression: int | None = None) -> bytes:
    """Encode ``image`` as png, webp or jpeg, deterministically (same pixels, same bytes).

    - png: lossless, RGBA when the image has an alpha band, else RGB; ``compression`` is
      ignored (as the API does) because PNG quality does not vary.
    - webp: lossy at quality ``compression`` (default :data:`DEFAULT_QUALITY`), alpha kept.
    - jpeg: quality ``compression`` (default :data:`DEFAULT_QUALITY`); transparent pixels
      are flattened on white, since JPEG has no alpha.

    No metadata is written (no timestamps, text, EXIF or XMP) except the image's ICC colour
    profile, which is part of what its pixel values mean.
    """
    fmt = normalize_format(output_format)
    quality = _quality(compression)
    profile = image.info.get("icc_profile")
    prepared = _flatten(image) if fmt == "jpeg" else _normalize(image)
    prepared.info = {}
    buffer = io.BytesIO()
    if fmt == "png":
        prepared.save(
            buffer,
            format="PNG",
            optimize=False,
            compress_level=_PNG_COMPRESS_LEVEL,
            icc_profile=profile,
        )
    elif fmt == "webp":
        prepared.save(
            buffer,
            format="WEBP",
            quality=quality,
            method=_WEBP_METHOD,
            icc_profile=profile,
        )
    else:
        prepared.save(
            buffer,
            format="JPEG",
            quality=quality,
            optimize=False,
            progressive=False,
            icc_profile=profile,
        )
    return buffer.getvalue()


def _decode(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open and fully decode ``data``, turning any decoder failure into one clear error."""
    image = _open(data, max_pixels)
    try:
        image.load()
    except Exception as exc:
        raise _undecodable(data, exc) from exc
    return image


def _open(data: bytes, max_pixels: int) -> Image.Image:
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
        raise _undecodable(data, exc) from exc
    width, height = image.size
    if width * height > min(max_pixels, MAX_PIXELS):
        image.close()
        raise ImageDecodeError(
            f"cannot decode image: it claims {width}x{height} pixels, more than the "
            f"{min(max_pixels, MAX_PIXELS):,} assetpipe decodes"
        )
    return image


def _undecodable(data: bytes, exc: Exception) -> ImageDecodeError:
    # Pillow reports corrupt input through many exception types (OSError, SyntaxError,
    # struct.error, ...); all of them mean the same thing here.
    return ImageDecodeError(
        f"cannot decode image ({len(data)} bytes, starting {data[:12]!r}): {exc}"
    )


def _source_format(image: Image.Image) -> str:
    """The decoded container's format, lower-case, with Pillow's variants folded in."""
    name = (image.format or "unknown").lower()
    return _SOURCE_ALIASES.get(name, name)


def _has_alpha_band(image: Image.Image) -> bool:
    """Whether the image can carry transparency (alpha band or a transparent colour)."""
    bands = image.getbands()
    return "A" in bands or "a" in bands or "transparency" in image.info


def _is_transparent(image: Image.Image) -> bool:
    """Whether some pixel of the image has alpha below 255."""
    if not _has_alpha_band(image):
        return False
    bands = image.getbands()
    if "A" in bands:
        alpha = image.getchannel("A")
    elif "a" in bands:
        alpha = image.getchannel("a")
    else:
        alpha = image.convert("RGBA").getchannel("A")
    return any(alpha.histogram()[:255])


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


def _normalize(image: Image.Image) -> Image.Image:
    """A copy of ``image`` in RGBA when it can be transparent, else in RGB."""
    return image.convert("RGBA" if _has_alpha_band(image) else "RGB")


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB copy of ``image`` with any transparency composited over white."""
    if not _has_alpha_band(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, (0, 0), rgba)
    return background


def _quality(compression: int | None) -> int:
    """The encoder quality for ``compression`` (0-100, None for the default)."""
    if compression is None:
        return DEFAULT_QUALITY
    if isinstance(compression, bool) or not isinstance(compression, int):
        raise ImageOptionError(f"compression must be an integer 0-100, got {compression!r}")
    if not 0 <= compression <= 100:
        raise ImageOptionError(f"compression must be between 0 and 100, got {compression}")
    return compression


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
        canvas = Image.new("RGB", (width, height), _WHITE)
    canvas.paste(fitted, ((width - fitted_w) // 2, (height - fitted_h) // 2))
    return canvas


def has_c2pa(data: bytes) -> bool:
    """Whether the bytes carry a C2PA manifest store (a JUMBF box labelled ``c2pa``).

    OpenAI embeds one in every image; any re-encode (crop, resize, format change) drops
    it, which the manifest records so nobody mistakes a derived file for a signed one.
    """
    return b"jumb" in data and b"c2pa" in data


def with_png_text(data: bytes, key: str, text: str) -> bytes:
    """A PNG with one more ``iTXt`` chunk before ``IEND``; pixels are not re-encoded.

    Used to stamp the job id and cache key into delivered PNGs (``embed_metadata``):
    tools can trace a file to its spec without the manifest. Never put secrets in it.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or data[-12:-8] != b"\x00\x00\x00\x00":
        raise ImageDecodeError("not a PNG ending in IEND")
    body = key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"iTXt" + body))
    return data[:-12] + chunk + data[-12:]
