"""``tests/fakeapi.py`` with realistic payloads: noisy images instead of flat ones.

The stock fake answers a 1024x1024 request with a flat-colour PNG of about 17 KB; real
gpt-image PNGs are 1.5-3 MB, i.e. 2-4 MB of base64 in the JSON body. This wrapper keeps
every behaviour of the fake (same command line, same ``/_stats``) and only swaps the
drawing for Gaussian noise around the same colour, which PNG cannot compress much, so
memory benchmarks see real-sized bodies. Images are still cached per size and colour
(and stamped unique per call), so the fake itself stays cheap.

    .venv/bin/python benchmarks/fake_heavy.py --port 0 --latency 0.05
"""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
fakeapi: Any = importlib.import_module("fakeapi")

NOISE_SIGMA = 12.0
"""Gaussian noise per channel: about 2.5 MB per 1024x1024 PNG (compress level 1)."""


def _channel(width: int, height: int, centre: int) -> Image.Image:
    noise = Image.effect_noise((width, height), NOISE_SIGMA)  # mean 128
    return noise.point(lambda v: max(0, min(255, v - 128 + centre)))


def noisy_encode(
    self: Any,
    params: Any,
    color: tuple[int, ...],
    *,
    transparent: bool,
    backdrop: tuple[int, int, int] | None = None,
) -> bytes:
    """Drop-in for ``_ImageFactory._encode``: noise around ``color``, same formats (a key
    colour ``backdrop`` is not drawn: the noise is the point)."""
    w, h = params.width, params.height
    bands = [_channel(w, h, c) for c in color[:3]]
    if transparent:
        alpha = Image.new("L", (w, h), 0)
        alpha.paste(255, (w // 4, h // 4, 3 * w // 4, 3 * h // 4))
        image = Image.merge("RGBA", [*bands, alpha])
    else:
        image = Image.merge("RGB", bands)
    buffer = io.BytesIO()
    if params.output_format == "png":
        image.save(buffer, "PNG", compress_level=1)
    elif params.output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=max(1, min(95, params.compression)))
    else:
        quality = max(1, min(100, params.compression))
        image.save(buffer, "WEBP", quality=quality, method=0, xmp=self._WEBP_SLOT)
    return buffer.getvalue()


fakeapi._ImageFactory._encode = noisy_encode

if __name__ == "__main__":
    sys.exit(fakeapi.main())
