"""The manifest of the output tree: typed entries, read and written.

``output/manifest.json`` records every delivered file with the key of the request that
made it, so a later build knows what is up to date without hashing everything: a file
is unchanged when its size and mtime match the manifest, and only when they moved is it
hashed. The manifest is written atomically; an unreadable one counts as absent (with a
warning) so a build can always recover.

The manifest is untrusted input (anyone can edit it): it is read only when it is a regular
file under :data:`MAX_MANIFEST_BYTES` (never through a link, never from a FIFO or a
device), and every path in it goes through :func:`~pipeline.fsutil.contained` before a
file is looked at or deleted.

A manifest that cannot be written (a full disk) is :class:`ManifestUnwritable`, a message
rather than a traceback; the manifest from before stays whole, as every write is atomic.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.errors import PipelineError
from pipeline.fsutil import write_atomic
from pipeline.output.entry import ManifestEntry

log = logging.getLogger("assetpipe.output")

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
"""10,000 entries take a few MB; a manifest this large was not written by assetpipe."""


class ManifestUnwritable(PipelineError):
    """``manifest.json`` could not be written (exit 1): the build made what it made, but
    cannot record it."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """The entries of ``manifest.json``, by path."""

    entries: Mapping[str, ManifestEntry]

    @classmethod
    def empty(cls) -> Manifest:
        """A manifest with no entries (no earlier build)."""
        return cls(entries={})


def read_manifest_bytes(path: Path) -> bytes | None:
    """The bytes of a manifest file; None (with a warning unless it is missing) when it is
    a link, not a regular file, over :data:`MAX_MANIFEST_BYTES`, or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if path.is_symlink():
            log.warning("ignoring %s: it is a symbolic link; remove it", path)
        else:
            log.warning("ignoring unreadable %s (%s)", path, exc.strerror)
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            log.warning("ignoring %s: it is not a regular file; remove it", path)
            return None
        if info.st_size > MAX_MANIFEST_BYTES:
            log.warning(
                "ignoring %s: it is %s bytes, more than the %s an assetpipe manifest may be",
                path,
                f"{info.st_size:,}",
                f"{MAX_MANIFEST_BYTES:,}",
            )
            return None
        try:
            # Sized by the file, not the cap: a read of n bytes sets n bytes aside first.
            data = handle.read(info.st_size + 1)
            if len(data) > info.st_size:  # it grew since fstat: read on, to the cap
                data += handle.read(MAX_MANIFEST_BYTES + 1 - len(data))
        except OSError as exc:
            log.warning("ignoring unreadable %s (%s)", path, exc.strerror)
            return None
    if len(data) > MAX_MANIFEST_BYTES:
        log.warning(
            "ignoring %s: it grew past %s bytes while read", path, f"{MAX_MANIFEST_BYTES:,}"
        )
        return None
    return data


def load_manifest(output_dir: Path) -> Manifest:
    """Read ``output/manifest.json``; missing or unreadable is an empty manifest.

    An empty manifest makes a build check every file again and lets ``--prune`` delete
    nothing: it knows no earlier file.
    """
    path = output_dir / MANIFEST
    data = read_manifest_bytes(path)
    if data is None:
        return Manifest.empty()
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        log.warning("ignoring unreadable %s (%s); every file will be checked again", path, exc)
        return Manifest.empty()
    entries = raw.get("entries") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        log.warning("ignoring %s: it has no entries list", path)
        return Manifest.empty()
    parsed = [ManifestEntry.from_json(e) for e in entries]
    valid = {e.path: e for e in parsed if e is not None}
    if len(valid) < len(entries):
        dropped = sum(1 for e in parsed if e is None)
        if dropped:
            log.warning(
                "ignoring %d malformed entr%s of %s; their files will be checked again",
                dropped,
                "y" if dropped == 1 else "ies",
                path,
            )
    return Manifest(entries=valid)


def write_manifest(
    output_dir: Path, entries: Iterable[ManifestEntry], totals: Mapping[str, Any]
) -> bool:
    """Write the manifest atomically, entries sorted by path, one entry per line.

    Returns False, writing nothing, when the file already says exactly this: a no-op
    build of 10,000 files should not rewrite megabytes. One compact line per entry keeps
    diffs readable and lets the C JSON encoder do the work (indentation disables it).
    """
    ordered = [e.as_json() for e in sorted(entries, key=lambda e: e.path)]
    head = json.dumps(
        {"version": MANIFEST_VERSION, "generator": f"assetpipe {__version__}"},
        ensure_ascii=False,
    )[:-1]
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one per entry
    lines = ",\n".join(map(encode, ordered))
    text = (
        f'{head}, "entries": [\n{lines}\n], '
        f'"totals": {json.dumps(dict(totals), ensure_ascii=False)}}}\n'
    )
    data = text.encode("utf-8")
    path = output_dir / MANIFEST
    if _same_bytes(path, data):
        return False
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise ManifestUnwritable(unwritable_message(path, exc)) from None
    return True


GLOSSES = {errno.EFBIG: "past the largest file this process may write (ulimit -f)"}
"""What the system's words for an error mean, where they do not say it themselves."""


def unwritable_message(path: Path, exc: OSError) -> str:
    """What to tell a user whose manifest could not be written.

    Says which file and why, that it is untouched (so no later build reads half of one),
    and what is not lost: every image made so far sits in the cache, so the next build
    delivers it without paying for it again.
    """
    reason = exc.strerror or str(exc)
    if exc.errno in GLOSSES:
        reason = f"{reason}: {GLOSSES[exc.errno]}"
    left = (
        "the manifest of the build before is kept as it was"
        if os.path.lexists(path)
        else "no part of it was left"
    )
    return (
        f"could not write {path} ({reason}); {left}. The images this build made are kept "
        "in the cache: free some space and build again, and the next build will not pay "
        "for them again"
    )


def _same_bytes(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file (not a link) holding exactly ``data``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
            return False
        return handle.read(len(data) + 1) == data
