"""Which project files a plan was made from, for reusing the plan while none changed.

Planning reads spec files, brand kits, templates (with their includes), input images
and ``assetpipe.lock``, in several layers that know nothing of each other. Rather than
thread a reader through all of them, each place that reads a project file reports it
here with :func:`note_read`; a caller that wants to know what a plan depends on wraps
the planning in :func:`recording`. Outside a recording, :func:`note_read` does nothing,
so the readers stay plain functions.

A read is kept as the file's sha256, or None for a file looked up and found missing (a
template included with ``ignore missing`` that appears later changes the prompt).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.hashing import sha256_bytes


@dataclass(slots=True)
class ReadLog:
    """The files one planning read: absolute path -> sha256 (None: it did not exist)."""

    files: dict[str, str | None] = field(default_factory=dict)

    def note(self, path: Path, data: bytes | None, sha256: str | None = None) -> None:
        """Record that ``path`` held ``data`` (or ``sha256`` of it; None: missing)."""
        if sha256 is None and data is not None:
            sha256 = sha256_bytes(data)
        self.files[str(path.absolute())] = sha256


_ACTIVE: contextvars.ContextVar[ReadLog | None] = contextvars.ContextVar(
    "assetpipe_read_log", default=None
)


@contextlib.contextmanager
def recording() -> Iterator[ReadLog]:
    """Record every project file read inside the block."""
    log = ReadLog()
    token = _ACTIVE.set(log)
    try:
        yield log
    finally:
        _ACTIVE.reset(token)


def note_read(path: Path, data: bytes | None, sha256: str | None = None) -> None:
    """Tell an active recording that ``path`` was read (``data`` None: it was missing)."""
    log = _ACTIVE.get()
    if log is not None:
        log.note(path, data, sha256)
