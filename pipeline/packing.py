"""Where a sprite sheet's frames go: whole-pixel arithmetic on their sizes, known before
any frame exists.

The planner asks whether a sheet's frames fit before they are paid for, and
:mod:`pipeline.sheets` lays out the sheet it draws with the very same packer, so the two
always agree. It lives below both of them, so that neither imports the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

FrameSize = tuple[str, int, int]
"""A frame's name (its atlas key) and its width and height in pixels."""
MAX_PACKED_WIDTHS = 64
"""How many sheet widths the packer tries, spread evenly over the useful range."""
SUGGESTED_SIDES = (2048, 4096, 8192, 16383)
"""The ``max_size`` values :func:`sheet_capacity` suggests, up to the largest a spec allows."""
MIN_SUGGESTED_SIDE = 8
""":func:`sheet_capacity` suggests no frame size with a side under this."""


@dataclass(frozen=True, slots=True)
class SheetBin:
    """The sheet frames must fit: ``padding`` transparent pixels around each, sides that
    are powers of two with ``power_of_two``, and at most ``max_size`` a side."""

    padding: int = 2
    power_of_two: bool = False
    max_size: int = 4096

    @property
    def side(self) -> int:
        """The largest side the sheet may have: ``max_size``, or with ``power_of_two`` the
        largest power of two within it."""
        if self.power_of_two:
            return 1 << (self.max_size.bit_length() - 1)
        return self.max_size


@dataclass(frozen=True, slots=True)
class SheetCapacity:
    """How many of a sheet's frames fit it, and what would fit them all (each found by
    packing, so each works; None where none was found)."""

    fitting: int
    """The most frames, taken in the order given, that one sheet holds."""
    max_size: int | None
    """A larger ``max_size`` that holds every frame."""
    frame_size: tuple[int, int] | None
    """A smaller ``frame_size`` that holds every frame."""


def oversized_frames(sizes: Sequence[FrameSize], sheet: SheetBin) -> list[str]:
    """The frames too big for the sheet even alone, as ``name (WxH)``."""
    limit = sheet.side - sheet.padding
    return [f"{n} ({w}x{h})" for n, w, h in sizes if max(w, h) + sheet.padding > limit]


def sheet_layout(
    sizes: Sequence[FrameSize], sheet: SheetBin
) -> tuple[int, int, list[tuple[int, int]]] | None:
    """The smallest sheet found for the frames: ``(width, height, corners)``, each corner
    a frame's top-left inside the padding, in input order; None when none holds them.

    Each frame reserves ``padding`` extra pixels to its right and below, inside an area
    inset by ``padding`` at the top and left. Frames go in order of height, width (both
    descending) and name, each where its top edge ends lowest on the skyline (then
    leftmost). That is run for up to :data:`MAX_PACKED_WIDTHS` sheet widths (powers of
    two with ``power_of_two``) and the sheet with the smallest area wins (then the
    squarest, then the narrowest): no randomness, no dict or set order.
    """
    packer = _Packer(sizes, sheet)
    best: tuple[tuple[int, int, int], int, int, list[tuple[int, int]]] | None = None
    for inner_width in packer.widths():
        placed = packer.place(inner_width)
        if placed is None:
            continue
        width, height = packer.extent(placed)
        key = (width * height, max(width, height), width)
        if best is None or key < best[0]:
            best = (key, width, height, placed)
    return None if best is None else best[1:]


def sheet_fits(sizes: Sequence[FrameSize], sheet: SheetBin) -> bool:
    """Whether :func:`sheet_layout` finds a sheet for the frames, asked cheaply: the same
    widths, widest first, stopping at the first that holds them all (usually the first)."""
    if oversized_frames(sizes, sheet):
        return False
    packer = _Packer(sizes, sheet)
    return any(packer.place(w) is not None for w in reversed(packer.widths()))


def sheet_capacity(sizes: Sequence[FrameSize], sheet: SheetBin) -> SheetCapacity | None:
    """None when every frame fits one sheet; else how many do, the first of
    :data:`SUGGESTED_SIDES` past the sheet's side that holds them all, and the first
    halving of the largest frame (down to :data:`MIN_SUGGESTED_SIDE`) that does."""
    if sheet_fits(sizes, sheet):
        return None
    return SheetCapacity(
        _how_many_fit(sizes, sheet), _larger_side(sizes, sheet), _smaller_frame(sizes, sheet)
    )


def _how_many_fit(sizes: Sequence[FrameSize], sheet: SheetBin) -> int:
    """The most frames, in the order given, that fit one sheet (not all: that is known)."""
    low, high = 0, len(sizes) - 1
    while low < high:
        mid = (low + high + 1) // 2
        if sheet_fits(sizes[:mid], sheet):
            low = mid
        else:
            high = mid - 1
    return low


def _larger_side(sizes: Sequence[FrameSize], sheet: SheetBin) -> int | None:
    for side in SUGGESTED_SIDES:
        bigger = replace(sheet, max_size=side)
        if bigger.side > sheet.side and sheet_fits(sizes, bigger):
            return side
    return None


def _smaller_frame(sizes: Sequence[FrameSize], sheet: SheetBin) -> tuple[int, int] | None:
    width, height = max(w for _, w, _ in sizes), max(h for _, _, h in sizes)
    while min(width, height) >= 2 * MIN_SUGGESTED_SIDE:
        width, height = width // 2, height // 2
        if sheet_fits([(name, width, height) for name, _, _ in sizes], sheet):
            return width, height
    return None


class _Packer:
    """Frames ready for the skyline: each with its padding, in packing order."""

    def __init__(self, sizes: Sequence[FrameSize], sheet: SheetBin):
        self.sheet = sheet
        self.pad = sheet.padding
        self.limit = sheet.side - sheet.padding
        self.rects = [(name, w + self.pad, h + self.pad) for name, w, h in sizes]
        self.order = sorted(
            range(len(self.rects)),
            key=lambda i: (-self.rects[i][2], -self.rects[i][1], self.rects[i][0]),
        )

    def widths(self) -> list[int]:
        """Inner widths to try, narrowest first: whole power-of-two sheets, or an even
        spread from the widest frame to all of them in one row."""
        widest = max(w for _, w, _ in self.rects)
        if self.sheet.power_of_two:
            sides = (1 << k for k in range(self.limit.bit_length() + 1))
            return [side - self.pad for side in sides if widest <= side - self.pad <= self.limit]
        high = min(self.limit, sum(w for _, w, _ in self.rects))
        step = max(1, math.ceil((high - widest) / (MAX_PACKED_WIDTHS - 1)))
        return sorted({*range(widest, high + 1, step), high})

    def extent(self, placed: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """The sheet's width and height for frames placed at these corners."""
        pairs = list(zip(placed, self.rects, strict=True))
        width = self.pad + max(x + r[1] for (x, _), r in pairs)
        height = self.pad + max(y + r[2] for (_, y), r in pairs)
        if self.sheet.power_of_two:
            return 1 << (width - 1).bit_length(), 1 << (height - 1).bit_length()
        return width, height

    def place(self, width: int) -> list[tuple[int, int]] | None:
        """Bottom-left skyline packing in a ``width`` x ``limit`` bin, or None if one misses.

        The skyline is the ``(x, y, length)`` top edges of what is placed so far; a
        rectangle starts at a segment's left end and rests on the highest segment under
        it, so nothing overlaps. Space under an overhang is given up: the price of a packer
        fast enough to run for every candidate width (a MaxRects packer fills more but
        costs O(n^3)).
        """
        sky = [(0, 0, width)]
        placed = [(0, 0)] * len(self.rects)
        for i in self.order:
            _, w, h = self.rects[i]
            best: tuple[int, int, int, int] | None = None  # (top, x, segment, y)
            for s, (x, _, _) in enumerate(sky):
                if x + w > width:
                    break
                y = max(sy for sx, sy, _ in sky[s:] if sx < x + w)
                if y + h <= self.limit and (best is None or (y + h, x) < best[:2]):
                    best = (y + h, x, s, y)
            if best is None:
                return None
            top, x, s, y = best
            placed[i] = (x, y)
            sky = _raised(sky, s, x, w, top)
        return placed


def _raised(
    sky: list[tuple[int, int, int]], s: int, x: int, w: int, top: int
) -> list[tuple[int, int, int]]:
    """The skyline after a ``w`` wide rectangle lands at ``x`` (from segment ``s``) with its
    top edge at ``top``: the segments it covers cut away, neighbours of one height merged."""
    rest = []
    for sx, sy, sl in sky[s:]:
        if sx + sl > x + w:
            rest.append((max(sx, x + w), sy, sx + sl - max(sx, x + w)))
    merged: list[tuple[int, int, int]] = []
    for seg in [*sky[:s], (x, top, w), *rest]:
        if merged and merged[-1][1] == seg[1]:
            merged[-1] = (merged[-1][0], seg[1], merged[-1][2] + seg[2])
        else:
            merged.append(seg)
    return merged
