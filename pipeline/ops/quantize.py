"""``quantize``: at most ``colors`` colors (Pillow's median cut), alpha kept.

For pixel art, small sprites and files that must stay small. The alpha channel is not
quantized with the colors: it is put back as it was, so edges keep their transparency.
"""

from __future__ import annotations

from typing import Final, Literal

from PIL import Image
from pydantic import Field

from pipeline.ops.base import Operation, OpParams

DITHER: Final = {"none": Image.Dither.NONE, "floyd": Image.Dither.FLOYDSTEINBERG}


class QuantizeParams(OpParams):
    """``colors`` (2-256) and ``dither`` (``none`` or ``floyd``, Floyd-Steinberg)."""

    colors: int = Field(ge=2, le=256)
    dither: Literal["none", "floyd"] = "none"


class Quantize(Operation[QuantizeParams]):
    """The image in at most ``colors`` colors."""

    name = "quantize"
    Params = QuantizeParams
    version = 1
    expensive = True  # median cut over a large image is seconds; once per input is enough

    def apply(self, image: Image.Image, params: QuantizeParams) -> Image.Image:
        """``image`` reduced to ``params.colors`` colors, RGB or RGBA as it came."""
        return reduce_colors(image, params.colors, DITHER[params.dither])


def reduce_colors(image: Image.Image, colors: int, dither: Image.Dither) -> Image.Image:
    """``image`` in at most ``colors`` colors of its own (median cut), alpha put back."""
    alpha = _alpha(image)
    rgb = image.convert("RGB")
    reduced = rgb.quantize(colors, Image.Quantize.MEDIANCUT, dither=dither).convert("RGB")
    return _with_alpha(reduced, alpha)


def to_palette(
    image: Image.Image, palette: list[tuple[int, int, int]], dither: Image.Dither
) -> Image.Image:
    """``image`` with every pixel one of ``palette``'s colors (alpha put back)."""
    alpha = _alpha(image)
    flat = [c for color in palette for c in color]
    target = Image.new("P", (1, 1))
    target.putpalette(flat + flat[:3] * (256 - len(palette)))
    reduced = image.convert("RGB").quantize(palette=target, dither=dither).convert("RGB")
    return _with_alpha(reduced, alpha)


def _alpha(image: Image.Image) -> Image.Image | None:
    """The alpha channel, when the image has one."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return image.convert("RGBA").getchannel("A")
    return None


def _with_alpha(rgb: Image.Image, alpha: Image.Image | None) -> Image.Image:
    if alpha is None:
        return rgb
    out = rgb.convert("RGBA")
    out.putalpha(alpha)
    return out
