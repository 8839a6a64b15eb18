"""The name of a PNG's pixels, and the C2PA library left closed for a PNG with no store.

Files that differ only in their text (the API's identifier in each answer, the job's
stamp) decode to the same pixels, so their inspection is made once; anything that could
change what Pillow decodes, or whether it decodes at all, gives no name (the file is
decoded as ever). Each case is checked against Pillow itself.
"""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from c2pa_kit import api_signer, build, chunks, make_chain
from PIL import Image

from pipeline import postprocess
from pipeline.postprocess.c2pa_read import png_may_hold_store, read_verdict
from pipeline.postprocess.pixels import TEXT_BUDGET, pixel_digest

PLACEHOLDER = b"fakeapi-uid\x00000000000001 6a756d62 jumb c2pa"
"""What the fake API puts in a text chunk: the bytes ``has_c2pa`` looks for, no store."""


def png(color: tuple[int, int, int] = (200, 40, 40), *, rows: int = 64) -> bytes:
    image = Image.new("RGB", (64, rows), color)
    image.putpixel((0, 0), (1, 2, 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def with_chunk(data: bytes, kind: bytes, body: bytes, at: int = 1) -> bytes:
    """``data`` with one more chunk, after its ``at`` first chunks."""
    parts = chunks(data)
    return build([*parts[:at], (kind, body), *parts[at:]])


def pixels_of(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()


def split_image_data(data: bytes) -> list[tuple[bytes, bytes]]:
    """The PNG's chunks with its image data cut in two IDAT chunks."""
    parts = chunks(data)
    first = next(i for i, (k, _) in enumerate(parts) if k == b"IDAT")
    body = parts[first][1]
    half = len(body) // 2
    return [*parts[:first], (b"IDAT", body[:half]), (b"IDAT", body[half:]), *parts[first + 1 :]]


def test_files_that_differ_only_in_their_text_share_a_pixel_name() -> None:
    """The API's placeholder, the job's stamp, a time and a C2PA chunk change the bytes,
    not the name; other pixels, or text Pillow keeps as image data (exif), do."""
    base = png()
    variants = [
        with_chunk(base, b"tEXt", PLACEHOLDER),
        postprocess.with_png_text(base, "assetpipe", '{"job": "a"}'),
        postprocess.with_png_text(with_chunk(base, b"tEXt", PLACEHOLDER), "assetpipe", "b"),
        with_chunk(base, b"tIME", struct.pack(">HBBBBB", 2026, 12, 7, 8, 0, 0)),
        with_chunk(base, b"caBX", b"\x00" * 40),
    ]
    name = pixel_digest(base)
    assert name is not None
    for variant in variants:
        assert variant != base
        assert pixel_digest(variant) == name
        assert pixels_of(variant) == pixels_of(base)
    assert pixel_digest(png((40, 200, 40))) not in (None, name)
    assert pixel_digest(with_chunk(base, b"tEXt", b"exif\x00" + b"\x00" * 8)) not in (None, name)
    assert pixel_digest(with_chunk(base, b"zTXt", b"k\x00\x00" + zlib.compress(b"v"))) != name


def test_a_png_whose_text_could_change_its_decoding_has_no_name() -> None:
    """A text chunk with a wrong CRC, or between two image-data chunks, makes Pillow fail
    (or stop early) where the plain file decodes: such files, text past the budget, a
    file cut before IEND and other formats are named None, and are decoded as ever."""
    base = png(rows=256)
    bad_crc = bytearray(with_chunk(base, b"tEXt", PLACEHOLDER))
    bad_crc[33 + 8 + len(PLACEHOLDER)] ^= 0xFF  # the CRC of the chunk after IHDR
    parts = split_image_data(base)
    split = build(parts)
    first = next(i for i, (k, _) in enumerate(parts) if k == b"IDAT")
    between = build([*parts[: first + 1], (b"tEXt", PLACEHOLDER), *parts[first + 1 :]])
    assert pixel_digest(split) is not None
    for broken in (bytes(bad_crc), between):
        assert pixel_digest(broken) is None
        with pytest.raises(postprocess.ImageDecodeError):
            postprocess.sample_bytes(broken)
    too_much = with_chunk(base, b"tEXt", b"note\x00" + b"x" * TEXT_BUDGET)
    assert pixel_digest(too_much) is None
    assert pixel_digest(base[:-12]) is None
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    assert pixel_digest(jpeg.getvalue()) is None


def test_the_c2pa_library_is_not_opened_for_a_png_that_cannot_hold_a_manifest() -> None:
    """The fake's placeholder text has the bytes ``has_c2pa`` looks for but no ``caBX``
    chunk and no XMP: no verdict, as the library itself says; a signed PNG, or one whose
    XMP could name a remote manifest, still goes to the library."""
    c2pa = pytest.importorskip("c2pa")
    placeholder = with_chunk(png(), b"tEXt", PLACEHOLDER)
    assert postprocess.has_c2pa(placeholder)
    assert not png_may_hold_store(placeholder)
    assert read_verdict(placeholder) is None
    library = c2pa.Reader.try_create("image/png", io.BytesIO(placeholder), None)
    assert library is None
    xmp = with_chunk(placeholder, b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x/>")
    assert png_may_hold_store(xmp)
    signed = api_signer(make_chain("OpenAI"))(png())
    assert png_may_hold_store(signed)
    verdict = read_verdict(signed)
    assert verdict is not None and verdict["valid"] is True
