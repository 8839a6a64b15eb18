"""``canvas``: the image scaled onto a fixed canvas at an anchor, so a set of sprites
shares one cell size, one scale and one anchor point.

After ``trim``, a sprite's image is its content box. ``scale_by: image`` (the default)
scales each image so its longer side (or its height, ``fit_by: height``) takes ``fill``
of the canvas: right for icons, wrong for animation frames, where a wide stride would be
drawn smaller than a narrow one. For a set of frames, choose one scale for all of them:
``scale_by: scale`` with a fixed ``scale`` factor, or ``scale_by: reference`` with the
``reference`` height (pixels of the trimmed image) that takes ``fill`` of the canvas
height; every frame then gets the same factor, and with ``anchor: bottom`` every foot
lands on the same line. Content that the fixed scale makes larger than the canvas is
cut at the canvas's edges (the anchor side is kept).

This module is not ``canvas.py`` because :func:`pipeline.ops.canvas` (the helper every
operation fills a new image with) already has that name in the package.
"""

from __future__ import annotations

from typing import Final, Literal, Self

from PIL import Image
from pydantic import Field, model_validator

from pipeline.ops.base import (
    MAX_SIDE,
    Anchor,
    Color,
    Operation,
    OpParams,
    Size,
    SizeTuple,
    anchored,
    canvas,
)

RESAMPLE: Final = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


class CanvasParams(OpParams):
    """``size`` (WxH), ``anchor``, ``fill`` (the share of the canvas the content takes,
    0-1), ``fit_by`` (``long`` side or ``height``), ``scale_by`` (``image``, ``scale`` or
    ``reference``) with its ``scale`` or ``reference``, the ``color`` around the content
    and the ``resample`` filter."""

    size: Size
    anchor: Anchor = "bottom"
    fill: float = Field(0.9, gt=0, le=1)
    fit_by: Literal["long", "height"] = "long"
    scale_by: Literal["image", "scale", "reference"] = "image"
    scale: float | None = Field(None, gt=0, le=64)
    reference: int | None = Field(None, ge=1, le=MAX_SIDE)
    color: Color = "transparent"
    resample: Literal["lanczos", "bicubic", "nearest"] = "lanczos"

    @model_validator(mode="after")
    def _scale_given(self) -> Self:
        if self.scale_by == "scale" and self.scale is None:
            raise ValueError("'scale_by: scale' needs 'scale' (a factor, e.g. 0.25)")
        if self.scale_by == "reference" and self.reference is None:
            raise ValueError(
                "'scale_by: reference' needs 'reference' (the content height, in pixels, "
                "that takes 'fill' of the canvas height)"
            )
        if self.scale is not None and self.scale_by != "scale":
            raise ValueError("'scale' is used only with 'scale_by: scale'")
        if self.reference is not None and self.scale_by != "reference":
            raise ValueError("'reference' is used only with 'scale_by: reference'")
        return self


class Canvas(Operation[CanvasParams]):
    """The image scaled and placed on a ``size`` canvas at ``anchor``."""

    name = "canvas"
    Params = CanvasParams
    version = 1

    def apply(self, image: Image.Image, params: CanvasParams) -> Image.Image:
        """``image`` at :func:`scale_for` its size, pasted at the anchor; only the part
        that lands on the canvas is resampled, so no scale allocates past the canvas."""
        cw, ch = params.size
        factor = scale_for(image.size, params)
        sw = max(1, round(image.width * factor))
        sh = max(1, round(image.height * factor))
        x, y = anchored(params.anchor, params.size, (sw, sh))
        left, top = max(0, -x), max(0, -y)
        right, bottom = min(sw, cw - x), min(sh, ch - y)
        out = canvas(params.size, params.color, image)
        if right <= left or bottom <= top:
            return out
        source = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA")
        fx, fy = image.width / sw, image.height / sh
        box = (left * fx, top * fy, right * fx, bottom * fy)
        part = source.resize((right - left, bottom - top), RESAMPLE[params.resample], box=box)
        if part.mode == "RGBA":
            if out.mode != "RGBA":
                out = out.convert("RGBA")
            out.alpha_composite(part, (x + left, y + top))
        else:
            out.paste(part, (x + left, y + top))
        return out

    def output_size(self, size: SizeTuple, params: CanvasParams) -> SizeTuple:
        """Always ``params.size``."""
        return params.size


def scale_for(size: SizeTuple, params: CanvasParams) -> float:
    """The factor an image of ``size`` is drawn at: its own (``image``), the given one
    (``scale``) or the reference height's (``reference``), the same for every frame."""
    cw, ch = params.size
    if params.scale_by == "scale" and params.scale is not None:
        return params.scale
    if params.scale_by == "reference" and params.reference is not None:
        return params.fill * ch / params.reference
    width, height = size
    if params.fit_by == "height":
        return params.fill * ch / height
    return min(params.fill * cw / width, params.fill * ch / height)
