"""The gallery: ``index.html``, a static page of every image in the manifest.

The first exporter, and the one on by default. Its page is the review page's template
rendered read-only (:mod:`pipeline.gallery`); its thumbnails live in ``.gallery/``, which
it reserves with the page. The build draws a thumbnail as each file lands (and the memo
keeps it), so rendering the page usually draws none; thumbnails its new page no longer
shows are removed only once that page is in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from pipeline.exports.base import ExportOptions, ExportPlan
from pipeline.output import GALLERY_INDEX, THUMB_DIR, ManifestEntry


class GalleryOptions(ExportOptions):
    """The gallery takes no options: its page and folder are fixed, so links to them
    keep working."""


class GalleryExporter:
    """``output/index.html`` and its thumbnails in ``output/.gallery/``."""

    name: ClassVar[str] = "gallery"
    Options: ClassVar[type[ExportOptions]] = GalleryOptions

    def __init__(self, options: ExportOptions | None = None) -> None:
        self.options = options or GalleryOptions()
        self._used: set[str] | None = None

    @classmethod
    def prepare(cls) -> None:
        """Load the page's modules and compile its template (~25 ms otherwise spent
        after the build's last image)."""
        from pipeline.gallery.page import prepare_page  # noqa: PLC0415

        prepare_page()

    def reserved(self) -> Sequence[str]:
        """The page and the thumbnails' folder."""
        return (GALLERY_INDEX, THUMB_DIR)

    def render(self, entries: Sequence[ManifestEntry], plan: ExportPlan) -> Mapping[str, bytes]:
        """The page for ``entries``, with picks and rejections from the plan and the lock;
        a missing thumbnail is drawn into ``.gallery/`` on the way."""
        # The page template, Jinja2 and Pillow load only when a page is written.
        from pipeline.gallery import page_model, render_page, review_data  # noqa: PLC0415

        review = review_data(plan.plan, plan.lock, entries, provider=plan.provider, free=plan.free)
        model = page_model(plan.tree, entries, review=review)
        self._used = set(model.used_thumbnails)
        return {GALLERY_INDEX: render_page(model, title=plan.title).encode("utf-8")}

    def tidy(self, plan: ExportPlan) -> None:
        """Remove thumbnails no entry has any more, now that no page refers to them."""
        if self._used is None:
            return
        from pipeline.gallery.thumbs import remove_stale_thumbnails  # noqa: PLC0415

        remove_stale_thumbnails(plan.tree, self._used)
