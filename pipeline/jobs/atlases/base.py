"""What an atlas format is: a name, the file it writes beside the sheet, and a render of
the sheet's layout.

The layout (where each frame lies on the sheet) is decided once, when the sheet is
packed, and kept with the cached sheet as TexturePacker "hash" JSON; every format is a
pure function of it. So adding a format never re-packs a sheet, and the sheet a format
describes is byte for byte the sheet the others describe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AtlasFrame:
    """One frame on the sheet: its atlas key, top-left corner and size in pixels."""

    name: str
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class AtlasLayout:
    """A packed sheet: its frames (in packing order), its size and its image's file name."""

    frames: tuple[AtlasFrame, ...]
    width: int
    height: int
    image: str


@dataclass(frozen=True, slots=True)
class AtlasFormat:
    """One atlas format. ``suffix`` is added to the sheet's path without its extension
    (``icons/atlas`` + ``.json``); ``render`` is pure and deterministic."""

    name: str
    suffix: str
    summary: str
    render: Callable[[AtlasLayout], bytes]


class AtlasLayoutError(ValueError):
    """Stored atlas JSON that is not a sheet's layout (a damaged or planted cache record)."""


def layout_of(hash_json: bytes) -> AtlasLayout:
    """The layout a TexturePacker "hash" atlas describes, checked field by field: it comes
    from the cache, which is untrusted."""
    try:
        doc = json.loads(hash_json)
        meta, frames = doc["meta"], doc["frames"]
        size = meta["size"]
        layout = AtlasLayout(
            frames=tuple(
                AtlasFrame(name, *(_int(f["frame"][k]) for k in ("x", "y", "w", "h")))
                for name, f in frames.items()
            ),
            width=_int(size["w"]),
            height=_int(size["h"]),
            image=str(meta["image"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AtlasLayoutError(f"not a sheet's atlas: {exc}") from None
    if not all(isinstance(f.name, str) for f in layout.frames):
        raise AtlasLayoutError("not a sheet's atlas: a frame name is not text")
    return layout


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a pixel count")
    return value
