"""What an atlas format is: a name, the files it writes beside the sheet, and a render of
the sheet's layout into each.

The layout (where each frame lies on the sheet) is decided once, when the sheet is
packed, and kept with the cached sheet as TexturePacker "hash" JSON; every format is a
pure function of it and of the sheet's :class:`AtlasOptions` (its animation, where Godot
finds the image). So adding a format never re-packs a sheet, and the sheet a format
describes is byte for byte the sheet the others describe.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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
    """A packed sheet: its frames (in the sheet's frame order), its size and its image's
    file name."""

    frames: tuple[AtlasFrame, ...]
    width: int
    height: int
    image: str


@dataclass(frozen=True, slots=True)
class AtlasAnimation:
    """The sheet played as one animation: every frame, in the sheet's frame order, at
    ``fps`` frames per second, looping or played once."""

    name: str
    fps: int
    loop: bool


@dataclass(frozen=True, slots=True)
class AtlasOptions:
    """What a format needs besides the layout. ``texture`` is the sheet's id: the key
    Phaser's animation frames name the texture by, and the Godot resource's name.
    ``godot_dir`` is the ``res://`` folder the sheet's image lies in inside a Godot
    project; None: the Godot resource names the image relative to itself."""

    texture: str
    animation: AtlasAnimation | None = None
    godot_dir: str | None = None


Render = Callable[[AtlasLayout, AtlasOptions], bytes]


@dataclass(frozen=True, slots=True)
class AtlasFile:
    """One file a format writes: ``suffix`` is added to the sheet's path without its
    extension (``icons/atlas`` + ``.json``). An ``animated`` file is written only for a
    sheet with an ``animation`` (Phaser's animation JSON)."""

    suffix: str
    render: Render
    animated: bool = False


@dataclass(frozen=True, slots=True)
class AtlasFormat:
    """One atlas format: its name in ``atlas:``, a line for listings, and its files (the
    first is the atlas itself). Every ``render`` is pure and deterministic."""

    name: str
    summary: str
    files: tuple[AtlasFile, ...]

    @property
    def suffix(self) -> str:
        """The atlas file's suffix."""
        return self.files[0].suffix

    def written(self, animated: bool) -> tuple[AtlasFile, ...]:
        """The files a sheet writes in this format, with or without an animation."""
        return tuple(f for f in self.files if animated or not f.animated)


class AtlasLayoutError(ValueError):
    """Stored atlas JSON that is not a sheet's layout (a damaged or planted cache record)."""


def layout_of(atlas_json: bytes, order: Sequence[str] | None = None) -> AtlasLayout:
    """The layout a JSON atlas describes, checked field by field: it comes from the cache
    or the output folder, both untrusted. Every JSON form assetpipe writes is read: frames
    keyed by name (TexturePacker "hash", PixiJS), listed with a ``filename`` (TexturePacker
    "array"), or under Phaser's one texture. A hash keeps frames by name (sorted), so the
    sheet's frame order is given as ``order``, which must name exactly its frames."""
    try:
        doc = json.loads(atlas_json)
        meta = doc["meta"]
        texture = doc["textures"][0] if "textures" in doc else meta
        frames = doc["textures"][0]["frames"] if "textures" in doc else doc["frames"]
        named = (
            frames.items()
            if isinstance(frames, dict)
            else ((f["filename"], f) for f in frames if isinstance(f, dict))
        )
        size = texture["size"]
        layout = AtlasLayout(
            frames=tuple(
                AtlasFrame(name, *(_int(f["frame"][k]) for k in ("x", "y", "w", "h")))
                for name, f in named
            ),
            width=_int(size["w"]),
            height=_int(size["h"]),
            image=str(texture["image"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise AtlasLayoutError(f"not a sheet's atlas: {exc}") from None
    if not all(isinstance(f.name, str) for f in layout.frames):
        raise AtlasLayoutError("not a sheet's atlas: a frame name is not text")
    if order is None:
        return layout
    by_name = {f.name: f for f in layout.frames}
    if sorted(by_name) != sorted(order) or len(set(order)) != len(order):
        raise AtlasLayoutError("not this sheet's atlas: its frames are not the sheet's")
    return AtlasLayout(tuple(by_name[n] for n in order), layout.width, layout.height, layout.image)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a pixel count")
    return value
