"""``tests/fakeapi.py`` whose every image has pixels of its own, as real answers do.

The stock fake draws one flat picture per size and colour (32 colours) and makes each
answer's bytes unique only by a text chunk. A client that memoises work by pixels (the
checks, the perceptual hash and the thumbnail of identical pixels are made once) would
then decode 32 pictures for a build of 400, which no real build sees. This wrapper keeps
every behaviour of the fake (same command line, same ``/_stats``) and only gives each
call's picture a mark of its own: the call's number written into a row of pixels of the
marker square, so every answer decodes to different pixels at the stock fake's size
(about 17 KB a 1024x1024 PNG).

    .venv/bin/python benchmarks/fake_distinct.py --port 0 --latency 0
"""

from __future__ import annotations

import importlib
import io
import itertools
import sys
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
fakeapi: Any = importlib.import_module("fakeapi")

_stock_encode = fakeapi._ImageFactory._encode
_calls = itertools.count(1)
_calls_lock = threading.Lock()


class _NothingKept(OrderedDict):  # type: ignore[type-arg]
    """The factory's picture cache, keeping nothing: every call draws afresh."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def distinct_encode(self: Any, params: Any, color: tuple[int, ...], **kw: Any) -> bytes:
    """The stock drawing, then 32 pixels of its first row set from the call's number."""
    data = _stock_encode(self, params, color, **kw)
    if params.output_format != "png":
        return data
    with _calls_lock:
        number = next(_calls)
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.copy()
    for bit in range(min(32, image.width)):
        shade = 255 if number >> bit & 1 else 0
        pixel = (shade,) * len(image.getbands())
        image.putpixel((bit, 0), pixel if image.mode != "RGBA" else (shade, shade, shade, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


_stock_init = fakeapi._ImageFactory.__init__


def _init(self: Any) -> None:
    _stock_init(self)
    self._cache = _NothingKept()


fakeapi._ImageFactory.__init__ = _init
fakeapi._ImageFactory._encode = distinct_encode

if __name__ == "__main__":
    sys.exit(fakeapi.main())
