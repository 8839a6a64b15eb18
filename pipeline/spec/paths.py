"""Paths in a project as users see them, and whether a path stays inside a folder.

Every file a spec names (another spec, a brand kit, a logo, an edit input) is checked with
:func:`inside` after resolving links and ``..``, and named in messages by
:func:`display_path`, relative to the project.
"""

from __future__ import annotations

from pathlib import Path


def display_path(path: Path, root: Path) -> str:
    """A path as users see it in messages: relative to the project, with forward slashes."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (after resolving links and ``..``) stays inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
