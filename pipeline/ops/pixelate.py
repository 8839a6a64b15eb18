"""``pixelate``: the image down to a grid of cells, then its colors reduced.

Each cell takes one color (its center pixel, nearest-neighbour, or its average), so
edges stay hard; the colors are then mapped to the brand's palette (``palette: brand``,
which the plan fills in with the brand kit's colors, so a new brand color makes the file
again), to a list of colors, or reduced to ``colors: N`` of the image's own. The result
is the grid enlarged back to the image's size (``keep_size``, the default) or the grid
itself, one pixel a cell.
"""

from __future__ import annotations

import math
from typing import Literal, Self

from PIL import Image
from pydantic import Field, model_validator

from pipeline.ops.base import (
    MAX_SIDE,
    Color,
    OpContext,
    Operation,
    OpParams,
    Size,
    SizeTuple,
    rgba,
)
from pipeline.ops.quantize import DITHER, reduce_colors, to_palette


class PixelateParams(OpParams):
    """``cell`` (pixels a side) or ``grid`` (``WxH`` cells), then ``palette`` (``brand``
    or a list of colors) or ``colors`` (2-256); ``sample`` (``nearest`` or
    ``average``), ``dither`` and ``keep_size``."""

    cell: int | None = Field(None, ge=1, le=MAX_SIDE)
    grid: Size | None = None
    palette: Literal["brand"] | list[Color] | None = Field(None, min_length=1, max_length=256)
    colors: int | None = Field(None, ge=2, le=256)
    sample: Literal["nearest", "average"] = "nearest"
    dither: Literal["none", "floyd"] = "none"
    keep_size: bool = True

    @model_validator(mode="after")
    def _one_each(self) -> Self:
        if (self.cell is None) == (self.grid is None):
            raise ValueError("give exactly one of 'cell' (pixels a side) or 'grid' (WxH cells)")
        if self.palette is not None and self.colors is not None:
            raise ValueError("give 'palette' or 'colors', not both")
        return self


class Pixelate(Operation[PixelateParams]):
    """The image as a grid of cells in a few colors."""

    name = "pixelate"
    Params = PixelateParams
    version = 1

    def planned(self, params: PixelateParams, context: OpContext) -> PixelateParams:
        """``palette: brand`` becomes the brand's colors (an error without a brand)."""
        if params.palette != "brand":
            return params
        if not context.palette:
            raise ValueError(
                "'palette: brand' needs a brand kit with colors: set 'brand:' in the spec, "
                "or list the colors"
            )
        data = {**params.model_dump(mode="json"), "palette": list(context.palette[:256])}
        return PixelateParams.model_validate(data)

    def apply(self, image: Image.Image, params: PixelateParams) -> Image.Image:
        """``image`` down to its grid, its colors reduced, then back to its size."""
        grid = self._grid(image.size, params)
        resample = Image.Resampling.NEAREST if params.sample == "nearest" else Image.Resampling.BOX
        small = image.convert("RGBA" if _has_alpha(image) else "RGB").resize(grid, resample)
        dither = DITHER[params.dither]
        if isinstance(params.palette, list):
            small = to_palette(small, [rgba(c)[:3] for c in params.palette], dither)
        elif params.colors is not None:
            small = reduce_colors(small, params.colors, dither)
        if params.keep_size:
            return small.resize(image.size, Image.Resampling.NEAREST)
        return small

    def output_size(self, size: SizeTuple, params: PixelateParams) -> SizeTuple:
        """The image's size with ``keep_size``, else the grid's."""
        return size if params.keep_size else self._grid(size, params)

    @staticmethod
    def _grid(size: SizeTuple, params: PixelateParams) -> SizeTuple:
        """Cells across and down: ``grid`` (at most one a pixel), or the image over ``cell``."""
        if params.grid is not None:
            return min(params.grid[0], size[0]), min(params.grid[1], size[1])
        cell = params.cell or 1
        return max(1, math.ceil(size[0] / cell)), max(1, math.ceil(size[1] / cell))


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
