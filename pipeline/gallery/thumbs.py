"""Thumbnails of the output tree's images, shared by the static page, the review server
and the build (which makes each one as its file lands).

Thumbnails (at most 256 px, WebP) live in ``output/.gallery/<sha256>.webp``, named by the
source file's content hash, so an unchanged file is never thumbnailed twice and a changed
one gets a new thumbnail; thumbnails no entry uses any more are removed by the page.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Set
from pathlib import Path
from typing import Final

from PIL import Image

from pipeline.fsutil import UnsafePathError
from pipeline.hashing import sha256_file
from pipeline.output import THUMB_DIR, ManifestEntry, OutputTree
from pipeline.postprocess import DECODE_FORMATS

THUMB_EDGE: Final = 256
THUMB_QUALITY: Final = 80
THUMB_METHOD: Final = 2
"""libwebp's effort (0-6): 2 takes 40% of the time of 4 for files ~10% larger."""
THUMB_NAME: Final = re.compile(r"[0-9a-f]{64}\.webp")


def thumbnail_of(
    tree: OutputTree, entry: ManifestEntry, present: Set[str] | None = None
) -> tuple[str, str]:
    """``(thumbnail file name, "")`` for an entry's file, or ``("", why there is none)``.

    ``present`` is the folder's thumbnails as :func:`thumbnails_in` listed them: a page of
    10,000 cards then asks the file system about each card's file only, not also about
    its thumbnail (a contained path and a stat per card)."""
    rel = entry.path
    try:
        # The manifest's hash names the thumbnail only while the file is the one it
        # recorded (same check as a build's, which also finds it a regular file inside
        # the tree): otherwise hash the file as it is now.
        if tree.matches(entry) and entry.sha256:
            digest, source = entry.sha256, None
        else:
            source = tree.path(rel)
            if not source.is_file():
                return "", f"file missing: {rel}"
            digest = sha256_file(source)
        name = f"{digest}.webp"
        if present is None or name not in present:
            write_thumbnail(tree, digest, source or tree.path(rel))
    except UnsafePathError as exc:
        return "", str(exc)
    except Exception as exc:
        # Pillow reports a corrupt file through many exception types; the card says why.
        return "", f"cannot read {rel}: {exc}"
    return name, ""


def thumbnails_in(tree: OutputTree) -> frozenset[str]:
    """The thumbnails in the tree, listed once: the names of regular files in a real
    ``.gallery`` folder (never through a link; empty when there is no such folder)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        folder = os.open(tree.path(THUMB_DIR), flags)
    except (OSError, ValueError, UnsafePathError):
        return frozenset()
    try:
        with os.scandir(folder) as listing:
            return frozenset(
                e.name
                for e in listing
                if THUMB_NAME.fullmatch(e.name) and e.is_file(follow_symlinks=False)
            )
    except OSError:
        return frozenset()
    finally:
        os.close(folder)


def write_thumbnail(
    tree: OutputTree, sha256: str, source: Path | bytes | Image.Image, *, in_place: bool = False
) -> str:
    """Make the thumbnail of the file with this sha256 unless it exists; returns its name.

    Builds call this as each file lands (in worker threads, while other requests are in
    flight), so the gallery at the end of a build only writes its page. With ``in_place``
    a decoded image is shrunk instead of copied (the caller is done with it).
    """
    name = f"{sha256}.webp"
    if not has_thumbnail(tree, sha256):
        if isinstance(source, Image.Image):
            thumbnail = encode_thumbnail(source if in_place else source.copy())
        else:
            data = source if isinstance(source, bytes) else source.read_bytes()
            thumbnail = _render_thumbnail(data)
        keep_thumbnail(tree, sha256, thumbnail)
    return name


def has_thumbnail(tree: OutputTree, sha256: str) -> bool:
    """Whether the thumbnail of the file with this sha256 is in the tree."""
    return tree.exists(f"{THUMB_DIR}/{sha256}.webp")


def link_thumbnail(tree: OutputTree, sha256: str, fd: int) -> bool:
    """Put a thumbnail kept elsewhere on this file system (open as ``fd``, checked by the
    caller) in the tree as a hard link to that very file: no copy. False when it cannot
    be linked there (another file system, no ``/proc``): then write a copy."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        target = tree.path(f"{THUMB_DIR}/{sha256}.webp")
        try:
            folder = os.open(target.parent, flags)
        except FileNotFoundError:  # the first thumbnail of the tree: made once, not asked each time
            target.parent.mkdir(parents=True, exist_ok=True)
            folder = os.open(target.parent, flags)
    except (OSError, ValueError, UnsafePathError):
        return False
    try:
        # linkat(AT_SYMLINK_FOLLOW) of the open file itself, not of whatever its path
        # names by now (a folder descriptor makes Python call linkat, not link).
        os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=folder, follow_symlinks=True)
    except FileExistsError:
        return tree.exists(f"{THUMB_DIR}/{sha256}.webp")
    except OSError:
        return False
    finally:
        os.close(folder)
    return True


def keep_thumbnail(tree: OutputTree, sha256: str, thumbnail: bytes) -> str:
    """Write a thumbnail already made (WebP bytes) for the file with this sha256; returns
    its name. Atomic, not synced: a thumbnail lost to a crash is drawn again."""
    name = f"{sha256}.webp"
    tree.write(f"{THUMB_DIR}/{name}", thumbnail, fsync=False)
    return name


def remove_stale_thumbnails(tree: OutputTree, used: Set[str]) -> None:
    """Delete thumbnails no entry uses any more (only files named like thumbnails)."""
    thumb_dir = tree.root / THUMB_DIR
    if thumb_dir.is_dir() and not thumb_dir.is_symlink():
        for stale in thumb_dir.iterdir():
            if THUMB_NAME.fullmatch(stale.name) and stale.name not in used:
                stale.unlink(missing_ok=True)


def _render_thumbnail(data: bytes) -> bytes:
    """A WebP at most :data:`THUMB_EDGE` px on its long side; transparency kept."""
    with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as image:
        return encode_thumbnail(image)


def encode_thumbnail(image: Image.Image) -> bytes:
    """Shrink ``image`` in place and encode it as the WebP thumbnail (at most
    :data:`THUMB_EDGE` px on its long side; transparency kept)."""
    image.thumbnail((THUMB_EDGE, THUMB_EDGE), Image.Resampling.LANCZOS)
    bands = image.getbands()
    alpha = "A" in bands or "a" in bands or "transparency" in image.info
    small = image.convert("RGBA" if alpha else "RGB")
    buffer = io.BytesIO()
    small.save(buffer, format="WEBP", quality=THUMB_QUALITY, method=THUMB_METHOD)
    return buffer.getvalue()
