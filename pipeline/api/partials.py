"""Partial previews of a reroll started on the review page: how the build sends them.

The review server runs a reroll as ``assetpipe build --only ...`` in a child process (so
Ctrl-C, crashes and the manifest work as for any build) and hands it the write end of a
pipe (``--partials-fd N``). The build then asks the provider to stream
(``review.partial_images`` previews, when the provider can) and writes each preview to
the pipe as one frame: :data:`FRAME` (a magic, the preview's index, its length), then its
bytes. Previews only go to the pipe: the build's result, its cache entry and its output
are the final image alone, exactly as without previews. The provider that streams them
is in :mod:`~pipeline.api.previewing`; this module is light, for the server's reader too.

The paid image never waits on the server while it streams: frames are written in order
by a thread of their own, and a pipe that fails (the server stopped reading) ends the
previews, not the build.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import threading
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

from pipeline.errors import UsageError
from pipeline.jobs import ImageRequest, ImageResult

FRAME: Final = struct.Struct(">4sBI")
"""A frame's head: :data:`MAGIC`, the preview's index (0-2), the length of its bytes."""
MAGIC: Final = b"APP1"
MAX_PREVIEW_BYTES: Final = 16 * 1024 * 1024
"""The largest preview a frame carries: the provider passes on none larger."""
MAX_INDEX: Final = 2
"""``partial_images`` is at most 3, so indexes run 0-2."""


def frame(index: int, data: bytes) -> bytes:
    """One preview as it travels through the pipe."""
    return FRAME.pack(MAGIC, index, len(data)) + data


@runtime_checkable
class Streaming(Protocol):
    """A provider that can stream previews while it makes an image (OpenAI's can)."""

    async def generate_streaming(
        self,
        request: ImageRequest,
        partial_images: int,
        on_partial: Callable[[int, bytes], None],
    ) -> ImageResult:
        """``generate``, calling ``on_partial(index, bytes)`` with each preview."""
        ...


class PreviewPipe:
    """The write end of the review server's pipe. Previews are written in order by a
    thread of their own, so the build never blocks on the server while it streams."""

    def __init__(self, fd: int):
        self.fd = fd
        self._queue: deque[tuple[int, bytes]] = deque(maxlen=MAX_INDEX + 1)
        self._changed = threading.Condition()
        self._writing = False
        self._broken = False
        threading.Thread(target=self._write_all, daemon=True).start()

    @classmethod
    def open(cls, fd: int) -> PreviewPipe:
        """The pipe on descriptor ``fd``; anything else (a terminal, a file, the build's
        own stdout) is a UsageError, so a stray flag can never write into it."""
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            mode = 0
        if fd <= 2 or not stat.S_ISFIFO(mode):
            raise UsageError(
                f"--partials-fd {fd} is not an open pipe; the review server passes it to "
                "the builds it starts, and a build typed by hand needs none"
            )
        os.set_inheritable(fd, False)  # for this build only, not for anything it starts
        return cls(fd)

    def send(self, index: int, data: bytes) -> None:
        """Queue a preview for the server (one too large is dropped; at most one image's
        previews wait, the oldest giving way)."""
        if len(data) > MAX_PREVIEW_BYTES or not 0 <= index <= MAX_INDEX:
            return
        with self._changed:
            if not self._broken:
                self._queue.append((index, data))
                self._changed.notify_all()

    def drain(self) -> None:
        """Wait until every queued preview is written (or the pipe failed): an image's
        previews reach the server before its build goes on to deliver it."""
        with self._changed:
            while (self._queue or self._writing) and not self._broken:
                self._changed.wait()

    def _write_all(self) -> None:
        while True:
            with self._changed:
                while not self._queue:
                    self._changed.wait()
                index, data = self._queue.popleft()
                self._writing = True
            view = memoryview(frame(index, data))
            try:
                while view:
                    view = view[os.write(self.fd, view) :]
            except OSError:  # the server stopped reading: no more previews, same build
                with self._changed:
                    self._broken, self._writing = True, False
                    self._queue.clear()
                    self._changed.notify_all()
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                return
            with self._changed:
                self._writing = False
                self._changed.notify_all()
