"""TexturePacker's JSON atlases: "hash" (frames by name) and "array" (a list of frames,
each with its ``filename``), the layouts most engines read (Phaser, PixiJS, Cocos).

The hash is also the layout every other format is made from (:mod:`.base`), so its
bytes are the ones assetpipe has always written: sorted keys, 1-space indent, a final
newline. Neither format has a place for an animation; assetpipe adds
``meta.animation`` (name, fps, loop and the frames in order), which readers ignore.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.jobs.atlases.base import AtlasFile, AtlasFormat, AtlasFrame, AtlasLayout, AtlasOptions


def frame_entry(f: AtlasFrame) -> dict[str, Any]:
    """A frame as TexturePacker writes it: never rotated or trimmed, so source size is
    frame size (PixiJS and Phaser read the same fields)."""
    return {
        "frame": {"x": f.x, "y": f.y, "w": f.w, "h": f.h},
        "rotated": False,
        "trimmed": False,
        "spriteSourceSize": {"x": 0, "y": 0, "w": f.w, "h": f.h},
        "sourceSize": {"w": f.w, "h": f.h},
    }


def sheet_meta(layout: AtlasLayout) -> dict[str, Any]:
    """TexturePacker's ``meta``: who wrote it, the image, its pixel format, size and scale."""
    return {
        "app": "assetpipe",
        "version": "1.0",
        "image": layout.image,
        "format": "RGBA8888",
        "size": {"w": layout.width, "h": layout.height},
        "scale": "1",
    }


def dump(doc: dict[str, Any]) -> bytes:
    """JSON as every assetpipe atlas is written: sorted keys, 1-space indent, final newline,
    so it diffs cleanly."""
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")


def hash_json(layout: AtlasLayout) -> bytes:
    """The "hash" atlas of a sheet without an animation: the layout the cache keeps."""
    return render_hash(layout, AtlasOptions(texture=""))


def render_hash(layout: AtlasLayout, options: AtlasOptions) -> bytes:
    """Frames keyed by name."""
    frames = {f.name: frame_entry(f) for f in layout.frames}
    return dump({"frames": frames, "meta": _meta(layout, options)})


def render_array(layout: AtlasLayout, options: AtlasOptions) -> bytes:
    """Frames as a list in the sheet's frame order, each named by ``filename``."""
    frames = [{"filename": f.name, **frame_entry(f)} for f in layout.frames]
    return dump({"frames": frames, "meta": _meta(layout, options)})


def _meta(layout: AtlasLayout, options: AtlasOptions) -> dict[str, Any]:
    meta = sheet_meta(layout)
    anim = options.animation
    if anim is not None:
        meta["animation"] = {
            "name": anim.name,
            "fps": anim.fps,
            "loop": anim.loop,
            "frames": [f.name for f in layout.frames],
        }
    return meta


TEXTUREPACKER_HASH = AtlasFormat(
    "texturepacker-hash",
    'TexturePacker "hash" JSON (Phaser, PixiJS, Cocos and most engines)',
    (AtlasFile(".json", render_hash),),
)
TEXTUREPACKER_ARRAY = AtlasFormat(
    "texturepacker-array",
    'TexturePacker "array" JSON (Phaser\'s load.atlas, engines that want a frame list)',
    (AtlasFile(".array.json", render_array),),
)
