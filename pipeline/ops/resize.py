"""``resize``: exactly WxH with a chosen resampling filter, the ratio ignored.

``nearest`` keeps hard pixel edges (pixel art, icons scaled by whole factors);
``lanczos``, the default, is the sharpest for photographs and illustrations.
"""

from __future__ import annotations

from typing import Final, Literal

from PIL import Image

from pipeline.ops.base import Operation, OpParams, Size, SizeTuple

RESAMPLE: Final = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}


class ResizeParams(OpParams):
    """``size`` (WxH) and the ``resample`` filter."""

    size: Size
    resample: Literal["lanczos", "bicubic", "bilinear", "hamming", "box", "nearest"] = "lanczos"


class Resize(Operation[ResizeParams]):
    """Exactly ``size``, ignoring the ratio."""

    name = "resize"
    Params = ResizeParams
    version = 1

    def apply(self, image: Image.Image, params: ResizeParams) -> Image.Image:
        """``image`` resized to ``params.size``."""
        return image.resize(params.size, RESAMPLE[params.resample])

    def output_size(self, size: SizeTuple, params: ResizeParams) -> SizeTuple:
        """Always ``params.size``."""
        return params.size
