"""``fit``: an image at an exact size, its ratio reconciled by cover, contain or stretch.

The operation behind every delivered file and rendition: ``cover`` center-crops to the
target ratio then resizes (nothing is distorted, edges may be lost), ``contain`` resizes
to fit inside and pads the rest, ``stretch`` ignores the ratio. The crop is computed on
fractional pixels so no rounding shifts the center, and an image already at the target
size with ``cover`` comes back as an exact copy.
"""

from __future__ import annotations

import math
from typing import Final, Literal

from PIL import Image

from pipeline.ops.base import Color, Operation, OpParams, Size, SizeTuple, canvas

LANCZOS: Final = Image.Resampling.LANCZOS


class FitParams(OpParams):
    """``size`` (WxH), ``mode`` (cover, contain or stretch) and, for ``contain``, the
    ``color`` of the padding (transparent unless given)."""

    size: Size
    mode: Literal["cover", "contain", "stretch"] = "cover"
    color: Color = "transparent"


class Fit(Operation[FitParams]):
    """Exactly ``size``, by cover, contain or stretch."""

    name = "fit"
    Params = FitParams
    version = 1

    def apply(self, image: Image.Image, params: FitParams) -> Image.Image:
        """``image`` at exactly ``params.size``."""
        width, height = params.size
        if params.mode == "cover":
            return cover(image, width, height)
        if params.mode == "contain":
            return contain(image, width, height, params.color)
        return image.resize((width, height), LANCZOS)

    def output_size(self, size: SizeTuple, params: FitParams) -> SizeTuple:
        """Always ``params.size``."""
        return params.size


def cover(image: Image.Image, width: int, height: int) -> Image.Image:
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
    return image.crop(whole).resize((width, height), LANCZOS, box=inner)


def contain(image: Image.Image, width: int, height: int, color: str) -> Image.Image:
    """Resize ``image`` to fit inside the target and pad it, centered, to the exact size
    with ``color`` (an image with alpha keeps it: its padding is RGBA)."""
    source_w, source_h = image.size
    scale = min(width / source_w, height / source_h)
    fitted_w = min(width, max(1, round(source_w * scale)))
    fitted_h = min(height, max(1, round(source_h * scale)))
    fitted = image.resize((fitted_w, fitted_h), LANCZOS)
    out = canvas((width, height), color, image)
    out.paste(fitted, ((width - fitted_w) // 2, (height - fitted_h) // 2))
    return out
