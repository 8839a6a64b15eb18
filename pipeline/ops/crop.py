"""``crop``: the pixels inside a box, ``[left, top, right, bottom]`` in pixels of the
image it is given (right and bottom exclusive, as Pillow counts them)."""

from __future__ import annotations

from typing import Annotated

from PIL import Image
from pydantic import Field, field_validator

from pipeline.ops.base import MAX_SIDE, Operation, OpError, OpParams, SizeTuple

Edge = Annotated[int, Field(ge=0, le=MAX_SIDE)]


class CropParams(OpParams):
    """``box``: ``[left, top, right, bottom]``."""

    box: tuple[Edge, Edge, Edge, Edge]

    @field_validator("box")
    @classmethod
    def _not_empty(cls, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        left, top, right, bottom = box
        if right <= left or bottom <= top:
            raise ValueError(
                f"the box {list(box)} is empty: right must be past left and bottom below top"
            )
        return box


class Crop(Operation[CropParams]):
    """The pixels inside ``box``."""

    name = "crop"
    Params = CropParams
    version = 1

    def apply(self, image: Image.Image, params: CropParams) -> Image.Image:
        """``image`` cut to ``params.box``."""
        self.output_size(image.size, params)
        return image.crop(params.box)

    def output_size(self, size: SizeTuple, params: CropParams) -> SizeTuple:
        """The box's size; an error when the box reaches past the image."""
        left, top, right, bottom = params.box
        if right > size[0] or bottom > size[1]:
            raise OpError(
                f"the crop box {list(params.box)} reaches past the {size[0]}x{size[1]} image"
            )
        return right - left, bottom - top
