"""``chroma_key``: a flat key color made transparent, with clean edges.

How a model without transparent backgrounds still makes cut-outs: it is asked for the
subject on a flat, saturated color (magenta, green or blue) and this operation keys it
out. A pixel within ``tolerance`` of the key (in its most different channel) becomes
transparent, one past ``tolerance + softness`` stays opaque, and those between get a
partial alpha, so antialiased edges stay smooth. Edge pixels also carry the key's cast
(a magenta fringe): ``despill`` takes it out of every pixel in the edge band (partial
alpha, or within ``band`` pixels of a keyed one) by lowering the key's strong channels to
the level of its weak ones where all of them exceed it. Pixels inside the subject are
left alone, so a red coat on magenta stays red.
"""

from __future__ import annotations

from functools import reduce

from PIL import Image, ImageChops, ImageFilter
from pydantic import Field, field_validator

from pipeline.jobs.job import OpCall
from pipeline.ops.base import Color, Operation, OpParams, dumped, rgba


class ChromaKeyParams(OpParams):
    """``color`` (the key, opaque ``#RRGGBB``), ``tolerance`` (0-255: as far from the
    key as a pixel may be and still be background), ``softness`` (0-255: the ramp of
    partial alpha past it), ``despill`` (on by default) and ``band`` (1-8 pixels: how
    far into the subject the edge band reaches)."""

    color: Color
    tolerance: int = Field(48, ge=0, le=255)
    softness: int = Field(48, ge=0, le=255)
    despill: bool = True
    band: int = Field(2, ge=1, le=8)

    @field_validator("color")
    @classmethod
    def _opaque(cls, color: str) -> str:
        if not color.endswith("FF"):
            raise ValueError(f"the key color {color} is not opaque: write #RRGGBB")
        return color


class ChromaKey(Operation[ChromaKeyParams]):
    """The key color keyed out to transparency, the edges despilled."""

    name = "chroma_key"
    Params = ChromaKeyParams
    version = 1
    expensive = True  # several whole-image passes and a dilation: once per input

    def apply(self, image: Image.Image, params: ChromaKeyParams) -> Image.Image:
        """An RGBA image: the key transparent, partial alpha on the ramp, edges clean."""
        key = rgba(params.color)[:3]
        source = image.convert("RGBA")
        rgb = source.convert("RGB")
        distance = _distance(rgb, key)
        low, soft = params.tolerance, max(1, params.softness)

        def ramp(d: int) -> int:
            return 0 if d <= low else 255 if d >= low + soft else round(255 * (d - low) / soft)

        alpha = ImageChops.multiply(distance.point(ramp), source.getchannel("A"))
        if params.despill:
            rgb = _despilled(rgb, alpha, key, params.band)
        out = rgb.convert("RGBA")
        out.putalpha(alpha)
        return out


def _distance(rgb: Image.Image, key: tuple[int, int, int]) -> Image.Image:
    """Per pixel, the largest channel difference from ``key`` (0-255)."""
    channels = ImageChops.difference(rgb, Image.new("RGB", rgb.size, key)).split()
    return reduce(ImageChops.lighter, channels)


def _despilled(
    rgb: Image.Image, alpha: Image.Image, key: tuple[int, int, int], band: int
) -> Image.Image:
    """``rgb`` with the key's cast taken out of the edge band. The key's strong channels
    (128 and up) are lowered by how much all of them exceed its weak ones: green spill
    ``g -> max(r, b)``, magenta ``r, b`` both lowered by ``min(r, b) - g``. A key with
    no weak or no strong channel (a gray) has no cast to take out."""
    strong = [i for i, c in enumerate(key) if c >= 128]
    weak = [i for i, c in enumerate(key) if c < 128]
    if not strong or not weak:
        return rgb
    channels = list(rgb.split())
    floor = reduce(ImageChops.lighter, [channels[i] for i in weak])
    top = reduce(ImageChops.darker, [channels[i] for i in strong])
    spill = ImageChops.subtract(top, floor)
    for i in strong:
        channels[i] = ImageChops.subtract(channels[i], spill)
    despilled = Image.merge("RGB", channels)
    keyed = alpha.point(lambda a: 255 if a < 255 else 0)
    edge = keyed
    for _ in range(band):  # a 3x3 maximum per pixel of band: cheap on large images
        edge = edge.filter(ImageFilter.MaxFilter(3))
    return Image.composite(despilled, rgb, edge)


def chroma_call(color: str) -> OpCall:
    """The call a plan makes for the chroma route of a transparent background: the key
    ``color`` keyed out with the default tolerance, softness and despill."""
    params = ChromaKeyParams(color=color)
    return OpCall(name=ChromaKey.name, params=dumped(params), version=ChromaKey.version)
