"""``flip``: the image mirrored left to right (``horizontal``), top to bottom
(``vertical``) or both (a half turn): the other-facing sprite without a second image."""

from __future__ import annotations

from typing import Literal

from PIL import Image, ImageOps

from pipeline.ops.base import Operation, OpParams


class FlipParams(OpParams):
    """``direction``: horizontal (the default), vertical or both."""

    direction: Literal["horizontal", "vertical", "both"] = "horizontal"


class Flip(Operation[FlipParams]):
    """A mirror image."""

    name = "flip"
    Params = FlipParams
    version = 1

    def apply(self, image: Image.Image, params: FlipParams) -> Image.Image:
        """``image`` mirrored."""
        if params.direction == "horizontal":
            return ImageOps.mirror(image)
        if params.direction == "vertical":
            return ImageOps.flip(image)
        return image.transpose(Image.Transpose.ROTATE_180)
