"""PixiJS v8's spritesheet JSON: the TexturePacker hash plus ``animations``.

``Assets.load('sheet.pixi.json')`` loads the image named in ``meta.image`` beside it, and
``sheet.animations[name]`` is the textures of an animation, for an ``AnimatedSprite``.
PixiJS keeps no frame rate in the file (an ``AnimatedSprite``'s ``animationSpeed`` is in
frames per 60 Hz tick), so the fps and the loop go in ``meta.animation`` and the reader
sets ``animationSpeed = fps / 60`` and ``loop``.
"""

from __future__ import annotations

from typing import Any

from pipeline.jobs.atlases.base import AtlasFile, AtlasFormat, AtlasLayout, AtlasOptions
from pipeline.jobs.atlases.texturepacker import dump, frame_entry, sheet_meta


def render(layout: AtlasLayout, options: AtlasOptions) -> bytes:
    """Hash frames; with an animation, ``animations`` and ``meta.animation``."""
    doc: dict[str, Any] = {
        "frames": {f.name: frame_entry(f) for f in layout.frames},
        "meta": sheet_meta(layout),
    }
    anim = options.animation
    if anim is not None:
        doc["animations"] = {anim.name: [f.name for f in layout.frames]}
        doc["meta"]["animation"] = {"name": anim.name, "fps": anim.fps, "loop": anim.loop}
    return dump(doc)


PIXI = AtlasFormat(
    "pixi",
    "PixiJS v8 spritesheet JSON (frames, animations for AnimatedSprite)",
    (AtlasFile(".pixi.json", render),),
)
