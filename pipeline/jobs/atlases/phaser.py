"""Phaser 3/4's multi-atlas JSON, and its animation JSON.

The atlas is what ``this.load.multiatlas(key, url, path)`` reads (``textures``: one image
with its frames as a list; ``load.atlas`` reads it too). Phaser's atlas has no place for
animations; Phaser's own animation format does, so an animated sheet also writes
``<sheet>.anims.json``, which ``this.load.animation(key, url)`` hands to
``anims.fromJSON`` once the atlas is loaded. Its frames name the texture by the sheet's
id, so the atlas is loaded under that key.
"""

from __future__ import annotations

from typing import Any

from pipeline.jobs.atlases.base import AtlasFile, AtlasFormat, AtlasLayout, AtlasOptions
from pipeline.jobs.atlases.texturepacker import dump, frame_entry, sheet_meta


def render_atlas(layout: AtlasLayout, options: AtlasOptions) -> bytes:
    """One texture, its frames in the sheet's frame order."""
    texture = {
        "image": layout.image,
        "format": "RGBA8888",
        "size": {"w": layout.width, "h": layout.height},
        "scale": 1,
        "frames": [{"filename": f.name, **frame_entry(f)} for f in layout.frames],
    }
    meta = sheet_meta(layout)
    meta["texture"] = options.texture  # the key the animation JSON names it by
    return dump({"textures": [texture], "meta": meta})


def render_anims(layout: AtlasLayout, options: AtlasOptions) -> bytes:
    """The animation as ``anims.fromJSON`` takes it: every frame, once, at ``fps``;
    ``repeat`` -1 loops forever, 0 plays once."""
    anim = options.animation
    if anim is None:  # never asked: the file is written only for an animated sheet
        return dump({"anims": []})
    entry: dict[str, Any] = {
        "key": anim.name,
        "type": "frame",
        "frames": [{"key": options.texture, "frame": f.name} for f in layout.frames],
        "frameRate": anim.fps,
        "repeat": -1 if anim.loop else 0,
    }
    return dump({"anims": [entry]})


PHASER = AtlasFormat(
    "phaser",
    "Phaser 3/4 multi-atlas JSON, and anims.fromJSON animations",
    (AtlasFile(".phaser.json", render_atlas), AtlasFile(".anims.json", render_anims, True)),
)
