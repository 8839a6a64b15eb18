"""``posterize``: an assetpipe image operation in a package of its own.

Installed beside assetpipe, it is listed under ``op: posterize`` in any spec: its
parameters are checked by :class:`PosterizeParams` (``bits`` from 1 to 8, nothing else),
and its version enters the cache key of every file it touches. assetpipe finds it
through the ``assetpipe.ops`` entry point in this package's ``pyproject.toml``.
"""

from __future__ import annotations

from typing import Annotated

from PIL import Image, ImageOps
from pydantic import Field

from pipeline.ops import Operation, OpParams


class PosterizeParams(OpParams):
    """``bits``: how many bits of each color channel are kept (1 to 8)."""

    bits: Annotated[int, Field(ge=1, le=8)]


class Posterize(Operation[PosterizeParams]):
    """Fewer tones per channel: flat, poster-like color (alpha is kept as it is)."""

    name = "posterize"
    Params = PosterizeParams
    version = 1

    def apply(self, image: Image.Image, params: PosterizeParams) -> Image.Image:
        """``image`` with each color channel cut to ``params.bits`` bits."""
        if image.mode == "RGBA":
            rgb = ImageOps.posterize(image.convert("RGB"), params.bits)
            rgb.putalpha(image.getchannel("A"))
            return rgb
        return ImageOps.posterize(image.convert("RGB"), params.bits)
