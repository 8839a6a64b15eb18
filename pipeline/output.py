"""The output tree and its manifest (DESIGN section 8).

``output/manifest.json`` records every delivered file with the key of the request that
made it, so a later build knows what is up to date without hashing everything: a file
is unchanged when its size and mtime match the manifest, and only when they moved is it
hashed. The manifest is written atomically; an unreadable one counts as absent (with a
warning) so a build can always recover.

The manifest is untrusted input (anyone can edit it): it is read only when it is a regular
file under :data:`MAX_MANIFEST_BYTES` (never through a link, never from a FIFO or a
device), and every path in it goes through :func:`~pipeline.fsutil.contained` before a
file is looked at or deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.fsutil import UnsafePathError, contained, write_atomic
from pipeline.hashing import sha256_file

log = logging.getLogger("assetpipe.output")

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
"""10,000 entries take a few MB; a manifest this large was not written by assetpipe."""
OUTPUT_LOCK = ".assetpipe.lock"
"""Held by a build while it writes the output tree; not an asset, never in the manifest."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Manifest:
    """The entries of ``manifest.json``, by path."""

    entries: Mapping[str, Mapping[str, Any]]

    @classmethod
    def empty(cls) -> Manifest:
        """A manifest with no entries (no earlier build)."""
        return cls(entries={})

    def by_job(self) -> dict[str, Mapping[str, Any]]:
        """Entries by job id."""
        return {str(e["job"]): e for e in self.entries.values() if "job" in e}


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
            data = handle.read(MAX_MANIFEST_BYTES + 1)
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
    return Manifest(
        entries={
            str(e["path"]): e
            for e in entries
            if isinstance(e, dict) and isinstance(e.get("path"), str)
        }
    )


def write_manifest(
    output_dir: Path, entries: Iterable[Mapping[str, Any]], totals: Mapping[str, Any]
) -> bool:
    """Write the manifest atomically, entries sorted by path, one entry per line.

    Returns False, writing nothing, when the file already says exactly this: a no-op
    build of 10,000 files should not rewrite megabytes. One compact line per entry keeps
    diffs readable and lets the C JSON encoder do the work (indentation disables it).
    """
    ordered = sorted(entries, key=lambda e: str(e["path"]))
    head = json.dumps(
        {"version": MANIFEST_VERSION, "generator": f"assetpipe {__version__}"},
        ensure_ascii=False,
    )[:-1]
    lines = ",\n".join(json.dumps(e, ensure_ascii=False) for e in ordered)
    text = (
        f'{head}, "entries": [\n{lines}\n], '
        f'"totals": {json.dumps(dict(totals), ensure_ascii=False)}}}\n'
    )
    data = text.encode("utf-8")
    path = output_dir / MANIFEST
    if _same_bytes(path, data):
        return False
    write_atomic(path, data)
    return True


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


def file_matches(output_dir: Path, entry: Mapping[str, Any]) -> bool:
    """Whether the file an entry describes is still the file it recorded.

    Size and mtime first (a stat); the content hash only when they moved, so an untouched
    tree of 10,000 files is checked in a blink and a touched-but-same file still counts.
    Only a regular file inside the output folder can match, and only a well-formed sha256.
    """
    if not isinstance(entry.get("sha256"), str) or not _SHA256.fullmatch(entry["sha256"]):
        return False
    try:
        path = contained(output_dir, str(entry["path"]))
        st = path.lstat()
    except (OSError, ValueError, KeyError, UnsafePathError):
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry.get("bytes"):
        return False
    if st.st_mtime_ns != entry.get("mtime_ns") and sha256_file(path) != entry.get("sha256"):
        return False
    companions = entry.get("companions") or ()
    if not isinstance(companions, list | tuple):
        return False
    return all(_companion_matches(output_dir, c) for c in companions)


def _companion_matches(output_dir: Path, companion: Mapping[str, Any]) -> bool:
    """A file written beside an entry's (a sheet's atlas): small, so always hashed."""
    try:
        path = contained(output_dir, str(companion["path"]))
        return stat.S_ISREG(path.lstat().st_mode) and sha256_file(path) == companion.get("sha256")
    except (OSError, ValueError, KeyError, TypeError, UnsafePathError):
        return False
