"""The previews a reroll's build streams back to the review server, read with care.

The build is a child process writing frames (:mod:`pipeline.api.partials`) to a pipe,
and what it writes is untrusted like anything read from outside the server: a frame's
head is checked before its bytes are read (the magic, an index of 0-2, a length up to
:data:`~pipeline.api.partials.MAX_PREVIEW_BYTES`), so memory stays near one preview
whatever arrives, and a preview is kept only when its bytes are a PNG, WebP or JPEG
(:func:`image_type`). A frame that breaks the format ends the reading (the pipe is
closed, and the build's previews with it; the build itself goes on). Only the latest
preview of a reroll is kept, and it stays after the build ends, so a page that polls
late still shows it once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from pipeline.api.partials import FRAME, MAGIC, MAX_INDEX, MAX_PREVIEW_BYTES

log = logging.getLogger("assetpipe.review")

_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


def image_type(data: bytes) -> str | None:
    """The media type of ``data`` by its first bytes: PNG, JPEG or WebP; None otherwise."""
    for signature, media in _SIGNATURES:
        if data.startswith(signature):
            return media
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True, slots=True)
class Preview:
    """One preview of the image a reroll is making."""

    seq: int
    """Unique in this server's life: the page asks for ``/api/partial?seq=N`` and shows
    each preview once."""
    job: str
    index: int
    media_type: str
    data: bytes

    def as_json(self) -> dict[str, object]:
        """What ``/api/state`` says of it (the bytes are fetched apart)."""
        return {"seq": self.seq, "job": self.job, "index": self.index}


class BadFrame(Exception):
    """A frame that is not what the build writes."""


_numbers = itertools.count(1)


def read_previews(fd: int, job: str, keep: Callable[[Preview], None]) -> None:
    """Read frames from pipe ``fd`` until it ends, handing each image to ``keep``; the
    descriptor is closed when this returns (a bad frame ends it early, and the build's
    next write then fails, which ends its previews)."""
    try:
        while True:
            head = _read_exactly(fd, FRAME.size)
            if head is None:
                return
            magic, index, length = FRAME.unpack(head)
            if magic != MAGIC or index > MAX_INDEX or length > MAX_PREVIEW_BYTES:
                raise BadFrame(
                    f"a preview frame with index {index} and {length} bytes "
                    f"(at most {MAX_INDEX} and {MAX_PREVIEW_BYTES})"
                    if magic == MAGIC
                    else "bytes that are not a preview frame"
                )
            data = _read_exactly(fd, length)
            if data is None:
                return  # the build ended in the middle of a frame: nothing to show
            media = image_type(data)
            if media is None:
                log.warning("refused a preview from the build: not a PNG, WebP or JPEG")
                continue
            keep(Preview(next(_numbers), job, index, media, data))
    except BadFrame as exc:
        log.warning("stopped reading the build's previews: it sent %s", exc)
    except OSError as exc:
        log.warning("stopped reading the build's previews: %s", exc.strerror or exc)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or None when it ends first."""
    data = bytearray()
    while len(data) < size:
        piece = os.read(fd, min(size - len(data), 1024 * 1024))
        if not piece:
            return None
        data += piece
    return bytes(data)
