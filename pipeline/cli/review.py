"""``assetpipe pick`` and ``unpick``: approve one variant of an asset, or take it back;
``assetpipe review`` serves the page to do it with the images in view, and
``assetpipe watch`` renders free previews on every save.

The choice goes to ``assetpipe.lock`` (commit it); the next build delivers the approved
image at the asset's own path, and renditions, sheets and edits of the asset use it.
"""

from __future__ import annotations

import sys
import webbrowser
from typing import TYPE_CHECKING, Any

import click

from pipeline import api
from pipeline.cli.options import project_options, project_request, setup_logging
from pipeline.cli.render import counted, err, out, shown
from pipeline.collecting import settle
from pipeline.errors import EXIT_USAGE
from pipeline.spec.lock import LOCK_FILE

if TYPE_CHECKING:
    from pipeline.review.watch import WatchEvent


@click.command()
@project_options
@click.argument("variant", metavar="COLLECTION/ASSET#K")
def pick(**kw: Any) -> None:
    """Approve variant K of an asset (it must be built): recorded in assetpipe.lock.

    An asset with one variant may be named without #K."""
    setup_logging(kw["verbose"], kw["quiet"])
    try:
        result = api.pick(project_request(kw), kw["variant"])
    except api.VariantRequired as exc:
        _list_variants(exc)
        sys.exit(EXIT_USAGE)
    who = f" by {shown(result.pick.by)}" if result.pick.by else ""
    out.print(
        f"picked {shown(result.job)}{who} (sha256 {result.pick.sha256[:12]}) in {LOCK_FILE}; "
        f"the next build delivers it as {shown(result.asset)}"
    )


def _list_variants(exc: api.VariantRequired) -> None:
    """The error, then one line per variant with the file to look at, so the person can
    choose and type the ``#K`` the command needs."""
    err.print(f"[red]error:[/red] {shown(exc)}")
    width = max(len(ref) for ref, _ in exc.choices)
    for ref, path in exc.choices:
        err.print(f"  {shown(ref.ljust(width))}  {shown(path)}")


@click.command()
@project_options
@click.argument("asset", metavar="COLLECTION/ASSET")
def unpick(**kw: Any) -> None:
    """Forget an asset's approved variant (the next build delivers variant 1 again)."""
    setup_logging(kw["verbose"], kw["quiet"])
    asset = api.unpick(project_request(kw), kw["asset"])
    out.print(f"unpicked {shown(asset)} in {LOCK_FILE}")


@click.command("review")
@project_options
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port on 127.0.0.1; 0 (the default) takes a free one.",
)
@click.option("--open", "open_page", is_flag=True, help="Open the page in the default browser.")
def review_page(**kw: Any) -> None:
    """Serve the review page on 127.0.0.1: compare variants, pick, reject, reroll."""
    setup_logging(kw["verbose"], kw["quiet"])
    # Starlette and uvicorn load only for this command, never for --help or a build.
    from pipeline.review.server import ReviewServer  # noqa: PLC0415

    server = ReviewServer(project_request(kw), port=kw["port"])
    out.print(f"review page: {server.url}  (Ctrl-C to stop)")
    if kw["open_page"]:
        webbrowser.open(server.url)
    settle()  # a server runs for hours: the collector runs again
    server.serve()


@click.command()
@project_options
@click.option(
    "--interval",
    type=click.FloatRange(0.05, 60),
    default=0.5,
    show_default=True,
    help="Seconds between two looks at the project's files.",
)
def watch(**kw: Any) -> None:
    """On every save, re-render changed assets with the free preview provider."""
    from pipeline.review.watch import watch_project  # noqa: PLC0415 - only when watching

    setup_logging(kw["verbose"], kw["quiet"])
    req = project_request(kw)
    out.print("watching specs, templates, brand files and assetpipe.lock (Ctrl-C to stop)")

    def report(event: WatchEvent) -> None:
        for error in event.errors:
            err.print(f"[red]error:[/red] {shown(error)}")
        if event.errors:
            err.print(f"{counted(len(event.errors), 'error')}; watching for the next save")
            return
        for line in event.failed:
            err.print(f"[red]{shown(line)}[/red]")
        where = shown(str(event.output))
        if event.rendered:
            names = ", ".join(event.rendered[:8]) + (" …" if len(event.rendered) > 8 else "")
            out.print(f"previews: {len(event.rendered)} rendered ({shown(names)}) in {where}")
        else:
            out.print(f"previews: up to date in {where}")

    settle()  # a watch runs for hours: the collector runs again
    watch_project(req, report, interval=kw["interval"])
