"""The pixels of a contact sheet: one delivered file as a thumbnail, and a label that fits.

Every delivered file is untrusted bytes (an edited or planted file is still read), so a
thumbnail is decoded only the ways the rest of assetpipe decodes: PNG, WebP and JPEG
through :func:`~pipeline.postprocess.decoding.open_within` (the header's pixel count is
checked before a pixel is decoded; a JPEG is decoded already shrunk), an SVG sanitized
and drawn by resvg at the thumbnail's size (resvg fetches nothing), a GIF bounded by its
header and decoded for its first frame only. Only one decoded image exists at a time,
and it is shrunk before the next file is read.

Labels use Pillow's bundled font (never a system font, so every machine draws the same
pixels). That font has ASCII glyphs only: accents are dropped (``café`` is ``cafe``) and
any other character is drawn as ``?``, never as a missing-glyph box or an error.
"""

from __future__ import annotations

import functools
import io
import logging
import unicodedata
from collections.abc import Sequence
from typing import Final

from PIL import Image, ImageDraw, ImageFont

from pipeline.colors import hex_to_rgb
from pipeline.errors import PipelineError
from pipeline.exports.contact_sheet import (
    CHECKER,
    MARGIN,
    ContactSheetOptions,
    Grid,
)
from pipeline.fsutil import UnsafePathError
from pipeline.output import ManifestEntry, OutputTree
from pipeline.postprocess import gif, svg
from pipeline.postprocess.decoding import MAX_PIXELS, ImageDecodeError, open_within, undecodable

log = logging.getLogger("assetpipe.exports")

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

ELLIPSIS: Final = "..."
"""What ends a label cut to its cell (ASCII: the bundled font has few other glyphs)."""
LABEL_FONT_SIZE: Final = 12
CHECKER_SQUARE: Final = 8
CHECKER_LIGHT: Final = (255, 255, 255)
CHECKER_DARK: Final = (204, 204, 204)
SHEET_COLOUR: Final = (236, 236, 236)
"""The sheet around the thumbnails when they sit on the checkerboard."""
UNREADABLE_FILL: Final = (250, 222, 222)
"""A cell whose file cannot be read: a pale red box saying so."""
UNREADABLE_EDGE: Final = (190, 60, 60)
EMPTY_FILL: Final = (222, 222, 222)
LABEL_PAD: Final = 4
LINE: Final = 16
"""The height of a line of text in a notice box."""
NOTICE_PAD: Final = 4


class UnreadableImage(PipelineError):
    """A delivered file that cannot be shown: missing, not an image, too large."""


def thumbnail(data: bytes, edge: int) -> Image.Image:
    """``data`` decoded and shrunk to fit ``edge`` x ``edge`` (never enlarged), as RGBA;
    :class:`UnreadableImage` when it cannot be decoded."""
    try:
        image = _decoded(data, edge)
    except PipelineError as exc:  # ImageDecodeError, SvgError, GifError
        raise UnreadableImage(str(exc)) from None
    try:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        factor = max(rgba.size) // edge
        small = rgba.reduce(factor) if factor > 1 else rgba
        if small is image:
            small = small.copy()  # thumbnail() shrinks in place
        small.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    except (OSError, ValueError) as exc:  # a mode Pillow cannot convert
        raise UnreadableImage(f"cannot convert the {image.mode} image: {exc}") from None
    finally:
        image.close()
    return small


def _decoded(data: bytes, edge: int) -> Image.Image:
    """The image's pixels, decoded the bounded way for its format."""
    if svg.is_svg(data):
        clean = svg.sanitize(data).data  # the file on disk may not be the one delivered
        width, height = svg.intrinsic_size(clean)
        scale = min(1.0, edge / width, edge / height)
        return svg.rasterize(clean, width=max(1, round(width * scale)))
    if gif.is_gif(data):
        gif.inspect(data)  # bounds the size and the frame count before decoding
        return _first_frame(data)
    image = open_within(data, MAX_PIXELS)
    try:
        if image.format == "JPEG":
            image.draft("RGB", (edge, edge))  # the decoder skips detail a thumbnail drops
        image.load()
    except Exception as exc:  # Pillow reports corrupt data through many types
        image.close()
        raise undecodable(data, exc) from exc
    return image


def _first_frame(data: bytes) -> Image.Image:
    """A GIF's first frame as RGBA, without decoding the others."""
    try:
        with Image.open(io.BytesIO(data), formats=["GIF"]) as image:
            return image.convert("RGBA")
    except Exception as exc:  # a damaged GIF: said in assetpipe's words
        raise ImageDecodeError(f"cannot decode the GIF's first frame: {exc}") from None


def checker(size: tuple[int, int]) -> Image.Image:
    """A light checkerboard of ``size``, anchored at its top-left corner: what shows
    through the transparent parts of a thumbnail."""
    board = Image.new("RGBA", size, CHECKER_LIGHT)
    dark = Image.new("RGBA", (CHECKER_SQUARE, CHECKER_SQUARE), CHECKER_DARK)
    for y in range(0, size[1], CHECKER_SQUARE):
        start = (y // CHECKER_SQUARE + 1) % 2 * CHECKER_SQUARE  # a light square first
        for x in range(start, size[0], 2 * CHECKER_SQUARE):
            board.paste(dark, (x, y))
    return board


@functools.cache
def label_font() -> Font:
    """Pillow's bundled font (no system font path: the same glyphs everywhere)."""
    try:
        return ImageFont.load_default(size=LABEL_FONT_SIZE)
    except ImportError:  # a Pillow built without FreeType: its bitmap font, one size
        return ImageFont.load_default()


def drawable(text: str) -> str:
    """``text`` in characters the bundled font draws: accents dropped, any other
    character not printable ASCII (another script, an emoji, a control character, a lone
    surrogate) as ``?``."""
    folded = unicodedata.normalize("NFKD", text.encode("utf-8", "replace").decode("utf-8"))
    out = []
    for char in folded:
        if unicodedata.combining(char):
            continue
        out.append(char if " " <= char <= "~" else "?")
    return "".join(out)


def fitted(text: str, font: Font, width: int, *, middle: bool = False) -> str:
    """``text`` (already :func:`drawable`) cut to ``width`` pixels with ``...`` where it
    was cut: at the end, or with ``middle`` in the middle, which keeps both what an id
    starts with (its collection) and what tells its variants and renditions apart
    (``icons/icon-b...mon#2@64x64``). Empty when not even the ellipsis fits."""
    if font.getlength(text) <= width:
        return text

    def kept(k: int) -> str:
        if not middle:
            return text[:k].rstrip() + ELLIPSIS
        tail = k // 2
        return text[: k - tail] + ELLIPSIS + (text[len(text) - tail :] if tail else "")

    low, high = 0, len(text) - 1  # the most characters kept that fit with the ellipsis
    while low < high:
        mid = (low + high + 1) // 2
        if font.getlength(kept(mid)) <= width:
            low = mid
        else:
            high = mid - 1
    cut = kept(low)
    return cut if font.getlength(cut) <= width else ""


def ink_for(background: RGB) -> RGB:
    """Near-black text on a light background, near-white on a dark one."""
    r, g, b = background
    return (24, 24, 24) if 0.299 * r + 0.587 * g + 0.114 * b >= 128 else (236, 236, 236)


def draw_page(
    cells: Sequence[ManifestEntry],
    options: ContactSheetOptions,
    grid: Grid,
    heading: str,
    tree: OutputTree,
) -> bytes:
    """One page of the sheet as PNG bytes (no date, no text chunk)."""
    return _Page(options, grid, heading).draw(cells, tree)


class _Page:
    """One page being drawn: its canvas, colours and font."""

    def __init__(self, options: ContactSheetOptions, grid: Grid, heading: str) -> None:
        self.options = options
        self.grid = grid
        self.heading = heading
        flat = options.background != CHECKER
        self.colour: RGB = hex_to_rgb(options.background) if flat else SHEET_COLOUR
        self.ink = ink_for(self.colour)
        self.font: Font = label_font()

    def draw(self, cells: Sequence[ManifestEntry], tree: OutputTree) -> bytes:
        """The page of ``cells`` as PNG bytes (no date, no text chunk)."""
        image = Image.new("RGB", self.grid.size(len(cells)), self.colour)
        pen = ImageDraw.Draw(image)
        width = image.width - 2 * MARGIN
        pen.text(
            (MARGIN, MARGIN), fitted(drawable(self.heading), self.font, width), self.ink, self.font
        )
        for index, entry in enumerate(cells):
            x, y = self.grid.origin(index)
            self._cell(image, pen, entry, (x, y), tree)
        if not cells:
            what = (
                "no delivered image matches include"
                if self.options.include
                else "no delivered images"
            )
            self._notice(pen, self.grid.origin(0), [what], EMPTY_FILL, None)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=6)
        image.close()
        return buffer.getvalue()

    def _cell(
        self,
        image: Image.Image,
        pen: ImageDraw.ImageDraw,
        entry: ManifestEntry,
        at: tuple[int, int],
        tree: OutputTree,
    ) -> None:
        """One cell: the thumbnail centred in its box (or why there is none), the label."""
        cell = self.grid.cell
        try:
            small = thumbnail(_read(tree, entry.path), cell)
        except UnreadableImage as exc:
            log.warning("contact sheet: cannot read %s: %s", entry.path, exc)
            self._notice(pen, at, ["cannot read", str(exc)], UNREADABLE_FILL, UNREADABLE_EDGE)
        else:
            if self.options.background == CHECKER:
                base = checker(small.size)
            else:
                base = Image.new("RGBA", small.size, (*self.colour, 255))
            base.alpha_composite(small)  # transparency shows the sheet's background
            offset = ((cell - small.width) // 2, (cell - small.height) // 2)
            image.paste(base.convert("RGB"), (at[0] + offset[0], at[1] + offset[1]))
            small.close()
            base.close()
        if self.options.label != "none":
            text = entry.job if self.options.label == "id" else entry.path
            self._centred(pen, text, (at[0], at[1] + cell + LABEL_PAD), self.ink, cell, middle=True)

    def _notice(
        self,
        pen: ImageDraw.ImageDraw,
        at: tuple[int, int],
        lines: Sequence[str],
        fill: RGB,
        edge: RGB | None,
    ) -> None:
        """A box with a few lines of text in place of a thumbnail."""
        cell = self.grid.cell
        pen.rectangle((at[0], at[1], at[0] + cell - 1, at[1] + cell - 1), fill=fill, outline=edge)
        inner = cell - 2 * NOTICE_PAD
        wrapped = [line for text in lines for line in _wrap(drawable(text), self.font, inner)]
        wrapped = wrapped[: max(1, inner // LINE)]
        top = at[1] + (cell - LINE * len(wrapped)) // 2
        for number, line in enumerate(wrapped):
            self._centred(pen, line, (at[0], top + LINE * number), ink_for(fill), inner)

    def _centred(
        self,
        pen: ImageDraw.ImageDraw,
        text: str,
        at: tuple[int, int],
        ink: RGB,
        width: int,
        *,
        middle: bool = False,
    ) -> None:
        """``text`` cut to ``width`` pixels, centred in the cell whose left edge is at
        ``at``."""
        line = fitted(drawable(text), self.font, width, middle=middle)
        left = at[0] + (self.grid.cell - int(self.font.getlength(line))) // 2
        pen.text((left, at[1]), line, ink, self.font)


def _read(tree: OutputTree, rel: str) -> bytes:
    """A delivered file's bytes, through the output tree (no link, nothing outside it)."""
    try:
        return tree.read(rel)
    except FileNotFoundError:
        raise UnreadableImage("the file is missing") from None
    except (OSError, ValueError, UnsafePathError) as exc:
        raise UnreadableImage(f"the file cannot be opened: {exc}") from None


def _wrap(text: str, font: Font, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` pixels, broken at spaces (a word too long
    for a line is cut by :func:`fitted`)."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]
