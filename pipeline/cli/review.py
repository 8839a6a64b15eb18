"""``assetpipe pick`` and ``unpick``: approve one variant of an asset, or take it back.

The choice goes to ``assetpipe.lock`` (commit it); the next build delivers the approved
image at the asset's own path, and renditions, sheets and edits of the asset use it.
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from pipeline import api
from pipeline.cli.options import project_options, project_request, setup_logging
from pipeline.cli.render import out
from pipeline.spec.lock import LOCK_FILE


@click.command()
@project_options
@click.argument("variant", metavar="COLLECTION/ASSET#K")
def pick(**kw: Any) -> None:
    """Approve variant K of an asset (it must be built): recorded in assetpipe.lock."""
    setup_logging(kw["verbose"], kw["quiet"])
    result = api.pick(project_request(kw), kw["variant"])
    who = f" by {escape(result.pick.by)}" if result.pick.by else ""
    out.print(
        f"picked {escape(result.job)}{who} (sha256 {result.pick.sha256[:12]}) in {LOCK_FILE}; "
        f"the next build delivers it as {escape(result.asset)}"
    )


@click.command()
@project_options
@click.argument("asset", metavar="COLLECTION/ASSET")
def unpick(**kw: Any) -> None:
    """Forget an asset's approved variant (the next build delivers variant 1 again)."""
    setup_logging(kw["verbose"], kw["quiet"])
    asset = api.unpick(project_request(kw), kw["asset"])
    out.print(f"unpicked {escape(asset)} in {LOCK_FILE}")
