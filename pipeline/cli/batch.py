"""``assetpipe batch``: the open batches of a project (``build --batch`` leaves them).

``list`` and ``status`` ask the provider's Batch API how far each journaled batch has got;
``cancel`` asks it to stop. None of them changes the output tree or the cache: the next
``build --batch`` collects whatever the batches made (a cancelled batch's finished lines
too) and forgets each batch once its lines are in the cache.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from pipeline import api
from pipeline.cli.options import cache_options, setup_logging
from pipeline.cli.render import counted, out, shown
from pipeline.errors import printable

if TYPE_CHECKING:
    from pipeline.jobs.batch import BatchError


def _request(kw: dict[str, Any]) -> api.Request:
    setup_logging(verbose=False, quiet=False)
    return api.Request(
        project=kw["project"],
        flags={"cache_dir": kw.get("cache_dir"), "provider": kw.get("provider") or "openai"},
    )


def batch_options(func: Any) -> Any:
    """The cache folder (where the journal is) and the provider whose Batch API to ask."""
    func = click.option(
        "--provider", metavar="NAME", help="Whose Batch API to ask (default openai)."
    )(func)
    return cache_options(func)


@click.group()
def batch() -> None:
    """The open batches of `build --batch` (journaled in .assetpipe/batches)."""


@batch.command("list")
@batch_options
def batch_list(**kw: Any) -> None:
    """One line per open batch: its id, status, requests done and failed, age."""
    found = api.open_batches(_request(kw))
    if not found:
        out.print("no open batches")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("batch", "status", "holds", "endpoint", "requests", "done", "failed", "created"):
        table.add_column(column)
    for item in found:
        info = item.info
        table.add_row(
            shown(item.batch_id),
            shown(info.status if info else f"unknown: {item.problem or 'not found'}"),
            item.holds,
            shown(item.endpoint),
            str(len(item.entry.lines)),
            str(info.counts.completed) if info else "-",
            str(info.counts.failed) if info else "-",
            dt.datetime.fromtimestamp(item.entry.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)
    out.print(
        f"{counted(len(found), 'open batch', 'open batches')}; "
        "`assetpipe build --batch` collects them"
    )


@batch.command("status")
@batch_options
@click.argument("batch_ids", nargs=-1)
def batch_status(**kw: Any) -> None:
    """What the API says of each open batch (all, or the ones named)."""
    found = api.open_batches(_request(kw))
    wanted = set(kw["batch_ids"])
    listed = [b for b in found if not wanted or b.batch_id in wanted]
    missing = wanted - {b.batch_id for b in listed}
    if missing:
        raise click.UsageError(f"no open batch {printable(sorted(missing)[0])} in this project")
    for item in listed:
        info = item.info
        out.print(f"[bold]{shown(item.batch_id)}[/bold]  journal {shown(item.entry.id)}")
        verdicts = " (the quality gate's verdicts)" if item.judging else ""
        out.print(f"  {len(item.entry.lines)} {shown(item.endpoint)} {_requests(item)}{verdicts}")
        if info is None:
            out.print(f"  status unknown: {shown(item.problem or 'the API does not know it')}")
            continue
        out.print(
            f"  {shown(info.status)}: {info.counts.completed} done, {info.counts.failed} failed "
            f"of {info.counts.total}"
        )
        for error in info.errors[:10]:
            out.print(error_line(error))
    if not listed:
        out.print("no open batches")


def _requests(item: api.OpenBatch) -> str:
    """``request`` or ``requests``, agreeing with the batch's line count."""
    return "request" if len(item.entry.lines) == 1 else "requests"


def error_line(error: BatchError) -> str:
    """One error the API gives for a batch, as markup: its code and message are the
    server's, so both are escaped whole (an ESC or a line break in them prints as text)."""
    line = f" (line {error.line})" if error.line else ""
    return f"  error{line}: {shown(error.code or '')} {shown(error.message)}"


@batch.command("cancel")
@batch_options
@click.argument("batch_ids", nargs=-1)
@click.option("--yes", is_flag=True, help="Do not ask.")
def batch_cancel(**kw: Any) -> None:
    """Ask the API to stop open batches (all, or the ones named). Finished lines are still
    collected by the next `build --batch`; the others are not sent again."""
    req = _request(kw)
    names = list(kw["batch_ids"])
    what = ", ".join(names) if names else "every open batch"
    if not kw["yes"]:
        if not sys.stdin.isatty():
            raise click.UsageError("cancelling needs confirmation: pass --yes")
        if not click.confirm(f"Cancel {what}?", err=True):
            sys.exit(1)
    for item in api.cancel_batches(req, names):
        state = item.info.status if item.info else f"not cancelled: {item.problem}"
        out.print(f"{shown(item.batch_id)}: {shown(state)}")
