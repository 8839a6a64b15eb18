"""Local image work: deliver an API image at its exact target, and derive renditions.

Every function here is pure on bytes (no file I/O, no global state), so the runner can
call it from a worker thread, and the same input always gives the same output bytes. That
determinism is what lets a rendition be cached by its source's sha256 plus its operations.

Outputs are always RGB or RGBA (JPEG: RGB), carry no metadata but the source's colour
profile, and are written in one of :data:`FORMATS`.

Decoding is the risky half: API answers and the cache are untrusted (see the threat model in
docs/reliability.md). Only PNG, WebP and JPEG are ever opened (:data:`DECODE_FORMATS`; an
EPS would make Pillow run Ghostscript), and the pixel count a header claims is checked
before any pixel is decoded: :data:`MAX_API_PIXELS` for what the API returned,
:data:`MAX_PIXELS` for the rest. Pillow's own ``DecompressionBombWarning`` is treated as the
error it warns about.

The package's public API is what it exports here; the modules behind it:

- :mod:`~pipeline.postprocess.decoding`: opening untrusted bytes, and describing an image;
- :mod:`~pipeline.postprocess.encoding`: writing pixels as png, webp or jpeg, deterministically;
- :mod:`~pipeline.postprocess.fitting`: an image at an exact target size (delivery, renditions);
- :mod:`~pipeline.postprocess.provenance`: C2PA detection and the PNG text stamp;
- :mod:`~pipeline.postprocess.sampling`: one decode shared by the checks, the perceptual
  hash and the thumbnail;
- :mod:`~pipeline.postprocess.svg` and :mod:`~pipeline.postprocess.gif`: an API's SVG
  (sanitized, drawn by resvg) and animated GIF (bounded, split into frames).
"""

from __future__ import annotations

from pipeline.postprocess.decoding import (
    DECODE_FORMATS,
    MAX_API_PIXELS,
    MAX_PIXELS,
    NON_RASTER_FORMATS,
    ImageDecodeError,
    ImageInfo,
    decode,
    deliver_non_raster,
    describe,
    measure,
    peek,
    probe,
)
from pipeline.postprocess.encoding import (
    DEFAULT_QUALITY,
    FORMATS,
    ImageOptionError,
    encode,
    normalize_format,
)
from pipeline.postprocess.fitting import MAX_EDGE, deliver, deliver_decoded, render_rendition
from pipeline.postprocess.provenance import has_c2pa, with_png_text
from pipeline.postprocess.sampling import SAMPLE_EDGE, Sample, sample, sample_bytes

__all__ = [
    "DECODE_FORMATS",
    "DEFAULT_QUALITY",
    "FORMATS",
    "MAX_API_PIXELS",
    "MAX_EDGE",
    "MAX_PIXELS",
    "NON_RASTER_FORMATS",
    "SAMPLE_EDGE",
    "ImageDecodeError",
    "ImageInfo",
    "ImageOptionError",
    "Sample",
    "decode",
    "deliver",
    "deliver_decoded",
    "deliver_non_raster",
    "describe",
    "encode",
    "has_c2pa",
    "measure",
    "normalize_format",
    "peek",
    "probe",
    "render_rendition",
    "sample",
    "sample_bytes",
    "with_png_text",
]
