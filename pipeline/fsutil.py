"""Atomic, contained file writes.

Every file assetpipe writes goes to a temporary file in the same folder and is renamed
over the target, so a crash leaves either the old file or the new one, never half of
one. Writes under a root also refuse to leave it: no ``..``, no absolute paths, and no
symbolic link on the way that could send bytes somewhere else.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path, PurePosixPath

from pipeline.errors import PipelineError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class UnsafePathError(PipelineError):
    """A write that would leave its root folder."""


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; a delivered asset gets the mode any new file would get.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def contained(root: Path, relative: str) -> Path:
    """``root/relative`` after checking that it cannot escape ``root``.

    Rejects absolute paths, ``..`` parts and any existing symbolic link between the root
    and the target (a link could point anywhere on disk).
    """
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UnsafePathError(f"refusing to write outside {root}: {relative!r}")
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            raise UnsafePathError(
                f"refusing to write through the symbolic link {current}; "
                "remove it so assetpipe writes only inside its output folder"
            )
    return current


def write_contained(root: Path, relative: str, data: bytes, *, fsync: bool = True) -> Path:
    """Atomically write ``data`` to ``root/relative``; returns the path written."""
    if root.is_symlink():
        raise UnsafePathError(f"the output folder {root} is a symbolic link")
    target = contained(root, relative)
    write_atomic(target, data, fsync=fsync)
    return target
