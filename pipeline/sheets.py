"""Sprite sheets (texture atlases): many frames packed into one image plus a JSON map.

Game engines draw sprites from one shared texture to save draw calls and memory, so a
studio wants a set of icons as one sheet plus a TexturePacker "hash" atlas (the JSON that
Phaser, PixiJS, Cocos and most engines read). Like :mod:`pipeline.postprocess`, all of it
is pure on bytes and deterministic, so a sheet can be cached by its inputs' hashes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from PIL import Image

from pipeline.errors import PipelineError
from pipeline.jobs import RenditionOp
from pipeline.jobs.atlases import AtlasFrame, AtlasLayout
from pipeline.jobs.atlases.texturepacker import hash_json
from pipeline.packing import SheetBin, oversized_frames, sheet_layout
from pipeline.postprocess import (
    DECODE_FORMATS,
    MAX_EDGE,
    ImageOptionError,
    encode,
    normalize_format,
    render_rendition,
)

SHEET_FORMATS: Final = ("png", "webp")
"""Sheet formats: both keep alpha and both are written losslessly (see :func:`render_sheet`)."""

_TRANSPARENT: Final = (0, 0, 0, 0)


class SheetError(PipelineError):
    """Frames or options that cannot make a sheet: too big, duplicate names, bad images."""


@dataclass(frozen=True, slots=True)
class SheetOptions:
    """How a sheet is built.

    ``padding`` transparent pixels separate frames from each other and from the edge, so
    texture filtering never samples a neighbour. ``power_of_two`` makes both sides powers
    of two, for engines and GPUs that need it (mipmaps, PVRTC). ``max_size`` caps each
    side (a GPU's texture limit). ``frame_size`` resizes every frame to one cell size
    first (cover: center-crop, then Lanczos), as an animation strip wants.
    """

    padding: int = 2
    power_of_two: bool = False
    max_size: int = 4096
    format: str = "png"
    frame_size: tuple[int, int] | None = None

    @property
    def bin(self) -> SheetBin:
        """The sheet the frames must fit (what the packer needs of these options)."""
        return SheetBin(self.padding, self.power_of_two, self.max_size)


@dataclass(frozen=True, slots=True)
class Frame:
    """Where one frame lies on the sheet: its top-left corner and its size, in pixels."""

    name: str
    x: int
    y: int
    w: int
    h: int


def pack(
    sizes: Sequence[tuple[str, int, int]], options: SheetOptions | None = None
) -> tuple[int, int, list[Frame]]:
    """Place frames ``(name, w, h)`` on the smallest sheet found; ``(width, height, frames)``.

    Frames are at least ``padding`` apart and from every edge; the layout is
    :func:`pipeline.spec.models.sheet_layout`'s (a deterministic skyline packer tried on
    up to 64 sheet widths), the packer the planner asks before any frame is paid for.
    Frames come back in input order.
    """
    options = options or SheetOptions()
    _check_options(options)
    _check_sizes(sizes)
    sheet = options.bin
    too_big = oversized_frames(sizes, sheet)
    if too_big:
        raise SheetError(
            f"frames too big for a {sheet.side}x{sheet.side} sheet with padding "
            f"{sheet.padding}: {', '.join(too_big)}; raise max_size, lower padding or set a "
            "smaller frame_size"
        )
    layout = sheet_layout(sizes, sheet)
    if layout is None:
        area = sum((w + sheet.padding) * (h + sheet.padding) for _, w, h in sizes)
        raise SheetError(
            f"cannot pack {len(sizes)} frames ({area} px with padding {sheet.padding}) into "
            f"a {sheet.side}x{sheet.side} sheet; raise max_size, lower padding or split them "
            "over sheets"
        )
    width, height, placed = layout
    frames = [
        Frame(name, sheet.padding + x, sheet.padding + y, w, h)
        for (name, w, h), (x, y) in zip(sizes, placed, strict=True)
    ]
    return width, height, frames


def render_sheet(
    frames: Sequence[tuple[str, bytes]],
    options: SheetOptions | None = None,
    image_name: str = "sheet.png",
) -> tuple[bytes, bytes]:
    """The sheet image and its TexturePacker "hash" atlas JSON, for ``(name, bytes)`` frames.

    Frames are pasted as RGBA (alpha kept, pixels copied exactly) on a transparent sheet.
    PNG is encoded as :func:`pipeline.postprocess.encode` does; WebP is written *lossless*,
    because lossy blocks would bleed colour across frame edges and shift sprite pixels.
    The atlas names the sheet ``image_name``, keys frames by their names as given, and is
    written with sorted keys, 1-space indent and a final newline, so it diffs cleanly; it
    is also the sheet's layout, from which every other atlas format is written
    (:mod:`pipeline.jobs.atlases`).
    """
    options = options or SheetOptions()
    fmt = _check_options(options)
    _check_sizes([(name, 1, 1) for name, _ in frames])
    images = [(name, _load(name, data, options.frame_size)) for name, data in frames]
    width, height, placed = pack([(n, im.width, im.height) for n, im in images], options)
    canvas = Image.new("RGBA", (width, height), _TRANSPARENT)
    for frame, (_, image) in zip(placed, images, strict=True):
        canvas.paste(image, (frame.x, frame.y))
    if fmt == "png":
        sheet = encode(canvas, "png")
    else:
        buffer = io.BytesIO()
        canvas.save(buffer, format="WEBP", lossless=True, quality=100, method=4, exact=True)
        sheet = buffer.getvalue()
    frames_at = tuple(AtlasFrame(f.name, f.x, f.y, f.w, f.h) for f in placed)
    return sheet, hash_json(AtlasLayout(frames_at, width, height, image_name))


def _load(name: str, data: bytes, frame_size: tuple[int, int] | None) -> Image.Image:
    """Decode one frame as RGBA, resized to ``frame_size`` first when one is set."""
    try:
        if frame_size is not None:
            op = RenditionOp(frame_size[0], frame_size[1], "cover", "png", None)
            data = render_rendition(data, op)  # lossless png: no quality lost on the way
        image = Image.open(io.BytesIO(data), formats=DECODE_FORMATS)
        image.load()
    except PipelineError as exc:
        raise SheetError(f"frame {name!r}: {exc}") from exc
    except Exception as exc:  # Pillow reports corrupt input through many exception types
        raise SheetError(f"frame {name!r}: cannot decode image ({len(data)} bytes): {exc}") from exc
    return image.convert("RGBA")


def _check_options(options: SheetOptions) -> str:
    """Reject options no sheet can honour; returns the canonical sheet format."""
    try:
        fmt = normalize_format(options.format)
    except (ImageOptionError, AttributeError):
        fmt = ""
    if fmt not in SHEET_FORMATS:
        raise SheetError(f"sheet format must be png or webp (with alpha), got {options.format!r}")
    if not _is_int(options.max_size) or not 1 <= options.max_size <= MAX_EDGE:
        raise SheetError(f"max_size must be an integer 1-{MAX_EDGE}, got {options.max_size!r}")
    if not _is_int(options.padding) or not 0 <= options.padding < options.max_size:
        raise SheetError(f"padding must be an integer 0 or more, got {options.padding!r}")
    size = options.frame_size
    if size is not None and not (len(size) == 2 and all(_is_int(v) and v >= 1 for v in size)):
        raise SheetError(f"frame_size must be (width, height) of positive integers, got {size!r}")
    return fmt


def _check_sizes(sizes: Sequence[tuple[str, int, int]]) -> None:
    """Frames need unique non-empty names (atlas keys) and positive integer sizes."""
    if not sizes:
        raise SheetError("a sheet needs at least one frame")
    seen: set[str] = set()
    for name, w, h in sizes:
        if not isinstance(name, str) or not name:
            raise SheetError(f"frame names must be non-empty strings, got {name!r}")
        if name in seen:
            raise SheetError(f"duplicate frame name {name!r}: atlas keys must be unique")
        seen.add(name)
        if not (_is_int(w) and _is_int(h) and w >= 1 and h >= 1):
            raise SheetError(f"frame {name!r} needs a positive integer size, got {w!r}x{h!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
