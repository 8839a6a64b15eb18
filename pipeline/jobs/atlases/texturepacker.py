"""TexturePacker's "hash" JSON: the atlas Phaser, PixiJS, Cocos and most engines read.

It is also the layout every other format is made from (:mod:`.base`), so its bytes are
the ones assetpipe has always written: sorted keys, 1-space indent, a final newline.
"""

from __future__ import annotations

import json

from pipeline.jobs.atlases.base import AtlasFormat, AtlasLayout


def render(layout: AtlasLayout) -> bytes:
    """The atlas JSON: frames are never rotated or trimmed, so source size is frame size."""
    entries = {
        f.name: {
            "frame": {"x": f.x, "y": f.y, "w": f.w, "h": f.h},
            "rotated": False,
            "trimmed": False,
            "spriteSourceSize": {"x": 0, "y": 0, "w": f.w, "h": f.h},
            "sourceSize": {"w": f.w, "h": f.h},
        }
        for f in layout.frames
    }
    meta = {
        "app": "assetpipe",
        "version": "1.0",
        "image": layout.image,
        "format": "RGBA8888",
        "size": {"w": layout.width, "h": layout.height},
        "scale": "1",
    }
    text = json.dumps({"frames": entries, "meta": meta}, indent=1, sort_keys=True)
    return (text + "\n").encode("utf-8")


TEXTUREPACKER_HASH = AtlasFormat(
    "texturepacker-hash",
    ".json",
    'TexturePacker "hash" JSON (Phaser, PixiJS, Cocos and most engines)',
    render,
)
