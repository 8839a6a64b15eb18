"""What the review page shows, read fresh: the output tree's manifest, the plan's review
facts, and ``assetpipe watch``'s previews.

The page must keep working while a person edits specs: a spec that does not load (yet)
leaves the built images on the page with the error above them, rather than an error
page, and the next save that loads brings the review facts back.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.api.previews import watch_folders
from pipeline.api.workspace import Request, open_workspace
from pipeline.errors import PipelineError
from pipeline.gallery import ReviewData, review_data
from pipeline.output import MANIFEST, ManifestEntry, OutputTree, load_manifest
from pipeline.settings import Settings, resolve_settings
from pipeline.spec.lock import read_lock


@dataclass(frozen=True, slots=True)
class ReviewView:
    """One snapshot of everything the page renders."""

    settings: Settings
    title: str
    tree: OutputTree
    entries: tuple[ManifestEntry, ...]
    review: ReviewData | None
    previews: tuple[OutputTree, tuple[ManifestEntry, ...]] | None
    error: str = ""
    """Why the specs (or the lock) do not load now; empty when they do."""


def page_title(settings: Settings) -> str:
    """The page's title: the project folder's name."""
    return f"assetpipe: {settings.root.resolve().name}"


def review_view(req: Request) -> ReviewView:
    """Read the manifest, plan the project (no network, no writes) and read the previews."""
    settings = resolve_settings(req.project, dict(req.flags or {}), credentials=False)
    tree = OutputTree(settings.output_dir)
    entries = tuple(load_manifest(tree.root).entries.values())
    review: ReviewData | None = None
    error = ""
    try:
        ws = open_workspace(
            Request(project=req.project, flags=req.flags, today=req.today), credentials=False
        )
        review = review_data(
            ws.full_plan,
            read_lock(ws.settings.root),
            entries,
            provider=ws.settings.provider,
            free=ws.settings.provider_entry.free,
        )
    except PipelineError as exc:
        error = f"the specs do not load, so picks and reviews are not shown:\n{exc}"
    _, preview_dir = watch_folders(settings)
    previews = None
    if (preview_dir / MANIFEST).is_file():
        preview_tree = OutputTree(preview_dir)
        previews = (preview_tree, tuple(load_manifest(preview_dir).entries.values()))
    return ReviewView(
        settings=settings,
        title=page_title(settings),
        tree=tree,
        entries=entries,
        review=review,
        previews=previews,
        error=error,
    )
