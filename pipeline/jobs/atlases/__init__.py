"""The one list of sprite-sheet atlas formats.

A sheet spec names its formats (``atlas: [texturepacker-hash]``); the planner checks the
names and reserves each format's file, and the build writes each one from the sheet's
layout. A new format (Phaser's multi-atlas, PixiJS, a Godot resource) is one module with
its :class:`AtlasFormat` plus one line in :data:`ATLAS_FORMATS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.jobs.atlases.base import (
    AtlasFormat,
    AtlasFrame,
    AtlasLayout,
    AtlasLayoutError,
    layout_of,
)
from pipeline.jobs.atlases.texturepacker import TEXTUREPACKER_HASH

ATLAS_FORMATS: Mapping[str, AtlasFormat] = {
    f.name: f
    for f in (
        TEXTUREPACKER_HASH,
    )
}  # fmt: skip
"""Every atlas format by name."""
DEFAULT_ATLAS = TEXTUREPACKER_HASH.name
"""The format a sheet writes when its spec names none (and the layout kept in the cache)."""


def atlas_path(base: str, name: str) -> str:
    """The file format ``name`` writes for the sheet at ``base`` (its path without the
    extension)."""
    return f"{base}{ATLAS_FORMATS[name].suffix}"


def render_atlases(hash_json: bytes, names: Sequence[str]) -> dict[str, bytes]:
    """Each named format's atlas from the sheet's layout (the default format's JSON, as
    the cache keeps it); the default format is those very bytes."""
    out: dict[str, bytes] = {}
    layout: AtlasLayout | None = None
    for name in names:
        if name == DEFAULT_ATLAS:
            out[name] = hash_json
            continue
        layout = layout or layout_of(hash_json)
        out[name] = ATLAS_FORMATS[name].render(layout)
    return out


__all__ = [
    "ATLAS_FORMATS",
    "DEFAULT_ATLAS",
    "AtlasFormat",
    "AtlasFrame",
    "AtlasLayout",
    "AtlasLayoutError",
    "atlas_path",
    "layout_of",
    "render_atlases",
]
