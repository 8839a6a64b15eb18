"""``assetpipe export``: run the project's exporters over the current manifest.

Its own module because it takes few of the project commands' flags: no spec paths, no
``--only`` (an exporter always sees the whole manifest), no shared cache (nothing is
built or paid for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline import api
from pipeline.cli.options import project_request, setup_logging
from pipeline.cli.render import counted, out, shown


@click.command("export")
@click.option(
    "--project",
    "project",
    type=click.Path(path_type=Path),
    default=Path(),
    show_default=True,
    help="The project folder (with assetpipe.yaml).",
)
@click.option("--provider", metavar="NAME", help="The provider the gallery names (no call).")
@click.option("--output", type=str, help="Output folder (default output/).")
@click.option("--cache-dir", type=str, help="Cache folder (default .assetpipe/).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the summary.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def export(**kw: Any) -> None:
    """Write the exports (the gallery, and those in assetpipe.yaml's exports:) from the
    current manifest: no API call, no build; unchanged files are left as they are."""
    setup_logging(kw["verbose"], kw["quiet"])
    report = api.export_outputs(project_request(kw))
    written = 0
    for result in report.results:
        for rel in sorted(result.files):
            changed = rel in result.written
            written += changed
            if not kw["quiet"]:
                state = "wrote" if changed else "unchanged"
                out.print(f"{state:<9} {shown(rel)} ({shown(result.format)})")
    files = sum(len(r.files) for r in report.results)
    out.print(
        f"exported {counted(len(report.results), 'format')}: "
        f"{counted(written, 'file')} written, {files - written} unchanged"
    )
