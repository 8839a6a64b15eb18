"""The served page's content: rendered from a fresh read, again only when something moved.

The page is a pure function of a few files (both manifests, ``assetpipe.lock``, the specs
and templates); their stats are the page's version. The browser polls the version and
fetches the page again when it changes, so a build in another terminal, a pick from
the CLI or a save that ``assetpipe watch`` renders all reach the page the same way.
"""

from __future__ import annotations

import threading

from pipeline import api
from pipeline.errors import PipelineError
from pipeline.gallery import Live, page_model, render_page
from pipeline.output import OutputTree, load_manifest


class PageSource:
    """Renders the review page of one project, cached by the version of its files."""

    def __init__(self, req: api.Request, token: str, poll_ms: int = 1000):
        self.req = req
        self.token = token
        self.poll_ms = poll_ms
        view = api.review_view(req)  # a broken assetpipe.yaml stops the server at start
        self.settings = view.settings
        self.output = OutputTree(self.settings.output_dir)
        self.previews = OutputTree(api.watch_folders(self.settings)[1])
        self._paths = api.page_paths(self.settings)
        self._lock = threading.Lock()
        self._cached: tuple[str, str] = ("", "")

    def version(self) -> str:
        """The digest of the stats of every file the page shows."""
        return api.fingerprint(self._paths)

    def html(self) -> str:
        """The page as it is now (rendered again only when the version moved)."""
        with self._lock:
            version = self.version()
            if self._cached[0] == version:
                return self._cached[1]
            try:
                view = api.review_view(self.req)
            except PipelineError as exc:  # assetpipe.yaml broken while the server runs
                entries = tuple(load_manifest(self.output.root).entries.values())
                view = api.ReviewView(
                    settings=self.settings,
                    title=api.page_title(self.settings),
                    tree=self.output,
                    entries=entries,
                    review=None,
                    previews=None,
                    error=str(exc),
                )
            model = page_model(
                view.tree,
                view.entries,
                review=view.review,
                previews=view.previews,
                base="/files/",
                preview_base="/previews/",
            )
            live = Live(token=self.token, version=version, poll_ms=self.poll_ms)
            html = render_page(model, title=view.title, live=live, error=view.error)
            self._cached = (version, html)
            return html
