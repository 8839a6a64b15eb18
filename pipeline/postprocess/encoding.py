"""Writing pixels as png, webp or jpeg: the same pixels always give the same bytes.

Determinism is what lets a rendition be cached by its source's sha256 plus its
operations, so the encoders run with fixed settings and write no metadata that varies
(no timestamps, text, EXIF or XMP), only the colour profile. Outputs are always RGB or
RGBA (JPEG: RGB), in one of :data:`FORMATS`; the options a spec gives for them (format
name, compression) are checked here, with :class:`ImageOptionError` for what cannot be
honoured.
"""

from __future__ import annotations

import io
from typing import Final

from PIL import Image

from pipeline.errors import PipelineError
from pipeline.postprocess.decoding import has_alpha_band

FORMATS: Final = ("png", "webp", "jpeg")
"""The output formats this module writes, by their canonical names."""

DEFAULT_QUALITY: Final = 90
"""Quality of lossy encodes (webp, jpeg) when no compression is given."""

WHITE: Final = (255, 255, 255)
"""What transparency becomes where the output cannot carry it (jpeg)."""

_FORMAT_ALIASES: Final = {"jpg": "jpeg"}
_PNG_COMPRESS_LEVEL: Final = 6
_WEBP_METHOD: Final = 4


class ImageOptionError(PipelineError):
    """An output format, size, fit or compression that cannot be honoured."""


def normalize_format(name: str) -> str:
    """The canonical name of an output format (``jpg`` is ``jpeg``), or an error."""
    canonical = name.strip().lower()
    canonical = _FORMAT_ALIASES.get(canonical, canonical)
    if canonical not in FORMATS:
        raise ImageOptionError(
            f"unsupported image format {name!r}: expected one of png, webp, jpeg (or jpg)"
        )
    return canonical


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
    quality = encoder_quality(compression)
    profile = image.info.get("icc_profile")
    prepared = _flatten(image) if fmt == "jpeg" else normalize_mode(image)
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


def normalize_mode(image: Image.Image) -> Image.Image:
    """A copy of ``image`` in RGBA when it can be transparent, else in RGB."""
    return image.convert("RGBA" if has_alpha_band(image) else "RGB")


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB copy of ``image`` with any transparency composited over white."""
    if not has_alpha_band(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, WHITE)
    background.paste(rgba, (0, 0), rgba)
    return background


def encoder_quality(compression: int | None) -> int:
    """The encoder quality for ``compression`` (0-100, None for the default)."""
    if compression is None:
        return DEFAULT_QUALITY
    if isinstance(compression, bool) or not isinstance(compression, int):
        raise ImageOptionError(f"compression must be an integer 0-100, got {compression!r}")
    if not 0 <= compression <= 100:
        raise ImageOptionError(f"compression must be between 0 and 100, got {compression}")
    return compression
