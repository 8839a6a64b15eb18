"""A sheet's atlas options as its job's parameters, and back.

Whatever changes an atlas's bytes must change the sheet's cache key, or a build would
find the sheet up to date and leave its atlases stale; the key is made of the job's
parameters, so the options travel there: the planner writes them (:func:`atlas_params`)
and the build reads them back (:func:`atlas_options`). A sheet without an animation or a
``godot_dir`` adds nothing, so its key is the one it always had.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.jobs.atlases.base import AtlasAnimation, AtlasLayoutError, AtlasOptions

ANIMATION = "animation"
FPS = "animation_fps"
LOOP = "animation_loop"
GODOT_DIR = "godot_dir"


def atlas_params(animation: AtlasAnimation | None, godot_dir: str | None) -> dict[str, str | int]:
    """The parameters that carry ``animation`` and ``godot_dir`` (none for neither)."""
    params: dict[str, str | int] = {}
    if animation is not None:
        params |= {ANIMATION: animation.name, FPS: animation.fps, LOOP: int(animation.loop)}
    if godot_dir is not None:
        params[GODOT_DIR] = godot_dir
    return params


def atlas_options(params: Mapping[str, str | int], texture: str) -> AtlasOptions:
    """The options :func:`atlas_params` wrote, for the sheet whose id is ``texture``;
    checked, since a stored plan is read back from disk."""
    animation = None
    if ANIMATION in params:
        name, fps, loop = params[ANIMATION], params.get(FPS), params.get(LOOP)
        if not (isinstance(name, str) and isinstance(fps, int) and fps >= 1 and loop in (0, 1)):
            raise AtlasLayoutError(f"not a sheet's animation: {name!r} at {fps!r} fps")
        animation = AtlasAnimation(name, fps, bool(loop))
    godot_dir = params.get(GODOT_DIR)
    if godot_dir is not None and not isinstance(godot_dir, str):
        raise AtlasLayoutError(f"not a Godot folder: {godot_dir!r}")
    return AtlasOptions(texture, animation, godot_dir)
