"""The review server's images: files of the output trees, streamed from the descriptor
that was checked.

A file under ``output/`` may be anything someone put there: a link, a FIFO (whose open
for reading waits for a writer), a device, a sparse file of gigabytes. Only regular
image files up to :data:`MAX_FILE` are sent, opened without following a link and without
waiting, checked on the open descriptor and sent from it, so the file checked is the
file sent.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from pipeline.fsutil import UnsafePathError, regular_size
from pipeline.output import OutputTree

MAX_FILE: Final = 64 * 1024 * 1024
"""The largest file served. assetpipe accepts no image over 40 MiB from a provider (an
uncompressed RGBA PNG at the largest native size, 3840x2160, is about 33 MB), and the
renditions and thumbnails made from one are smaller; 64 MiB leaves room for that and
turns away what assetpipe did not write (a sparse file of gigabytes, say) before a byte
of it is sent. A sheet packed past it is refused too, with a message saying to open it
from the output folder: no browser tab needs it whole to review it."""
CHUNK: Final = 256 * 1024
"""Bytes read from a served file at a time: about what one response holds in memory."""
IMAGE_TYPES: Final = {
    "png": "image/png",
    "webp": "image/webp",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
}
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def image(tree: OutputTree, request: Request) -> Response:
    """An image file of ``tree``, streamed; 404 for anything else: other types, escapes,
    links, FIFOs and devices, and files over :data:`MAX_FILE`."""
    rel = request.path_params["path"]
    media = IMAGE_TYPES.get(rel.rpartition(".")[2].lower())
    if media is None:
        return _not_served()
    try:
        fd, size = await run_in_threadpool(_open_image, tree, rel)
    except OSError as exc:
        return _not_served(_TOO_LARGE if exc.errno == errno.EFBIG else _NOT_AN_IMAGE)
    except (ValueError, UnsafePathError):
        return _not_served()
    return OpenFileResponse(fd, size, media, head=request.method == "HEAD")


_NOT_AN_IMAGE: Final = "not an image of the output tree"
_TOO_LARGE: Final = (
    f"larger than the {MAX_FILE // 2**20} MiB this page serves; open it from the output folder"
)


def _not_served(why: str = _NOT_AN_IMAGE) -> Response:
    return PlainTextResponse(why, status_code=404)


def _open_image(tree: OutputTree, rel: str) -> tuple[int, int]:
    """``rel`` of ``tree`` open for reading, and its size.

    Opened without following a link and without waiting (``O_NONBLOCK``: opening a FIFO
    to read otherwise waits for a writer, holding a worker thread for good), then checked
    on the descriptor itself, so the file checked is the file sent.
    """
    fd = os.open(tree.path(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return fd, regular_size(fd, MAX_FILE, rel)
    except BaseException:
        os.close(fd)
        raise


class OpenFileResponse(StreamingResponse):
    """A regular file already open as ``fd``, sent :data:`CHUNK` bytes at a time and
    closed when the response ends, however it ends (sent, client gone, server stopping).

    Not Starlette's ``FileResponse``: that opens the path again, following a link or
    waiting on a FIFO put in place of the checked file, so what was checked would not
    be what is sent. A HEAD gets the headers and no read at all.
    """

    def __init__(self, fd: int, size: int, media_type: str, *, head: bool = False):
        self.fd = fd
        super().__init__(
            _chunks(fd, 0 if head else size),
            media_type=media_type,
            headers={"Cache-Control": "no-cache", "Content-Length": str(size)},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self.fd)


async def _chunks(fd: int, size: int) -> AsyncIterator[bytes]:
    """The first ``size`` bytes of ``fd``, read off the event loop. A file cut short in
    place while it is sent ends the stream early: the client sees a transfer shorter
    than its ``Content-Length``, never another file's bytes."""
    sent = 0
    while sent < size:
        chunk = await run_in_threadpool(os.pread, fd, min(CHUNK, size - sent), sent)
        if not chunk:
            return
        sent += len(chunk)
        yield chunk
