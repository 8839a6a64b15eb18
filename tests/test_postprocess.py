"""Local image work: probing, delivering API images at their exact size, and renditions."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from pipeline.errors import PipelineError
from pipeline.jobs import Fit, RenditionOp
from pipeline.postprocess import (
    DEFAULT_QUALITY,
    ImageDecodeError,
    ImageInfo,
    ImageOptionError,
    deliver,
    encode,
    normalize_format,
    probe,
    render_rendition,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
LOSSY_TOLERANCE = 3
"""How far a webp/jpeg pixel of a flat colour may drift from its source value."""


def to_bytes(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    """Encode ``image`` with Pillow directly, as an API or a user file would be."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """Open bytes produced by the code under test."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def thirds(width: int = 300, height: int = 100) -> Image.Image:
    """An RGB image in three vertical bands: red, green, blue (left to right)."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(GREEN, (width // 3, 0, 2 * width // 3, height))
    image.paste(BLUE, (2 * width // 3, 0, width, height))
    return image


def px(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The pixel at ``xy`` as a tuple of band values (RGB or RGBA images only)."""
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def close(actual: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """Whether two pixels match within the lossy-codec tolerance."""
    return len(actual) == len(expected) and all(
        abs(a - e) <= LOSSY_TOLERANCE for a, e in zip(actual, expected, strict=True)
    )


def png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG file, in order."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks = []
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


# --- probe -------------------------------------------------------------------------------


def test_probe_reports_size_format_mode_and_real_transparency() -> None:
    """An RGBA png with one transparent pixel is reported as transparent, with its size."""
    image = Image.new("RGBA", (40, 30), (10, 20, 30, 255))
    image.putpixel((3, 4), (10, 20, 30, 0))
    assert probe(to_bytes(image)) == ImageInfo(
        width=40, height=30, format="png", mode="RGBA", has_alpha=True
    )


def test_probe_opaque_rgba_has_no_alpha() -> None:
    """An alpha band alone is not transparency: every pixel opaque means has_alpha False."""
    info = probe(to_bytes(Image.new("RGBA", (8, 8), (1, 2, 3, 255))))
    assert info == ImageInfo(width=8, height=8, format="png", mode="RGBA", has_alpha=False)


def test_probe_jpeg_and_webp_formats() -> None:
    """Formats are reported lower-case under their canonical names."""
    rgb = Image.new("RGB", (20, 10), RED)
    assert probe(to_bytes(rgb, "JPEG")) == ImageInfo(20, 10, "jpeg", "RGB", False)
    assert probe(to_bytes(rgb, "WEBP")) == ImageInfo(20, 10, "webp", "RGB", False)
    translucent = Image.new("RGBA", (20, 10), (0, 0, 0, 100))
    assert probe(to_bytes(translucent, "WEBP")) == ImageInfo(20, 10, "webp", "RGBA", True)


def test_probe_palette_png_with_transparent_index_is_transparent() -> None:
    """A palette png whose tRNS marks a used colour transparent counts as transparent."""
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 255, 255])
    image.putpixel((0, 0), 1)
    info = probe(to_bytes(image, transparency=1))
    assert info == ImageInfo(4, 4, "png", "P", True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"cannot decode image: got 0 bytes"),
        (b"definitely not an image", r"cannot decode image \(23 bytes, starting b'definitely n'\)"),
    ],
)
def test_probe_rejects_non_images(data: bytes, message: str) -> None:
    """Bytes that are not an image raise ImageDecodeError naming what was received."""
    with pytest.raises(ImageDecodeError, match=message):
        probe(data)


def test_probe_rejects_truncated_image() -> None:
    """A download cut short is an ImageDecodeError, not a half-decoded image."""
    data = to_bytes(thirds())
    with pytest.raises(ImageDecodeError, match=r"cannot decode image"):
        probe(data[: len(data) // 2])


def test_decode_error_is_a_pipeline_error() -> None:
    """Decode failures belong to the one exception tree the CLI reports to users."""
    assert issubclass(ImageDecodeError, PipelineError)
    assert issubclass(ImageOptionError, PipelineError)


# --- formats and encode --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("png", "png"), ("webp", "webp"), ("jpeg", "jpeg"), ("jpg", "jpeg"), ("JPG", "jpeg")],
)
def test_normalize_format_accepts_jpg_alias(name: str, canonical: str) -> None:
    """Format names are case-insensitive and 'jpg' means jpeg."""
    assert normalize_format(name) == canonical


def test_normalize_format_rejects_unknown() -> None:
    """An unsupported format names the ones that are supported."""
    with pytest.raises(ImageOptionError, match=r"unsupported image format 'gif': expected one of"):
        normalize_format("gif")


def test_encode_png_writes_no_metadata() -> None:
    """PNG output is IHDR, IDAT and IEND only: no text, time, dpi or EXIF chunks survive."""
    image = Image.new("RGB", (16, 16), RED)
    image.info.update({"dpi": (300, 300), "Software": "x", "exif": b"Exif\x00\x00"})
    assert png_chunks(encode(image, "png", None)) == [b"IHDR", b"IDAT", b"IEND"]


def test_encode_png_keeps_the_colour_profile() -> None:
    """The ICC profile is kept (it defines what the pixel values mean), and only it."""
    image = Image.new("RGB", (16, 16), RED)
    image.info.update({"icc_profile": b"profile-bytes", "dpi": (72, 72)})
    data = encode(image, "png", None)
    assert png_chunks(data) == [b"IHDR", b"iCCP", b"IDAT", b"IEND"]
    assert decode(data).info["icc_profile"] == b"profile-bytes"


@pytest.mark.parametrize("fmt", ["png", "webp", "jpeg"])
def test_encode_is_deterministic(fmt: str) -> None:
    """The same pixels always encode to the same bytes (renditions are cached by content)."""
    first = encode(thirds(), fmt, 70)
    second = encode(thirds(), fmt, 70)
    assert first == second


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_encode_default_quality_is_90(fmt: str) -> None:
    """No compression means quality 90 for the lossy formats."""
    assert DEFAULT_QUALITY == 90
    assert encode(thirds(), fmt, None) == encode(thirds(), fmt, 90)


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_encode_compression_sets_quality(fmt: str) -> None:
    """A lower compression value gives a smaller, lossier file."""
    noisy = Image.effect_noise((128, 128), 60).convert("RGB")
    assert len(encode(noisy, fmt, 10)) < len(encode(noisy, fmt, 95))


def test_encode_jpg_alias_is_jpeg() -> None:
    """'jpg' writes exactly what 'jpeg' writes."""
    assert encode(thirds(), "jpg", 80) == encode(thirds(), "jpeg", 80)


def test_encode_jpeg_flattens_transparency_on_white() -> None:
    """JPEG has no alpha: transparent pixels become white, opaque ones keep their colour."""
    image = Image.new("RGBA", (32, 16), (0, 0, 0, 0))
    image.paste((*BLUE, 255), (16, 0, 32, 16))
    out = decode(encode(image, "jpeg", 95))
    assert out.mode == "RGB"
    assert close(px(out, (4, 8)), WHITE)
    assert close(px(out, (28, 8)), BLUE)


@pytest.mark.parametrize("compression", [-1, 101])
def test_encode_rejects_out_of_range_compression(compression: int) -> None:
    """Compression is 0-100, as the API defines output_compression."""
    with pytest.raises(ImageOptionError, match=rf"between 0 and 100, got {compression}"):
        encode(thirds(), "webp", compression)


# --- deliver -------------------------------------------------------------------------------


def test_deliver_returns_the_api_bytes_unchanged_when_nothing_to_do() -> None:
    """Same size and format: the very bytes come back, keeping the API's provenance data."""
    info = PngImagePlugin.PngInfo()
    info.add_text("c2pa", "manifest-from-the-api")
    data = to_bytes(thirds(), pnginfo=info)
    assert deliver(data, 300, 100, "png", None) == data


def test_deliver_unchanged_for_jpeg_under_jpg_alias() -> None:
    """A jpeg of the right size is returned as is, even when the target says 'jpg'."""
    data = to_bytes(thirds(), "JPEG", quality=75)
    assert deliver(data, 300, 100, "jpg", 20) == data


def test_deliver_center_crops_to_the_target_ratio() -> None:
    """A wider source loses equal parts of both sides: only the green middle band remains."""
    out = decode(deliver(to_bytes(thirds()), 100, 100, "png", None))
    assert (out.size, out.mode) == ((100, 100), "RGB")
    assert out.getcolors() == [(100 * 100, GREEN)]


def test_deliver_center_crops_a_taller_source() -> None:
    """A taller source loses equal parts of top and bottom."""
    tall = thirds().rotate(90, expand=True)  # 100x300: blue top, green middle, red bottom
    out = decode(deliver(to_bytes(tall), 50, 50, "png", None))
    assert out.size == (50, 50)
    assert out.getcolors() == [(50 * 50, GREEN)]


def test_deliver_resizes_to_the_exact_target() -> None:
    """A legal API size larger than the target is cropped and resized to exact pixels."""
    data = to_bytes(Image.new("RGB", (1536, 1024), RED))
    out = decode(deliver(data, 1920 // 4, 1080 // 4, "png", None))
    assert out.size == (480, 270)
    assert out.getcolors() == [(480 * 270, RED)]


def test_deliver_converts_format_at_the_same_size() -> None:
    """Same size, other format: the image is re-encoded, pixels unchanged."""
    data = to_bytes(thirds())
    out = deliver(data, 300, 100, "webp", 95)
    assert out != data
    assert probe(out) == ImageInfo(300, 100, "webp", "RGB", False)
    assert close(px(decode(out), (150, 50)), GREEN)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_deliver_keeps_transparency(fmt: str) -> None:
    """A transparent API image stays transparent, edge and all, in png and webp."""
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    image.paste((*RED, 255), (50, 50, 150, 150))
    out = decode(deliver(to_bytes(image), 100, 100, fmt, None))
    assert out.mode == "RGBA"
    assert px(out, (2, 2))[3] == 0
    assert close(px(out, (50, 50)), (*RED, 255))


def test_deliver_jpeg_from_transparent_source_is_white_where_transparent() -> None:
    """Delivering jpeg from a transparent png flattens it on white."""
    data = to_bytes(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))
    out = decode(deliver(data, 32, 32, "jpeg", None))
    assert out.mode == "RGB"
    assert out.getcolors() == [(32 * 32, WHITE)]


@pytest.mark.parametrize("fmt", ["png", "webp", "jpeg"])
def test_deliver_is_deterministic(fmt: str) -> None:
    """Delivering the same bytes twice gives byte-identical files."""
    data = to_bytes(thirds())
    assert deliver(data, 64, 48, fmt, 80) == deliver(data, 64, 48, fmt, 80)


@pytest.mark.parametrize(
    ("width", "height", "fmt", "compression", "message"),
    [
        (0, 10, "png", None, r"target width must be between 1 and 16383, got 0"),
        (10, 20000, "png", None, r"target height must be between 1 and 16383, got 20000"),
        (10, 10, "gif", None, r"unsupported image format 'gif'"),
        (10, 10, "jpeg", 101, r"compression must be between 0 and 100, got 101"),
    ],
)
def test_deliver_rejects_bad_targets(
    width: int, height: int, fmt: str, compression: int | None, message: str
) -> None:
    """Impossible targets fail with a clear ImageOptionError before any pixel work."""
    with pytest.raises(ImageOptionError, match=message):
        deliver(to_bytes(thirds()), width, height, fmt, compression)


def test_deliver_rejects_non_image() -> None:
    """An API response that is not an image is an ImageDecodeError."""
    with pytest.raises(ImageDecodeError, match=r"cannot decode image"):
        deliver(b"<html>502 Bad Gateway</html>", 10, 10, "png", None)


# --- renditions ----------------------------------------------------------------------------


def test_rendition_cover_keeps_the_center() -> None:
    """cover crops to the ratio then resizes: only the middle band of a wide source stays."""
    out = decode(render_rendition(to_bytes(thirds()), RenditionOp(60, 60, "cover", "png", None)))
    assert (out.size, out.mode) == ((60, 60), "RGB")
    assert out.getcolors() == [(60 * 60, GREEN)]


def test_rendition_stretch_keeps_everything_distorted() -> None:
    """stretch ignores the ratio: all three bands remain, squeezed into the square."""
    op = RenditionOp(90, 90, "stretch", "png", None)
    out = decode(render_rendition(to_bytes(thirds()), op))
    assert (out.size, out.mode) == ((90, 90), "RGB")
    assert [px(out, (x, 45)) for x in (10, 45, 80)] == [RED, GREEN, BLUE]


def test_rendition_contain_pads_png_with_transparency() -> None:
    """contain fits the whole image inside and pads above and below with transparent pixels."""
    op = RenditionOp(100, 100, "contain", "png", None)
    out = decode(render_rendition(to_bytes(thirds()), op))
    assert (out.size, out.mode) == ((100, 100), "RGBA")
    # 300x100 fits as 100x33 at rows 33..65; rows above and below are padding.
    assert px(out, (50, 5)) == (0, 0, 0, 0)
    assert px(out, (50, 95)) == (0, 0, 0, 0)
    assert [px(out, (x, 50)) for x in (5, 50, 95)] == [
        (*RED, 255),
        (*GREEN, 255),
        (*BLUE, 255),
    ]


def test_rendition_contain_pads_jpeg_with_white() -> None:
    """jpeg cannot be transparent, so contain pads it with white."""
    op = RenditionOp(100, 100, "contain", "jpeg", 95)
    out = decode(render_rendition(to_bytes(thirds()), op))
    assert (out.size, out.mode) == ((100, 100), "RGB")
    assert close(px(out, (50, 5)), WHITE)
    assert close(px(out, (50, 50)), GREEN)


def test_rendition_of_rgba_source_to_jpeg_is_rgb() -> None:
    """A jpeg rendition of a transparent source is RGB with its transparency on white."""
    source = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    source.paste((*BLUE, 255), (16, 16, 48, 48))
    out = decode(render_rendition(to_bytes(source), RenditionOp(32, 32, "cover", "jpg", 95)))
    assert (out.size, out.mode, out.format) == ((32, 32), "RGB", "JPEG")
    assert close(px(out, (1, 1)), WHITE)
    assert close(px(out, (16, 16)), BLUE)


@pytest.mark.parametrize("fmt", ["png", "webp"])
@pytest.mark.parametrize("fit", ["cover", "contain", "stretch"])
def test_rendition_keeps_transparency(fmt: str, fit: Fit) -> None:
    """Transparency survives every fit into png and webp."""
    source = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    source.paste((*RED, 255), (16, 16, 48, 48))
    out = render_rendition(to_bytes(source), RenditionOp(32, 32, fit, fmt, None))
    assert probe(out) == ImageInfo(32, 32, fmt, "RGBA", True)
    assert px(decode(out), (0, 0))[3] == 0


def test_rendition_is_deterministic() -> None:
    """The same source and operation always give the same bytes."""
    data = to_bytes(thirds())
    op = RenditionOp(64, 64, "contain", "webp", 60)
    assert render_rendition(data, op) == render_rendition(data, op)


def test_rendition_rejects_unknown_fit() -> None:
    """A fit outside cover/contain/stretch is an error, not a silent default."""
    op = RenditionOp(10, 10, "fill", "png", None)  # type: ignore[arg-type]
    with pytest.raises(
        ImageOptionError, match=r"unknown fit 'fill': expected cover, contain or stretch"
    ):
        render_rendition(to_bytes(thirds()), op)


def test_rendition_from_a_palette_image() -> None:
    """Palette (P mode) sources are converted, not rejected."""
    source = thirds().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    out = decode(render_rendition(to_bytes(source), RenditionOp(30, 30, "cover", "png", None)))
    assert (out.size, out.mode) == ((30, 30), "RGB")
    assert out.getcolors() == [(30 * 30, GREEN)]


@settings(max_examples=50, deadline=None)
@given(
    source_w=st.integers(16, 2048),
    source_h=st.integers(16, 2048),
    width=st.integers(16, 1024),
    height=st.integers(16, 1024),
    fmt=st.sampled_from(["png", "webp", "jpeg"]),
    translucent=st.booleans(),
)
@pytest.mark.parametrize("fit", ["cover", "contain", "stretch"])
def test_rendition_is_always_the_exact_target(
    fit: Fit,
    source_w: int,
    source_h: int,
    width: int,
    height: int,
    fmt: str,
    translucent: bool,
) -> None:
    """Any source to any target, in every fit: exactly WxH, in the asked format and mode.

    jpeg is always RGB; png/webp carry alpha when the source is translucent (and png
    when contain pads); an opaque source stays RGB except where contain may pad it.
    """
    mode = "RGBA" if translucent else "RGB"
    color = (200, 80, 40, 128) if translucent else (200, 80, 40)
    source = Image.new(mode, (source_w, source_h), color)
    source.paste(BLUE if mode == "RGB" else (*BLUE, 128), (0, 0, source_w // 2, source_h // 2))
    data = to_bytes(source, compress_level=1)

    info = probe(render_rendition(data, RenditionOp(width, height, fit, fmt, None)))

    assert (info.width, info.height, info.format) == (width, height, fmt)
    if fmt == "jpeg":
        assert (info.mode, info.has_alpha) == ("RGB", False)
    elif translucent:
        assert (info.mode, info.has_alpha) == ("RGBA", True)
    elif fit != "contain":
        assert (info.mode, info.has_alpha) == ("RGB", False)
    elif fmt == "png":
        assert info.mode == "RGBA"
    else:  # webp stores alpha only when some pixel is transparent (i.e. contain padded)
        assert info.mode in {"RGB", "RGBA"}
        assert info.has_alpha == (info.mode == "RGBA")


def test_png_chunk_helper_reads_a_known_file() -> None:
    """The chunk reader used above sees the chunks of a hand-built PNG (guards the guard)."""
    raw = b"\x00\xff\x00\x00"  # one filter byte + one red pixel
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"tEXt", b"k\x00v")
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    assert png_chunks(data) == [b"IHDR", b"tEXt", b"IDAT", b"IEND"]
    assert decode(data).getpixel((0, 0)) == RED
