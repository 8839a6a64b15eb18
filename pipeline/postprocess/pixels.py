"""A name for a PNG's pixels, apart from the text around them.

Two PNG files can differ only in their text: the API stamps each answer with its own
identifier (and, for real, its own signed C2PA manifest), and ``embed_metadata`` adds the
job's stamp to each delivered file. Decoding them gives the same pixels, so the checks,
the perceptual hash and the thumbnail, which are functions of the pixels, need to be made
once (the memo keeps them under this name: :meth:`pipeline.store.memo.LocalMemo.pixels`).

The name is the sha256 of every chunk in order, its length, type, data and CRC, except
chunks that cannot change what Pillow decodes nor whether it decodes at all: short
``tEXt`` and uncompressed ``iTXt`` text (not ``exif``, not XMP), ``tIME`` and the C2PA
store ``caBX``, each only where its CRC is right and not between two image-data chunks
(a chunk there ends the image data early). Any doubt, a file that is not a whole PNG
ending in ``IEND``, or another format, gives no name, and the file is decoded as ever.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Final

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
TEXT_BUDGET: Final = 256 * 1024
"""Bytes of skipped chunks a file may carry (Pillow refuses text past 1 MB a chunk and
64 MB in all: far below either, nothing skipped can make a decode fail)."""
_VERSION: Final = b"assetpipe-png-pixels-1\x00"
_IMAGE_DATA: Final = b"IDAT"


def pixel_digest(data: bytes) -> str | None:
    """The name of a PNG's pixels (see the module's docstring); None when there is none."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    digest = hashlib.sha256(_VERSION)
    skipped = 0
    pos = len(PNG_SIGNATURE)
    seen_image = gap = False
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            return None
        kind = data[pos + 4 : pos + 8]
        if _skippable(kind, data, pos + 8, length):
            skipped += length
            if skipped > TEXT_BUDGET or not _crc_ok(data, pos, length):
                return None
            gap = gap or seen_image
        else:
            if kind == _IMAGE_DATA:
                if gap:
                    return None  # a skipped chunk between image data: decoding stops there
                seen_image = True
            digest.update(data[pos:end])
            if kind == b"IEND":
                return digest.hexdigest()
        pos = end
    return None


def _skippable(kind: bytes, data: bytes, start: int, length: int) -> bool:
    """Whether a chunk changes neither the pixels nor whether the file decodes."""
    if kind in (b"tIME", b"caBX"):
        return True
    body = data[start : start + length]
    keyword, nul, rest = body.partition(b"\x00")
    if kind == b"tEXt":
        return bool(nul) and keyword not in (b"exif", b"XML:com.adobe.xmp")
    if kind == b"iTXt":
        return bool(nul) and rest[:1] == b"\x00" and keyword != b"XML:com.adobe.xmp"
    return False


def _crc_ok(data: bytes, pos: int, length: int) -> bool:
    """Whether the chunk at ``pos`` carries the CRC of its type and data."""
    stored = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
    return zlib.crc32(data[pos + 4 : pos + 8 + length]) == stored
