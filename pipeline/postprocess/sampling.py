"""One decode of a delivered image, shared by everything that inspects it.

The quality checks, the perceptual hash and the gallery thumbnail all look at a delivered
file, and none of them needs its full resolution except the alpha check (a few clear
pixels decide it) and the size check (the header decides it). A :class:`Sample` holds
what they read: the full image's facts, its alpha histogram, and a copy shrunk by a whole
factor with Pillow's ``reduce`` (a box average, a fraction of a resample's cost) to at
least :data:`SAMPLE_EDGE` pixels on its long side. A JPEG is decoded already shrunk
(``Image.draft``: the decoder skips the detail), so its full pixels are never made.

A 1024x1024 image shrinks by 4 to 256x256, exactly the first step Pillow itself takes
when the dominant colors are sampled at 128 px, so those come out the same as from the
full image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from PIL import Image

from pipeline.postprocess import gif, svg
from pipeline.postprocess.decoding import (
    MAX_PIXELS,
    ImageInfo,
    decode_within,
    has_alpha_band,
    open_within,
    source_format,
    undecodable,
)

SAMPLE_EDGE: Final = 256
"""The shrunk copy keeps at least this many pixels on its long side: the thumbnail's edge."""


@dataclass(frozen=True, slots=True)
class Sample:
    """An image decoded once, as the checks, the perceptual hash and the thumbnail read it."""

    info: ImageInfo
    """The full image: size, container format, mode, and whether some pixel is transparent."""
    small: Image.Image
    """RGB or RGBA, shrunk by a whole factor to at least :data:`SAMPLE_EDGE` px on its long
    side (the image itself, converted, when it is not larger)."""
    alpha: tuple[int, ...] | None
    """The full image's alpha histogram (256 counts), or None when it has no alpha band."""

    @property
    def pixels(self) -> int:
        """The full image's pixel count."""
        return self.info.width * self.info.height


def sample(image: Image.Image) -> Sample:
    """The sample of a decoded image (``image`` itself is left as it is)."""
    return _sample(image, image.size, image.mode)


def sample_bytes(data: bytes, max_pixels: int = MAX_PIXELS) -> Sample:
    """Decode ``data`` (PNG, WebP or JPEG, at most ``max_pixels``) straight into a sample;
    :class:`~pipeline.postprocess.ImageDecodeError` when it cannot be decoded.

    A JPEG is decoded at the smallest DCT scale that still gives :data:`SAMPLE_EDGE` px.
    An SVG is sampled as resvg draws it, a GIF by its first frame.
    """
    if svg.is_svg(data) or gif.is_gif(data):
        drawn = decode_within(data, max_pixels)
        return _sample(drawn, drawn.size, drawn.mode)
    image = open_within(data, max_pixels)
    full, mode = image.size, image.mode
    try:
        if image.format == "JPEG":
            long_edge = max(full)
            if long_edge > SAMPLE_EDGE:
                wanted = tuple(max(1, -(-side * SAMPLE_EDGE // long_edge)) for side in full)
                image.draft("RGB", (wanted[0], wanted[1]))
        image.load()
    except Exception as exc:
        raise undecodable(data, exc) from exc
    return _sample(image, full, mode)


def _sample(image: Image.Image, full: tuple[int, int], mode: str) -> Sample:
    """The sample of ``image`` (maybe decoded shrunk) of a ``full``-sized ``mode`` image."""
    fmt = source_format(image)
    if image.mode in ("RGB", "RGBA"):
        rgb = image
    else:
        rgb = image.convert("RGBA" if has_alpha_band(image) else "RGB")
    alpha = tuple(rgb.getchannel("A").histogram()) if rgb.mode == "RGBA" else None
    factor = max(rgb.size) // SAMPLE_EDGE
    # A copy when nothing shrinks it: the thumbnail shrinks `small` in place, and the
    # caller's image must stay as it is.
    small = rgb.reduce(factor) if factor > 1 else rgb.copy()
    info = ImageInfo(
        width=full[0],
        height=full[1],
        format=fmt,
        mode=mode,
        has_alpha=alpha is not None and any(alpha[:255]),
    )
    return Sample(info=info, small=small, alpha=alpha)
