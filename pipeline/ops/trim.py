"""``trim``: the image cut to its visible content, plus a margin.

Generated sprites come with uneven empty space around them; trimming first gives every
frame a content box that a following ``canvas`` can scale and anchor the same way. What
is content: on an image with transparent pixels, alpha above ``threshold``; on an opaque
one, pixels that differ from the top-left corner's color (the background) by more than
``tolerance`` in some channel. The result's size depends on the pixels, so the plan
knows only its bound (the input's size).
"""

from __future__ import annotations

from PIL import Image, ImageChops
from pydantic import Field

from pipeline.ops.base import MAX_SIDE, Operation, OpParams, SizeTuple


class TrimParams(OpParams):
    """``threshold`` (alpha 0-254 that still counts as empty), ``tolerance`` (0-255, how
    far from the background an opaque pixel may be and still be background) and
    ``margin`` (pixels of the image kept around the content, as far as it reaches)."""

    threshold: int = Field(0, ge=0, le=254)
    tolerance: int = Field(16, ge=0, le=255)
    margin: int = Field(0, ge=0, le=MAX_SIDE)


class Trim(Operation[TrimParams]):
    """The content box of the image, grown by ``margin``."""

    name = "trim"
    Params = TrimParams
    version = 1
    sized_by_content = True

    def apply(self, image: Image.Image, params: TrimParams) -> Image.Image:
        """``image`` cut to :func:`content_box` grown by the margin (within the image);
        an image with no content comes back whole (there is nothing to cut to)."""
        box = content_box(image, params.threshold, params.tolerance)
        if box is None:
            return image.copy()
        left, top, right, bottom = box
        m = params.margin
        return image.crop(
            (
                max(0, left - m),
                max(0, top - m),
                min(image.width, right + m),
                min(image.height, bottom + m),
            )
        )

    def output_size(self, size: SizeTuple, params: TrimParams) -> SizeTuple:
        """At most the input's size (the content decides)."""
        return size


def content_box(
    image: Image.Image, threshold: int = 0, tolerance: int = 16
) -> tuple[int, int, int, int] | None:
    """The box ``(left, top, right, bottom)`` of the visible content (None: none). By
    alpha when some pixel is transparent, else by difference from the corner color."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = image.convert("RGBA").getchannel("A")
        low, _high = alpha.getextrema()
        if isinstance(low, int) and low < 255:
            return alpha.point(lambda a: 255 if a > threshold else 0).getbbox()
    rgb = image.convert("RGB")
    corner = rgb.getpixel((0, 0))
    background = Image.new("RGB", rgb.size, corner if isinstance(corner, tuple) else (0, 0, 0))
    red, green, blue = ImageChops.difference(rgb, background).split()
    spread = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return spread.point(lambda d: 255 if d > tolerance else 0).getbbox()
