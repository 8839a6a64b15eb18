"""``assetpipe init``: a small project that validates, plans and builds as written.

A first run should end in an image, not in a blank page and the spec reference: the files
here are one brand kit, one template and one spec asset using both, plus settings whose
comments name what people look for first (budget, model, pace, folders). The provider is
left to the environment (``OPENAI_API_KEY`` or the free preview), so the same project
works offline and for real.

Nothing a user wrote is ever overwritten: when any of the files exists, nothing at all is
written, and a write that finds a file which appeared meanwhile takes back what it wrote.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.fsutil import make_folders, remove_folders

SETTINGS = """\
# assetpipe settings for this project (docs/cli.md#settings). Flags and ASSETPIPE_*
# environment variables override what is set here.
#
# The provider is left to the environment: openai when OPENAI_API_KEY is set, else the
# free offline preview (or say so: --provider preview|openai|azure, ASSETPIPE_PROVIDER).

max_cost: 5.00               # USD; a build stops starting paid requests past this (exit 3)
# model: gpt-image-2.5-flare # the default model of specs that name none (docs/models.md)
# concurrency: 8             # requests in flight at most
# images_per_minute: 5       # pace requests (default: learned from the API's headers)
# timeout: 600               # seconds per request
# specs: specs               # where spec files are
# templates: templates       # where prompt templates are
# output: output             # where built images, manifest.json and index.html go
# remote_cache:              # a cache shared by the team (docs/caching.md)
#   url: s3://bucket/prefix
"""

BRAND = """\
# A brand kit: specs name it (brand: ../brands/example.yaml); templates see it as `brand`.
name: Example Studio
colors:
  primary: "#E4572E"
  ink: "#2B2D42"
"""

TEMPLATE = """\
{# A flat app icon. Sees: subject (the asset's vars) and brand (the spec's brand kit). #}
A flat vector app icon of {{ subject }} for {{ brand.name }}, centered, no text.
Main color {{ brand.colors.primary | color_name }} ({{ brand.colors.primary }}),
thick {{ brand.colors.ink | color_name }} outline ({{ brand.colors.ink }}).
"""

SPEC = """\
# One asset drawn from templates/example.j2 with the brand's colors; docs/spec.md lists
# every key (variants, matrices, renditions, edits, sprite sheets).
brand: ../brands/example.yaml
defaults:
  quality: low
assets:
  - id: icon
    template: example.j2
    vars:
      subject: "a paper rocket"
    size: 1024x1024
    renditions:
      - {size: 256x256}
"""

FILES: dict[str, str] = {
    "assetpipe.yaml": SETTINGS,
    "brands/example.yaml": BRAND,
    "specs/example.yaml": SPEC,
    "templates/example.j2": TEMPLATE,
}
"""What ``init`` writes, by path in the project (``output/`` is the first build's)."""


@dataclass(frozen=True, slots=True)
class InitResult:
    """The folder ``init`` wrote into and the files it wrote there."""

    root: Path
    written: tuple[str, ...]


def init_project(root: Path) -> InitResult:
    """Write :data:`FILES` into ``root`` (created if missing), or nothing at all when any
    of them is already there (a :class:`UsageError` naming each). ``root`` is made
    absolute so that messages, and the ``cd`` the CLI suggests, name a real place."""
    root = root.absolute()
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is a file, not a folder; init a folder")
    taken = sorted({name for rel in FILES if (name := _in_the_way(root, rel))})
    if taken:
        them = "it" if len(taken) == 1 else "them"
        raise UsageError(
            f"{root} already has {', '.join(taken)}; assetpipe init never overwrites "
            f"anything, so it wrote nothing (move {them} away, or init another folder)"
        )
    _write_all(root)
    return InitResult(root=root, written=tuple(FILES))


def _in_the_way(root: Path, rel: str) -> str | None:
    """What stops ``root/rel`` from being written as a new file: the file itself (even a
    dangling link), or a folder on its way that is a file or a link (writing through a
    link would put the project elsewhere); None when nothing does."""
    for parent in reversed(Path(rel).parents[:-1]):
        if not os.path.lexists(root / parent):
            break
        mode = (root / parent).lstat().st_mode
        if stat.S_ISLNK(mode):
            return f"{parent.as_posix()} (a symbolic link)"
        if not stat.S_ISDIR(mode):
            return f"{parent.as_posix()} (a file)"
    return rel if os.path.lexists(root / rel) else None


def _write_all(root: Path) -> None:
    """Create every file exclusively (``x``: a file that appeared since the check is not
    replaced), taking back the files and folders written so far when one cannot be."""
    made: list[Path] = []
    folders: list[Path] = []
    try:
        for rel, text in FILES.items():
            path = root / rel
            folders.extend(make_folders(path.parent))
            with path.open("x", encoding="utf-8") as handle:
                made.append(path)
                handle.write(text)
    except OSError as exc:  # a file that appeared meanwhile, a full disk, a read-only folder
        _take_back(made, folders)
        raise UsageError(
            f"cannot write {exc.filename}: {exc.strerror}; assetpipe init wrote nothing"
        ) from None


def _take_back(made: list[Path], folders: list[Path]) -> None:
    """Remove the files and (still empty) folders an unfinished init created."""
    for path in made:
        with contextlib.suppress(OSError):
            path.unlink()
    remove_folders(folders)
