"""The output folder as one object: every read, write, stat and delete stays inside it.

Six modules used to join ``output_dir / path`` themselves, each with its own idea of
which paths were safe. :class:`OutputTree` is the one place that turns a path from a job
or from the (untrusted) manifest into a file: it refuses absolute paths, ``..`` and any
symbolic link on the way (:func:`~pipeline.fsutil.contained`), writes atomically, reads
and deletes only regular files, and holds the output lock. The runner, delivery, the
gallery and prune are handed a tree, never a bare folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from pipeline.fsutil import UnsafePathError, contained, held_lock, read_open, write_contained
from pipeline.hashing import sha256_file
from pipeline.output.entry import Companion, ManifestEntry

MAX_READ_BYTES = 1 << 30
"""The largest output file read back (an edit's input, a sheet's frame): far above any
image assetpipe writes, and a bound on what a planted sparse file can make it read."""
OUTPUT_LOCK = ".assetpipe.lock"
"""Held by a build while it writes the output tree; not an asset, never in the manifest."""
GALLERY_INDEX = "index.html"
"""The gallery page (:mod:`pipeline.gallery`)."""
THUMB_DIR = ".gallery"
"""The gallery's thumbnails, named by the sha256 of the file they show."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


class OutputTree:
    """The output folder (``root``) and the contained operations on the files in it."""

    def __init__(self, root: Path):
        self.root = root
        self._real_dirs: set[str] = set()
        """Folders of the tree already found to be real folders (not links)."""

    def __repr__(self) -> str:
        return f"OutputTree({str(self.root)!r})"

    def path(self, rel: str) -> Path:
        """``root/rel`` once it is known to stay inside the root (UnsafePathError, or
        ValueError for a NUL in a hand-edited path, otherwise)."""
        return contained(self.root, rel, self._real_dirs)

    def write(self, rel: str, data: bytes, *, fsync: bool = True) -> Path:
        """Atomically write ``data`` to ``rel``; returns the path written."""
        return write_contained(self.root, rel, data, fsync=fsync, real_dirs=self._real_dirs)

    def read(self, rel: str) -> bytes:
        """The bytes of the regular file ``rel``: never through a link, never waiting on a
        FIFO put in its place (opened without blocking, checked on the descriptor), and at
        most :data:`MAX_READ_BYTES`; anything else is an ``OSError``."""
        fd = os.open(self.path(rel), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            return read_open(fd, MAX_READ_BYTES, rel)
        finally:
            os.close(fd)

    def stat(self, rel: str) -> os.stat_result | None:
        """The file's own status (not a link's target); None when missing or unsafe."""
        try:
            return self.path(rel).lstat()
        except (OSError, ValueError, UnsafePathError):
            return None

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` is a regular file in the tree."""
        st = self.stat(rel)
        return st is not None and stat.S_ISREG(st.st_mode)

    def unlink(self, rel: str) -> bool:
        """Delete ``rel`` when it is a regular file inside the tree; whether it was."""
        try:
            target = self.path(rel)
            if not stat.S_ISREG(target.lstat().st_mode):
                return False
            target.unlink()
        except (OSError, ValueError, UnsafePathError):
            return False
        return True

    def matches(self, entry: ManifestEntry) -> bool:
        """Whether the file an entry describes is still the file it recorded.

        Size and mtime first (a stat); the content hash only when they moved, so an
        untouched tree of 10,000 files is checked in a blink and a touched-but-same file
        still counts. Only a regular file inside the tree can match, and only a
        well-formed sha256.
        """
        if entry.sha256 is None or not _SHA256.fullmatch(entry.sha256):
            return False
        try:
            path = self.path(entry.path)
            st = path.lstat()
        except (OSError, ValueError, UnsafePathError):
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.bytes:
            return False
        if st.st_mtime_ns != entry.mtime_ns and sha256_file(path) != entry.sha256:
            return False
        return all(self._companion_matches(c) for c in entry.companions or ())

    def _companion_matches(self, companion: Companion) -> bool:
        """A file written beside an entry's (a sheet's atlas): small, so always hashed."""
        try:
            path = self.path(companion.path)
            return stat.S_ISREG(path.lstat().st_mode) and sha256_file(path) == companion.sha256
        except (OSError, ValueError, UnsafePathError):
            return False

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the output folder's lock: builds of two projects (or two cache folders)
        never write one output tree and its manifest at the same time."""
        with held_lock(
            self.root / OUTPUT_LOCK,
            "the output lock",
            lambda holder: (
                f"another assetpipe build (pid {holder}) is writing to the output folder "
                f"{self.root}; wait for it to finish, or give this build its own --output"
            ),
        ):
            yield
