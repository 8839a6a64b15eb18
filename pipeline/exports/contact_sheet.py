"""``format: contact-sheet``: every delivered image as a labelled grid of thumbnails, in a PNG.

What an art director or a marketing lead attaches to a review thread, or a CI job keeps
as an artifact: ``contact-sheet.png`` in the output folder (``path`` to choose), one cell
per delivered file (asset, variant, rendition, pick, sheet), ordered by collection,
asset, variant and id, each its thumbnail (transparency over a checkerboard) with its id
or path under it. A file that cannot be read gets a cell saying so; the sheet is still
written.

Memory stays bounded however large the project: each cell is decoded, shrunk and drawn
before the next file is read, and a page holds at most ``per_page`` cells (400) and about
:data:`MAX_PAGE_PIXELS`. More cells go onto numbered pages (``contact-sheet-1.png``,
``contact-sheet-2.png``, ...). An exporter's paths are reserved before anything is built,
so the page names are reserved with the sheet's own, up to :data:`MAX_PAGES`; a sheet
that would need more is refused with what to change. Whichever form a run writes, the
other reserved files are removed once it is in place, so no page of an older, longer
sheet lingers.

The PNG holds no date and no text chunk and the cells come in a fixed order, so the same
files give the same bytes, and a build leaves an unchanged sheet untouched.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from pydantic import Field, field_validator

from pipeline.colors import hex_to_rgb
from pipeline.exports.base import ExportError, ExportOptions, ExportPlan, path_problem
from pipeline.output import ManifestEntry

DEFAULT_PATH: Final = "contact-sheet.png"
DEFAULT_CELL: Final = 256
MIN_CELL: Final = 32
MAX_CELL: Final = 512
MAX_COLUMNS: Final = 64
MAX_PER_PAGE: Final = 400
"""Most cells on one page (20 x 20 at the default size: about 5,500 px square)."""
MAX_PAGE_PIXELS: Final = 32_000_000
"""About the most pixels a page has (96 MB while it is drawn); bigger cells mean fewer
cells a page."""
MAX_PAGES: Final = 50
"""Most pages one sheet writes (20,000 images at the default size)."""

MARGIN: Final = 16
GAP: Final = 12
HEADER: Final = 24
"""The line at the top: the project's name, the image count and the page."""
LABEL_BAND: Final = 20
"""The label's strip under each thumbnail (none with ``label: none``)."""
CHECKER: Final = "checker"


class ContactSheetOptions(ExportOptions):
    """``path`` (in the output folder, ``.png``), ``columns`` (default: near-square),
    ``cell`` (the thumbnail's box, px), ``label`` (``id``, ``path`` or ``none``),
    ``background`` (``checker`` or ``#RRGGBB``), ``include`` (globs of ids) and
    ``per_page``."""

    path: str = DEFAULT_PATH
    columns: int | None = Field(default=None, ge=1, le=MAX_COLUMNS)
    cell: int = Field(default=DEFAULT_CELL, ge=MIN_CELL, le=MAX_CELL)
    label: Literal["id", "path", "none"] = "id"
    background: str = CHECKER
    include: tuple[str, ...] = ()
    per_page: int = Field(default=MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        problem = path_problem(value)
        if problem is None and not value.endswith(".png"):
            problem = "the sheet is a PNG: its name ends in .png"
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("background")
    @classmethod
    def _background(cls, value: str) -> str:
        if value == CHECKER:
            return value
        if not value.startswith("#"):
            raise ValueError(f"background is '{CHECKER}' or a hex colour like #202020")
        r, g, b = hex_to_rgb(value)
        return f"#{r:02X}{g:02X}{b:02X}"

    @field_validator("include", mode="before")
    @classmethod
    def _include(cls, value: object) -> object:
        patterns = [value] if isinstance(value, str) else value
        if isinstance(patterns, list | tuple) and not all(
            isinstance(p, str) and p for p in patterns
        ):
            raise ValueError('include is a glob of ids or a list of them, e.g. ["icons/*"]')
        return patterns


def page_paths(path: str, count: int) -> list[str]:
    """The numbered pages of the sheet at ``path``: ``sheet-1.png`` ... ``sheet-N.png``."""
    stem = path.removesuffix(".png")
    return [f"{stem}-{number}.png" for number in range(1, count + 1)]


def shown(entries: Sequence[ManifestEntry], include: Sequence[str]) -> list[ManifestEntry]:
    """The delivered files ``include`` selects (all without it), in the sheet's order:
    collection, asset, variant, then the id (a rendition after its image)."""
    chosen = [
        e
        for e in entries
        if e.sha256 is not None
        and not e.stale
        and (not include or any(fnmatch.fnmatchcase(e.job, p) for p in include))
    ]
    return sorted(chosen, key=lambda e: (e.collection, e.asset, e.variant, e.job))


@dataclass(frozen=True, slots=True)
class Grid:
    """Where the cells go: the same columns on every page, ``per_page`` cells a page."""

    columns: int
    per_page: int
    pages: int
    cell: int
    band: int

    @classmethod
    def of(cls, count: int, options: ContactSheetOptions) -> Grid:
        """The grid of ``count`` cells: near-square unless ``columns`` is given, with as
        many rows a page as ``per_page`` and :data:`MAX_PAGE_PIXELS` allow."""
        cell = options.cell
        band = 0 if options.label == "none" else LABEL_BAND
        pitch = (cell + GAP) * (cell + band + GAP)
        fits = max(1, min(options.per_page, MAX_PAGE_PIXELS // pitch))
        n = max(1, count)
        columns = options.columns or math.isqrt(min(n, fits) - 1) + 1
        columns = max(1, min(columns, n, options.per_page))
        width = 2 * MARGIN + columns * cell + (columns - 1) * GAP
        rows = max(1, MAX_PAGE_PIXELS // (width * (cell + band + GAP)))
        per_page = max(1, min(options.per_page, rows * columns))
        return cls(columns, per_page, max(1, math.ceil(count / per_page)), cell, band)

    def size(self, cells: int) -> tuple[int, int]:
        """The pixel size of a page of ``cells`` cells."""
        rows = max(1, math.ceil(cells / self.columns))
        width = 2 * MARGIN + self.columns * self.cell + (self.columns - 1) * GAP
        height = 2 * MARGIN + HEADER + rows * (self.cell + self.band) + (rows - 1) * GAP
        return width, height

    def origin(self, index: int) -> tuple[int, int]:
        """The top-left corner of cell ``index`` (on its page)."""
        row, column = divmod(index, self.columns)
        return (
            MARGIN + column * (self.cell + GAP),
            MARGIN + HEADER + row * (self.cell + self.band + GAP),
        )


class ContactSheetExporter:
    """``contact-sheet.png``: a thumbnail grid of the delivered images, for review."""

    name: ClassVar[str] = "contact-sheet"
    Options: ClassVar[type[ExportOptions]] = ContactSheetOptions

    def __init__(self, options: ContactSheetOptions | None = None) -> None:
        self.options = options or ContactSheetOptions()
        self._written: set[str] | None = None

    def reserved(self) -> Sequence[str]:
        """The sheet and the names of its pages, should it need them."""
        return (self.options.path, *page_paths(self.options.path, MAX_PAGES))

    def render(self, entries: Sequence[ManifestEntry], plan: ExportPlan) -> Mapping[str, bytes]:
        """The sheet, or its pages, as PNG bytes; a page at a time in memory."""
        # Pillow, resvg and the font load only when a sheet is drawn, not for every command.
        from pipeline.exports.contact_drawing import draw_page  # noqa: PLC0415

        options = self.options
        cells = shown(entries, options.include)
        grid = Grid.of(len(cells), options)
        if grid.pages > MAX_PAGES:
            raise ExportError(
                f"the contact sheet {options.path} would need {grid.pages} pages of "
                f"{grid.per_page} images for {len(cells)} images; it writes at most "
                f"{MAX_PAGES}: choose fewer with include: (globs of ids), or raise per_page "
                "or lower cell"
            )
        paths = [options.path] if grid.pages == 1 else page_paths(options.path, grid.pages)
        files: dict[str, bytes] = {}
        for number, rel in enumerate(paths):
            part = cells[number * grid.per_page : (number + 1) * grid.per_page]
            heading = f"{plan.title}  |  {len(cells):,} image{'' if len(cells) == 1 else 's'}"
            if grid.pages > 1:
                heading += f"  |  page {number + 1} of {grid.pages}"
            files[rel] = draw_page(part, options, grid, heading, plan.tree)
        self._written = set(files)
        return files

    def tidy(self, plan: ExportPlan) -> None:
        """Remove the reserved files this run did not write: the single sheet once it is
        split into pages, pages once it fits on one, pages past the last."""
        if self._written is None:
            return
        for rel in self.reserved():
            if rel not in self._written:
                plan.tree.unlink(rel)
