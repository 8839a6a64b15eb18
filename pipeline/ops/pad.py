"""``pad``: the image on a larger canvas of a color, placed at an anchor (a sprite on a
fixed cell, an icon with a safe margin)."""

from __future__ import annotations

from PIL import Image

from pipeline.ops.base import (
    Anchor,
    Color,
    Operation,
    OpError,
    OpParams,
    Size,
    SizeTuple,
    anchored,
    canvas,
)


class PadParams(OpParams):
    """``size`` (WxH, at least the image's), the ``color`` around it and its ``anchor``."""

    size: Size
    color: Color = "transparent"
    anchor: Anchor = "center"


class Pad(Operation[PadParams]):
    """The image on a ``size`` canvas of ``color``."""

    name = "pad"
    Params = PadParams
    version = 1

    def apply(self, image: Image.Image, params: PadParams) -> Image.Image:
        """``image`` pasted on the canvas at its anchor."""
        self.output_size(image.size, params)
        out = canvas(params.size, params.color, image)
        source = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA")
        out.paste(source, anchored(params.anchor, params.size, image.size))
        return out

    def output_size(self, size: SizeTuple, params: PadParams) -> SizeTuple:
        """``params.size``; an error when the image is larger than it."""
        width, height = params.size
        if size[0] > width or size[1] > height:
            raise OpError(
                f"cannot pad a {size[0]}x{size[1]} image to {width}x{height}: it is larger; "
                "fit, resize or crop it first"
            )
        return params.size
