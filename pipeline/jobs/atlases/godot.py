"""Godot 4's ``SpriteFrames`` text resource: one ``.tres`` a Godot user drops on an
``AnimatedSprite2D``.

Each frame is an ``AtlasTexture`` sub-resource (the sheet's image and the frame's
``region``, named by the frame's file name); the resource's one animation lists them in
the sheet's frame order, at the sheet's fps and loop, or, for a sheet without an
animation, as ``default`` at Godot's own 5 fps, so every frame is still one
``get_frame_texture(&"default", i)`` away. The image is named relative to the resource
(Godot resolves a relative ``ext_resource`` path against the file's folder), or under
the sheet's ``godot_dir`` (``res://...``) when the output is copied elsewhere.
"""

from __future__ import annotations

from pipeline.jobs.atlases.base import AtlasFile, AtlasFormat, AtlasLayout, AtlasOptions

DEFAULT_ANIMATION = "default"
DEFAULT_SPEED = 5
"""What Godot's editor gives a new SpriteFrames: an animation ``default`` at 5 fps."""


def render(layout: AtlasLayout, options: AtlasOptions) -> bytes:
    """The resource: the image, a region per frame, the animation."""
    anim = options.animation
    name, speed, loop = (
        (anim.name, anim.fps, anim.loop) if anim else (DEFAULT_ANIMATION, DEFAULT_SPEED, True)
    )
    path, folder = layout.image, options.godot_dir
    if folder is not None:
        path = f"{folder}{'' if folder.endswith('/') else '/'}{layout.image}"
    steps = len(layout.frames) + 2
    lines = [
        f'[gd_resource type="SpriteFrames" load_steps={steps} format=3]',
        "",
        f'[ext_resource type="Texture2D" path={_quote(path)} id="1_sheet"]',
        "",
    ]
    for index, f in enumerate(layout.frames, 1):
        lines += [
            f'[sub_resource type="AtlasTexture" id="AtlasTexture_{index}"]',
            f"resource_name = {_quote(f.name)}",
            'atlas = ExtResource("1_sheet")',
            f"region = Rect2({f.x}, {f.y}, {f.w}, {f.h})",
            "",
        ]
    frames = "}, {\n".join(
        f'"duration": 1.0,\n"texture": SubResource("AtlasTexture_{i}")\n'
        for i in range(1, len(layout.frames) + 1)
    )
    lines += [  # laid out as Godot's editor saves it, so a re-save in Godot diffs small
        "[resource]",
        f"resource_name = {_quote(options.texture)}",
        "animations = [{",
        f'"frames": [{{\n{frames}}}],',
        f'"loop": {"true" if loop else "false"},',
        f'"name": {_quote(name)},',
        f'"speed": {float(speed)!r}',
        "}]",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _quote(text: str) -> str:
    """A Godot string literal. Names reaching here are checked ids and file names; the
    escapes keep the resource well-formed whatever they hold. The animation name is a
    plain string where Godot's editor writes a StringName (``&"walk"``): Godot converts
    it on load, and text readers that predate StringName still parse the file."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


GODOT = AtlasFormat(
    "godot",
    "Godot 4 SpriteFrames resource (.tres: an AtlasTexture per frame, one animation)",
    (AtlasFile(".tres", render),),
)
