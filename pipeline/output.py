"""The output tree and its manifest (DESIGN section 8).

``output/manifest.json`` records every delivered file with the key of the request that
made it, so a later build knows what is up to date without hashing everything: a file
is unchanged when its size and mtime match the manifest, and only when they moved is it
hashed. The manifest is written atomically; an unreadable one counts as absent (with a
warning) so a build can always recover.
"""

from __future__ import annotations

import json
import logging
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


def load_manifest(output_dir: Path) -> Manifest:
    """Read ``output/manifest.json``; missing or unreadable is an empty manifest."""
    path = output_dir / MANIFEST
    try:
        raw = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return Manifest.empty()
    except (OSError, ValueError) as exc:
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
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(path, data)
    return True


def file_matches(output_dir: Path, entry: Mapping[str, Any]) -> bool:
    """Whether the file an entry describes is still the file it recorded.

    Size and mtime first (a stat); the content hash only when they moved, so an untouched
    tree of 10,000 files is checked in a blink and a touched-but-same file still counts.
    """
    try:
        path = contained(output_dir, str(entry["path"]))
        st = path.stat()
    except (OSError, KeyError, UnsafePathError):
        return False
    if st.st_size != entry.get("bytes"):
        return False
    if st.st_mtime_ns != entry.get("mtime_ns") and sha256_file(path) != entry.get("sha256"):
        return False
    return all(_companion_matches(output_dir, c) for c in entry.get("companions") or ())


def _companion_matches(output_dir: Path, companion: Mapping[str, Any]) -> bool:
    """A file written beside an entry's (a sheet's atlas): small, so always hashed."""
    try:
        path = contained(output_dir, str(companion["path"]))
        return path.is_file() and sha256_file(path) == companion.get("sha256")
    except (OSError, KeyError, UnsafePathError):
        return False
