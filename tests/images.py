"""Small images made in memory for tests: one place instead of a copy per test module."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

RGBA = tuple[int, int, int, int]


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    """``image`` encoded as ``fmt``, as a delivered asset or an input file would be."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png(width: int, height: int, color: RGBA = (200, 80, 40, 255)) -> bytes:
    """A small solid RGBA PNG."""
    return encode(Image.new("RGBA", (width, height), color))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
