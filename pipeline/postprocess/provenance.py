"""Where a delivered file came from: the C2PA manifest the API signed, and our own stamp.

OpenAI signs every image with a C2PA manifest, which any re-encode drops; the manifest
records whether a file still carries it. A delivered PNG can also carry the job id and
cache key in a text chunk, so a file can be traced to its spec without the manifest.
Both work on the bytes as they are: nothing here decodes or re-encodes pixels.
"""

from __future__ import annotations

import struct
import zlib

from pipeline.postprocess.decoding import ImageDecodeError


def has_c2pa(data: bytes) -> bool:
    """Whether the bytes carry a C2PA manifest store (a JUMBF box labelled ``c2pa``).

    OpenAI embeds one in every image; any re-encode (crop, resize, format change) drops
    it, which the manifest records so nobody mistakes a derived file for a signed one.
    """
    return b"jumb" in data and b"c2pa" in data


def with_png_text(data: bytes, key: str, text: str) -> bytes:
    """A PNG with one more ``iTXt`` chunk before ``IEND``; pixels are not re-encoded.

    Used to stamp the job id and cache key into delivered PNGs (``embed_metadata``):
    tools can trace a file to its spec without the manifest. Never put secrets in it.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or data[-12:-8] != b"\x00\x00\x00\x00":
        raise ImageDecodeError("not a PNG ending in IEND")
    body = key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"iTXt" + body))
    return data[:-12] + chunk + data[-12:]
