"""``assetpipe watch``'s side of the api: free previews of the current spec, kept apart.

Every save re-plans the project and renders what changed with the ``preview`` provider
(free, offline, fast), so a person sees the effect of a prompt or a size at once. The
previews go to their own tree, ``<cache_dir>/watch/output`` (default
``.assetpipe/watch/output``), with their own cache and build lock beside it, so that:

- real art in ``output/`` is never overwritten by a placeholder, and ``output/manifest.json``
  keeps describing paid images only;
- a real ``assetpipe build`` in another terminal never waits for (or fails on) the watch's
  lock, and the watch never touches the paid cache.

Previews are planned without picks (a preview has no approved image to deliver): each
variant sits at its unnumbered path, and rerolls in the lock still count.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.api.building import run_workspace
from pipeline.api.results import BuildOptions, BuildResult
from pipeline.api.workspace import Request, open_workspace
from pipeline.errors import PipelineError
from pipeline.jobs import ApiJob
from pipeline.output import MANIFEST
from pipeline.runner.deps import Reporter
from pipeline.settings import SETTINGS_FILE, Settings, resolve_settings
from pipeline.spec.lock import LOCK_FILE

WATCH_DIR = "watch"
MAX_WATCHED_FILES = 20_000
"""A walk stops here: a project with more source files than this is not one to poll."""


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """What one preview build rendered, and which project files it read."""

    build: BuildResult
    rendered: tuple[str, ...]
    """API jobs drawn anew (their spec changed, or they are new)."""
    output: Path
    sources: tuple[Path, ...]
    """Brand folders and project input images (masks, logos) the plan read."""


def watch_folders(settings: Settings) -> tuple[Path, Path]:
    """The previews' cache folder and output tree."""
    cache = settings.cache_dir / WATCH_DIR
    return cache, cache / "output"


def preview_build(req: Request, reporter: Reporter) -> PreviewResult:
    """Render the project with ``preview`` into the watch tree (only what changed)."""
    settings = resolve_settings(req.project, dict(req.flags or {}), credentials=False)
    cache, output = watch_folders(settings)
    flags = {
        **(req.flags or {}),
        "provider": "preview",
        "output": str(output),
        "cache_dir": str(cache),
    }
    ws = open_workspace(
        Request(project=req.project, flags=flags, today=req.today, picks=False),
        credentials=False,
    )
    # Previews stay on this machine: never read or fill the team's shared cache.
    ws = replace(ws, settings=replace(ws.settings, remote_cache=None))
    result = run_workspace(ws, BuildOptions(prune=True), reporter)
    outcomes = result.report.outcomes
    rendered = tuple(  # in plan order, not in the order they finished
        job.id
        for job in ws.plan.jobs
        if job.is_api and job.id in outcomes and outcomes[job.id].status == "generated"
    )
    sources = {c.brand_dir for c in ws.specs().collections}
    for job in ws.full_plan.jobs:
        if isinstance(job, ApiJob):
            for ref in (*job.inputs, *(r for r in (job.mask, job.markup) if r is not None)):
                if ref.path is not None:
                    sources.add(ws.settings.root / ref.path)
    return PreviewResult(result, rendered, output, tuple(sorted(sources)))


def source_paths(settings: Settings, extra: Iterable[Path] = ()) -> list[Path]:
    """What a change to re-plans for: ``assetpipe.yaml``, ``assetpipe.lock``, the specs
    and templates folders, and ``extra`` (brand folders, input images)."""
    root = settings.root
    paths = [root / SETTINGS_FILE, root / LOCK_FILE, settings.specs_dir, settings.templates_dir]
    return list(dict.fromkeys([*paths, *extra]))


def watched_paths(req: Request, extra: Iterable[Path] = ()) -> list[Path]:
    """:func:`source_paths` of the request's project; when ``assetpipe.yaml`` does not
    load (mid-edit), the default folders, so that fixing it is noticed too."""
    try:
        settings = resolve_settings(req.project, dict(req.flags or {}), credentials=False)
    except PipelineError:
        root = req.project
        defaults = [root / SETTINGS_FILE, root / LOCK_FILE, root / "specs", root / "templates"]
        return list(dict.fromkeys([*defaults, *extra]))
    return source_paths(settings, extra)


def page_paths(settings: Settings) -> list[Path]:
    """What the review page shows: both manifests, the lock and the project's sources."""
    _, previews = watch_folders(settings)
    return [settings.output_dir / MANIFEST, previews / MANIFEST, *source_paths(settings)]


def fingerprint(paths: Iterable[Path]) -> str:
    """A digest of the size, mtime and inode of every file at or under ``paths``.

    Polling this is how the watch and the page notice a save without a new dependency
    or OS-specific events: a stat per file, links never followed, at most
    :data:`MAX_WATCHED_FILES` files.
    """
    digest = hashlib.sha256()
    seen = 0
    for path in paths:
        for name, info in _walk(path):
            seen += 1
            if seen > MAX_WATCHED_FILES:
                return digest.hexdigest()
            digest.update(f"{name}\0{info}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _walk(path: Path) -> Iterable[tuple[str, str]]:
    try:
        st = path.lstat()
    except OSError:
        yield str(path), "-"
        return
    if not stat.S_ISDIR(st.st_mode):
        yield str(path), f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        return
    for top, dirs, files in os.walk(path):  # never descends into links
        dirs.sort()
        for name in sorted(files):
            full = Path(top) / name
            try:
                info = full.lstat()
            except OSError:
                continue
            yield str(full), f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
