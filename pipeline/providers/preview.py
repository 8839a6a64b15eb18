"""The offline provider: deterministic placeholder images drawn locally with Pillow.

``preview`` lets a team run a whole build without credentials or cost: every asset gets a
file of the requested size, format and transparency, drawn from the brand palette with the
asset id, the prompt's opening words and the size written on it, so layouts, renditions,
the manifest and CI can all be exercised for real. The same request always gives the same
bytes, so preview builds are reproducible (and cached under the ``preview`` provider,
where they never satisfy a real build).

Parameters are checked the way the API checks them (size, format, compression, transparency
only with png/webp), so a spec mistake fails the same way offline as it would online.
"""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageDraw, ImageFont, ImageOps

from pipeline.hashing import canonical_json, sha256_bytes
from pipeline.jobs import ImageRequest, ImageResult, ProviderFailure

RGB = tuple[int, int, int]

MAX_EDGE: Final = 4096
"""Largest side the preview draws: above any model's output, small enough to stay fast."""

NEUTRAL_PALETTE: Final = ("#3D5A80", "#98C1D9", "#E0FBFC", "#EE6C4D", "#293241")
"""Colours used when the request carries no (valid) brand palette."""

DEFAULT_QUALITY: Final = 90
"""Quality of webp/jpeg placeholders when the request sets no ``output_compression``."""

_FORMATS: Final = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}
_SIZE: Final = re.compile(r"([0-9]{1,6})x([0-9]{1,6})")
_HEX: Final = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_PROMPT_WORDS: Final = 8
_PROMPT_CHARS: Final = 80
_PNG_COMPRESS_LEVEL: Final = 1  # placeholders favour speed over file size
_TEXT: Final = (255, 255, 255)
_STROKE: Final = (24, 24, 28)
_OUTLINE: Final = (24, 24, 28)
_SHAPES: Final = ("ellipse", "rounded", "diamond")


@dataclass(frozen=True, slots=True)
class _Canvas:
    """The validated output settings of one request."""

    width: int
    height: int
    output_format: str
    quality: int
    transparent: bool
    echoed_quality: str

    @property
    def size_text(self) -> str:
        """``WxH``, as the API echoes a size."""
        return f"{self.width}x{self.height}"


class PreviewProvider:
    """Draws placeholders instead of calling an API; costs nothing, needs no network."""

    name: str = "preview"

    async def generate(self, request: ImageRequest) -> ImageResult:
        """Draw the placeholder for ``request`` (generate or edit) in a worker thread.

        Raises :class:`ProviderFailure` (``invalid_request``) for parameters the API would
        reject: a malformed size, an unknown format, a bad compression, a transparent
        jpeg, or an edit without a decodable input image.
        """
        canvas = _canvas(request)
        data = await asyncio.to_thread(_render, request, canvas)
        return ImageResult(
            data=data,
            output_format=canvas.output_format,
            size=canvas.size_text,
            quality=canvas.echoed_quality,
            background="transparent" if canvas.transparent else "opaque",
            usage=None,
            request_id=None,
        )

    async def aclose(self) -> None:
        """Nothing to release: the preview holds no connections."""


def _invalid(message: str, param: str) -> ProviderFailure:
    """The failure the API would give for a bad parameter."""
    return ProviderFailure(
        "invalid_request", message, code="invalid_value", details={"param": param}
    )


def _canvas(request: ImageRequest) -> _Canvas:
    """Validate the request's output parameters, the way the API would."""
    params = request.params
    size = params.get("size", "auto")
    if size == "auto":
        width, height = 1024, 1024
    else:
        match = _SIZE.fullmatch(size) if isinstance(size, str) else None
        if match is None:
            raise _invalid(
                f"Invalid size {size!r}: expected 'WxH' (like '1024x1536') or 'auto'.", "size"
            )
        width, height = int(match.group(1)), int(match.group(2))
        if not (1 <= width <= MAX_EDGE and 1 <= height <= MAX_EDGE):
            raise _invalid(
                f"Invalid size {size!r}: the preview draws sides from 1 to {MAX_EDGE} pixels.",
                "size",
            )

    output_format = params.get("output_format", "png")
    if not isinstance(output_format, str) or output_format not in _FORMATS:
        raise _invalid(
            f"Invalid output_format {output_format!r}: the preview draws png, webp or jpeg.",
            "output_format",
        )

    compression = params.get("output_compression")
    if compression is None:
        quality = DEFAULT_QUALITY
    elif (
        isinstance(compression, int)
        and not isinstance(compression, bool)
        and 0 <= compression <= 100
    ):
        quality = compression
    else:
        raise _invalid(
            f"Invalid output_compression {compression!r}: expected an integer from 0 to 100.",
            "output_compression",
        )

    transparent = params.get("background") == "transparent"
    if transparent and output_format == "jpeg":
        raise _invalid(
            "Transparent background requires output_format 'png' or 'webp', not 'jpeg'.",
            "background",
        )

    echoed = params.get("quality")
    echoed_quality = echoed if isinstance(echoed, str) and echoed != "auto" else "medium"
    return _Canvas(width, height, output_format, quality, transparent, echoed_quality)


def _render(request: ImageRequest, canvas: _Canvas) -> bytes:
    """Draw and encode the placeholder (CPU-bound: runs in a worker thread)."""
    colors = _palette(request.palette)
    seed = _seed(request)
    primary = colors[seed % len(colors)]
    secondary = colors[(seed + 1) % len(colors)] if len(colors) > 1 else _shade(primary, 0.55)
    shape = _SHAPES[seed % len(_SHAPES)]
    size = (canvas.width, canvas.height)

    if request.endpoint == "edit":
        fill = _edit_base(request, size, primary)
    else:
        fill = _gradient(size, primary, secondary)

    if canvas.transparent:
        image = Image.new("RGBA", size, (0, 0, 0, 0))
        box = _inset(size, 0.1)
        mask = Image.new("L", size, 0)
        _shape(ImageDraw.Draw(mask), shape, box, fill=255)
        image.paste(fill, (0, 0), mask)
        _shape(
            ImageDraw.Draw(image),
            shape,
            box,
            outline=_OUTLINE,
            width=max(1, min(size) // 128),
        )
        text_width = 0.7 * canvas.width
    else:
        image = fill
        draw = ImageDraw.Draw(image)
        _swatches(draw, size, colors)
        if request.endpoint != "edit":
            accent = colors[(seed + 2) % len(colors)] if len(colors) > 2 else _shade(primary, 1.4)
            side = 0.62 * min(size)
            box = (
                (canvas.width - side) / 2,
                (canvas.height - side) / 2,
                (canvas.width + side) / 2,
                (canvas.height + side) / 2,
            )
            _shape(
                draw,
                shape,
                box,
                fill=accent,
                outline=_OUTLINE,
                width=max(1, min(size) // 128),
            )
        text_width = 0.9 * canvas.width

    lines = []
    if request.endpoint == "edit":
        lines.append(("edit", 0.06))
    lines.append((request.label or "untitled", 0.11))
    lines.append((_prompt_words(request.prompt), 0.045))
    lines.append((canvas.size_text, 0.045))
    _text_block(ImageDraw.Draw(image), size, lines, text_width)
    return _encode(image, canvas)


def _palette(entries: tuple[str, ...]) -> tuple[RGB, ...]:
    """The request's colours as RGB, skipping malformed entries; neutral when none is left."""
    colors = tuple(rgb for rgb in (_rgb(entry) for entry in entries) if rgb is not None)
    if colors:
        return colors
    return tuple(rgb for rgb in (_rgb(entry) for entry in NEUTRAL_PALETTE) if rgb is not None)


def _rgb(value: str) -> RGB | None:
    """``#E4572E`` or ``#E52`` to an RGB triple; None when it is not a hex colour."""
    match = _HEX.fullmatch(value.strip())
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


def _shade(color: RGB, factor: float) -> RGB:
    """``color`` darkened (factor < 1) or lightened (factor > 1)."""
    r, g, b = (min(255, round(c * factor)) for c in color)
    return (r, g, b)


def _seed(request: ImageRequest) -> int:
    """A stable number from the request's text, to vary colours and shapes between assets."""
    payload = canonical_json(
        {
            "endpoint": request.endpoint,
            "model": request.model,
            "prompt": request.prompt,
            "label": request.label,
            "params": dict(request.params),
        }
    )
    return int(sha256_bytes(payload.encode()), 16) % 1_000_003


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    """A vertical gradient from ``top`` to ``bottom`` (cheap: one resized 256-step ramp)."""
    ramp = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)


def _edit_base(request: ImageRequest, size: tuple[int, int], tint: RGB) -> Image.Image:
    """The first input image, cover-fitted to ``size`` and tinted with ``tint``."""
    if not request.images:
        raise _invalid("An edit needs at least one input image.", "image")
    first = request.images[0]
    try:
        # The formats the Images API takes (and all assetpipe decodes): never EPS and co.
        source = Image.open(io.BytesIO(first.data), formats=("PNG", "WEBP", "JPEG"))
        source.load()
    except Exception as exc:  # Pillow signals corrupt input with many exception types
        raise _invalid(f"Could not decode input image {first.filename!r}: {exc}", "image") from exc
    rgba = source.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, (0, 0), rgba)
    fitted = ImageOps.fit(flat, size, Image.Resampling.BILINEAR)
    return Image.blend(fitted, Image.new("RGB", size, tint), 0.35)


def _inset(size: tuple[int, int], margin: float) -> tuple[float, float, float, float]:
    """The box of ``size`` with ``margin`` (a fraction of each side) removed all round."""
    width, height = size
    return (width * margin, height * margin, width * (1 - margin), height * (1 - margin))


def _shape(
    draw: ImageDraw.ImageDraw,
    kind: str,
    box: tuple[float, float, float, float],
    *,
    fill: RGB | int | None = None,
    outline: RGB | None = None,
    width: int = 1,
) -> None:
    """Draw one of the placeholder shapes inside ``box``."""
    left, top, right, bottom = box
    if kind == "ellipse":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif kind == "rounded":
        radius = round(min(right - left, bottom - top) / 6)
        draw.rounded_rectangle(box, radius=radius, fill=fill, outline=outline, width=width)
    else:
        cx, cy = (left + right) / 2, (top + bottom) / 2
        points = [(cx, top), (right, cy), (cx, bottom), (left, cy)]
        draw.polygon(points, fill=fill, outline=outline, width=width)


def _swatches(draw: ImageDraw.ImageDraw, size: tuple[int, int], colors: tuple[RGB, ...]) -> None:
    """A band of palette blocks along the bottom edge, in palette order."""
    width, height = size
    band = max(1, height // 16)
    for index, color in enumerate(colors):
        left = width * index // len(colors)
        right = width * (index + 1) // len(colors)
        if right > left:
            draw.rectangle((left, height - band, right - 1, height - 1), fill=color)


def _prompt_words(prompt: str) -> str:
    """The prompt's opening words, short enough for one line."""
    words = prompt.split()
    text = " ".join(words[:_PROMPT_WORDS])
    if len(words) > _PROMPT_WORDS or len(text) > _PROMPT_CHARS:
        text = text[:_PROMPT_CHARS].rstrip() + " ..."
    return text


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels."""
    return ImageFont.load_default(size=max(1, size))


def _text_block(
    draw: ImageDraw.ImageDraw,
    size: tuple[int, int],
    lines: list[tuple[str, float]],
    max_width: float,
) -> None:
    """Draw ``lines`` (text, height as a fraction of the short side) centered as a block.

    Each line shrinks until it fits ``max_width``; on tiny images text is simply clipped.
    """
    width, height = size
    short = min(size)
    fitted = []
    for text, scale in lines:
        font_size = max(6, round(short * scale))
        font = _font(font_size)
        while font_size > 6 and draw.textlength(text, font=font) > max_width:
            font_size = max(6, int(font_size * 0.85))
            font = _font(font_size)
        fitted.append((text, font, font_size))
    gaps = [round(font_size * 1.35) for _, _, font_size in fitted]
    y = (height - sum(gaps)) / 2
    for (text, font, font_size), gap in zip(fitted, gaps, strict=True):
        draw.text(
            (width / 2, y + gap / 2),
            text,
            font=font,
            fill=_TEXT,
            anchor="mm",
            stroke_width=max(1, font_size // 14),
            stroke_fill=_STROKE,
        )
        y += gap


def _encode(image: Image.Image, canvas: _Canvas) -> bytes:
    """Encode the drawn image; no metadata, so the bytes depend on the pixels alone."""
    buffer = io.BytesIO()
    if canvas.output_format == "png":
        image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    elif canvas.output_format == "webp":
        image.save(buffer, format="WEBP", quality=canvas.quality)
    else:
        image.convert("RGB").save(buffer, format="JPEG", quality=canvas.quality)
    return buffer.getvalue()
