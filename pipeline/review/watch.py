"""``assetpipe watch``: on every save, re-plan and render what changed, free, with preview.

The loop polls the stats of the project's sources (``assetpipe.yaml``, ``assetpipe.lock``,
the specs and templates folders, and the brand folders and input images the last plan
read); no file-system events, so no new dependency and the same behaviour everywhere.
When the digest moves it runs :func:`pipeline.api.preview_build`, which re-renders only
the jobs whose request changed (the rest are up to date in the previews' tree). A spec
that does not load is reported, ``file:line``, and the loop goes on: the next save that
fixes it renders again. Nothing paid happens here; real images come from ``build`` or a
confirmed build on the review page.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline import api
from pipeline.errors import PipelineError, SpecErrors
from pipeline.progress import QuietReporter


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """What one round of the watch did."""

    kind: Literal["rendered", "error"]
    rendered: tuple[str, ...] = ()
    """The API jobs drawn anew (empty: everything was up to date)."""
    output: Path | None = None
    errors: tuple[str, ...] = field(default_factory=tuple)
    """Each error as ``file:line:col: message`` (with its hint), as ``validate`` prints."""
    failed: tuple[str, ...] = ()
    """Jobs whose preview failed (the build's own messages)."""


def watch_project(
    req: api.Request,
    report: Callable[[WatchEvent], None],
    *,
    interval: float = 0.5,
    stop: threading.Event | None = None,
) -> None:
    """Render previews now and after every change, until ``stop`` is set (or Ctrl-C)."""
    stop = stop or threading.Event()
    extra: tuple[Path, ...] = ()
    last = ""
    while not stop.is_set():
        paths = api.watched_paths(req, extra)
        before = api.fingerprint(paths)
        if before != last:
            event, sources = render_once(req)
            extra = sources if sources is not None else extra
            after_paths = api.watched_paths(req, extra)
            # Saves during the render are caught next round: the digest taken before it
            # stands, unless the render found new paths to watch (then start from now).
            last = before if after_paths == paths else api.fingerprint(after_paths)
            report(event)
        stop.wait(interval)


def render_once(req: api.Request) -> tuple[WatchEvent, tuple[Path, ...] | None]:
    """One preview build: its event, and the extra paths its plan read (None on error)."""
    notes = io.StringIO()
    try:
        result = api.preview_build(req, QuietReporter(notes))
    except SpecErrors as exc:
        return WatchEvent("error", errors=tuple(e.render() for e in exc.errors)), None
    except PipelineError as exc:
        return WatchEvent("error", errors=(str(exc),)), None
    if result.build.report.interrupted:
        # Ctrl-C during a render stops the build cleanly (its signal handler); then the
        # watch stops too, as it does when Ctrl-C arrives between two renders.
        raise KeyboardInterrupt
    failed = tuple(line for line in notes.getvalue().splitlines() if line.startswith("failed:"))
    event = WatchEvent("rendered", result.rendered, result.output, failed=failed)
    return event, result.sources
