"""The one list of sprite-sheet atlas formats.

A sheet spec names its formats (``atlas: [pixi, phaser, godot]``); the planner checks the
names and reserves each format's files, and the build writes each one from the sheet's
layout and options. A new format is one module with its :class:`AtlasFormat` plus one
line in :data:`ATLAS_FORMATS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.jobs.atlases.base import (
    AtlasAnimation,
    AtlasFile,
    AtlasFormat,
    AtlasFrame,
    AtlasLayout,
    AtlasLayoutError,
    AtlasOptions,
    layout_of,
)
from pipeline.jobs.atlases.godot import GODOT
from pipeline.jobs.atlases.options import atlas_options, atlas_params
from pipeline.jobs.atlases.phaser import PHASER
from pipeline.jobs.atlases.pixi import PIXI
from pipeline.jobs.atlases.texturepacker import TEXTUREPACKER_ARRAY, TEXTUREPACKER_HASH

ATLAS_FORMATS: Mapping[str, AtlasFormat] = {
    f.name: f
    for f in (
        TEXTUREPACKER_HASH,
        TEXTUREPACKER_ARRAY,
        PIXI,
        PHASER,
        GODOT,
    )
}  # fmt: skip
"""Every atlas format by name."""
DEFAULT_ATLAS = TEXTUREPACKER_HASH.name
"""The format a sheet writes when its spec names none (and the layout kept in the cache)."""


def atlas_path(base: str, name: str) -> str:
    """The atlas file format ``name`` writes for the sheet at ``base`` (its path without
    the extension)."""
    return f"{base}{ATLAS_FORMATS[name].suffix}"


def atlas_files(base: str, names: Sequence[str], animated: bool) -> tuple[tuple[str, str], ...]:
    """Every file the named formats write for the sheet at ``base``: ``(format, path)``,
    in the order of ``names`` and each format's files."""
    return tuple(
        (name, f"{base}{file.suffix}")
        for name in names
        for file in ATLAS_FORMATS[name].written(animated)
    )


def render_atlases(
    hash_json: bytes,
    files: Sequence[tuple[str, str]],
    base: str,
    options: AtlasOptions,
    order: Sequence[str],
) -> dict[str, bytes]:
    """Each of ``files`` (``(format, path)``, as :func:`atlas_files` names them for the
    sheet at ``base``) made from the sheet's layout (the default format's JSON, as the
    cache keeps it, whose frames are ``order``): ``{path: bytes}``. A sheet without an
    animation gets the cached default atlas as those very bytes."""
    layout = layout_of(hash_json, order)
    out: dict[str, bytes] = {}
    for name, path in files:
        fmt = ATLAS_FORMATS.get(name)
        file = next((f for f in fmt.files if base + f.suffix == path), None) if fmt else None
        if file is None or (file.animated and options.animation is None):
            raise AtlasLayoutError(f"no atlas format {name[:40]!r} writes {path[:200]!r}")
        if name == DEFAULT_ATLAS and options.animation is None:
            out[path] = hash_json
        else:
            out[path] = file.render(layout, options)
    return out


__all__ = [
    "ATLAS_FORMATS",
    "DEFAULT_ATLAS",
    "AtlasAnimation",
    "AtlasFile",
    "AtlasFormat",
    "AtlasFrame",
    "AtlasLayout",
    "AtlasLayoutError",
    "AtlasOptions",
    "atlas_files",
    "atlas_options",
    "atlas_params",
    "atlas_path",
    "layout_of",
    "render_atlases",
]
