"""What the commands print: the two consoles, the plan table and the build summary.

Results go to ``out`` (stdout, for pipes and logs), everything addressed to the person
at the terminal (warnings, progress, errors) to ``err``. Every value assetpipe did not
write itself (from a spec, a server, the cache, the lock file or a manifest) goes through
:func:`shown` before it reaches rich markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline import api
from pipeline.errors import printable
from pipeline.jobs.plan import PALETTE_SKIPPED

if TYPE_CHECKING:
    from pipeline.api import BuildResult
    from pipeline.jobs.plan import PlanWarning
    from pipeline.runner.freshness import JobState
    from pipeline.settings import Settings

out = Console(highlight=False, soft_wrap=True)
if not out.is_terminal:
    out.width = 200  # a log or a pipe has no width; do not cut job ids to 80 columns
err = Console(stderr=True, highlight=False, soft_wrap=True)

SHOWN_CHECKS = 20
"""Failed checks listed after a build; the rest are counted ("... and N more")."""
PLAN_COLUMNS = (
    "job",
    "kind",
    "size",
    "request",
    "model",
    "quality",
    "status",
    "reason",
    "checks",
    "est $",
)
BUILD_ORDER = ("generated", "cached", "up-to-date", "pending", "failed", "blocked", "skipped")


def shown(value: object) -> str:
    """``value`` as rich markup that prints it literally: its control characters escaped
    (an ESC or a line break from a server or a planted file cannot drive the terminal or
    forge a line) and its brackets too (it cannot restyle the output)."""
    return escape(printable(str(value)))


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 job``, ``2 jobs``: a count with its noun agreeing (``plural`` where adding an
    s is wrong: ``entry``/``entries``), so no message reads "1 jobs" or "job(s)"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def warn_plan(ws: api.Workspace, quiet: bool, provider_note: bool = True) -> None:
    """The plan's warnings, and a note when the free preview provider was chosen for the
    user rather than by them."""
    print_plan_warnings(ws.settings, ws.plan.warnings, quiet, provider_note)


def print_plan_warnings(
    settings: Settings, warnings: Sequence[PlanWarning], quiet: bool, provider_note: bool = True
) -> None:
    """:func:`warn_plan` for a plan that was not decoded (a build with nothing to do)."""
    if quiet:
        return
    if provider_note and settings.provider_is_default and settings.provider == "preview":
        err.print(
            "[dim]provider: preview (offline placeholders; set OPENAI_API_KEY or pass "
            "--provider openai for real images)[/dim]"
        )
    for warning in warnings:
        if not provider_note and warning.location is None and warning.message == PALETTE_SKIPPED:
            continue  # validation reads the same on every provider
        err.print(f"[yellow]{shown(warning)}[/yellow]")


def print_plan(
    ws: api.Workspace,
    states: Mapping[str, JobState],
    quiet: bool,
    factor: float = 1.0,
    direct: frozenset[str] = frozenset(),
    judging: api.JudgingEstimate | None = None,
) -> None:
    """One row per job (unless ``quiet``), then the counts by status and the estimate
    (``factor`` of the model table's prices: 0.5 for the Batch API, except for the jobs of
    ``direct`` models, which a batch build sends directly at the full price)."""
    from pipeline.jobs import ApiJob  # noqa: PLC0415 - loaded with the plan anyway

    if not quiet:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in PLAN_COLUMNS:
            table.add_column(column, justify="right" if column == "est $" else "left")
        for job in ws.plan.jobs:
            state = states[job.id]
            w, h = job.size
            rw, rh = job.requested_size
            table.add_row(
                shown(job.id),
                job.kind,
                f"{w}x{h}" if job.kind != "sheet" else "packed",
                f"{rw}x{rh}" if job.is_api else "-",
                job.model if isinstance(job, ApiJob) else "-",
                str(job.params.get("quality", "-")) if job.is_api else "-",
                _status_style(state.status)
                + (" [yellow]changed since approval[/]" if state.approval == "changed" else ""),
                "" if state.status == "up-to-date" else shown(state.reason),
                _checks_cell(state.checks),
                # Only what this build would pay for has a price; the total sums these.
                f"{job.estimated_cost_usd * api.route_factor(job, factor, direct):.3f}"
                if state.status == "generate"
                else "",
            )
        out.print(table)
    totals = api.plan_totals(ws.plan, states, factor, direct, judging)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(totals["by_status"].items()))
    provider = ws.settings.provider
    free = f" ({provider} images are free)" if ws.settings.provider_entry.free else ""
    route = " at Batch API prices" if factor != 1 else ""
    out.print(
        f"{counted(totals['jobs'], 'job')} ({counts}); estimated API cost of this build "
        f"${totals['estimated_cost_usd']:.2f}{route}{free}"
    )
    if judging is not None:
        kept = f"; {judging.judged} kept verdict(s) cost nothing" if judging.judged else ""
        out.print(
            f"judging with {judging.model}: {counted(judging.images, 'image')}, "
            f"${judging.cost_usd:.4f} of that{kept}"
        )
    alone = totals.get("direct")
    if alone:
        out.print(
            f"sent directly at the full price (no Batch API for {', '.join(alone['models'])}): "
            f"{counted(alone['jobs'], 'job')}, ${alone['estimated_cost_usd']:.2f} of that"
        )


def _checks_cell(checks: Any) -> str:
    """``ok 3`` or ``2/3 failed`` for the checks recorded for an up-to-date file."""
    if not checks:
        return ""
    failed = sum(1 for c in checks if not c.get("ok"))
    return f"[red]{failed}/{len(checks)} failed[/]" if failed else f"[green]ok {len(checks)}[/]"


def _status_style(status: str) -> str:
    color = {
        "up-to-date": "green",
        "cached": "cyan",
        "generate": "yellow",
        "render": "blue",
        "pending": "magenta",
    }
    return f"[{color.get(status, 'white')}]{status}[/]"


def print_build(result: BuildResult, quiet: bool, total_s: float | None = None) -> None:
    """Why the build stopped (if it did), what it pruned and blocked, the one-line
    summary, and the quality checks that failed on files it just made. ``total_s`` is
    the whole command's time, planning included (the build's own when not given)."""
    report = result.report
    counts = result.counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in BUILD_ORDER if counts.get(s))
    if report.stop_reason and not report.interrupted:
        err.print(f"[yellow]{shown(report.stop_reason)}[/yellow]")
    if report.budget_hit:
        err.print("[yellow]stopped by the budget (--max-cost); raise it to build the rest[/yellow]")
    for path in result.pruned:
        out.print(f"pruned {shown(path)}")
    if not quiet:
        for outcome in report.outcomes.values():
            if outcome.status == "blocked":
                err.print(
                    f"[red]blocked[/red] {shown(outcome.job.id)}: "
                    f"{shown((outcome.error or {}).get('message'))}"
                )
    out.print(
        f"{summary}; spent ${report.spent_usd:.2f} in "
        f"{report.elapsed_s if total_s is None else total_s:.1f}s; "
        f"manifest: {shown(result.manifest_path)}"
    )
    fresh = [(j, c) for j, status, c in result.failed_checks if status in ("generated", "cached")]
    if fresh and not quiet:
        err.print(
            f"[yellow]{counted(len(fresh), 'quality check')} failed[/yellow]"
            " (see `checks` in the manifest and output/index.html):"
        )
        for job_id, check in fresh[:SHOWN_CHECKS]:
            err.print(
                f"  {shown(job_id)}: {shown(check.get('name'))}: {shown(check.get('detail'))}"
            )
        if len(fresh) > SHOWN_CHECKS:
            err.print(f"  ... and {len(fresh) - SHOWN_CHECKS} more")
    older = len(result.failed_checks) - len(fresh)
    if older and not quiet:
        err.print(f"{counted(older, 'failed quality check')} on unchanged files (see the manifest)")
    waiting = counts.get("pending", 0)
    if waiting and not quiet:
        err.print(
            f"[magenta]{waiting_in_batches(waiting)}[/magenta]: "
            "`assetpipe build --batch` collects them (nothing is paid twice); "
            "`assetpipe batch list` shows how far they are"
        )
    if report.interrupted:
        err.print("interrupted: finished images are kept; build again to continue")


def waiting_in_batches(n: int) -> str:
    """``1 job waits in an open batch`` / ``3 jobs wait in open batches``."""
    if n == 1:
        return "1 job waits in an open batch"
    return f"{n} jobs wait in open batches"
