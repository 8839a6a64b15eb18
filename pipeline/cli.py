"""The command line: flags in, one ``api`` call, the result rendered.

No loading or business logic lives here. ``main`` is the one place that turns
exceptions into exit codes: a user's mistake prints its message (never a traceback)
and exits 2; an unexpected error prints a short report and exits 1.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline import __version__, api
from pipeline.api import BuildOptions, BuildResult
from pipeline.errors import EXIT_INTERRUPTED, EXIT_USAGE, PipelineError, SpecErrors
from pipeline.jobs import ApiJob
from pipeline.progress import PlainReporter, QuietReporter, RichReporter
from pipeline.providers.registry import BUILTIN as BUILTIN_PROVIDERS
from pipeline.runner.engine import Reporter

F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
if not out.is_terminal:
    out.width = 200  # a log or a pipe has no width; do not cut job ids to 80 columns
err = Console(stderr=True, highlight=False, soft_wrap=True)


def project_options(func: F) -> F:
    """Options shared by every command that reads a project."""
    options = [
        click.argument("paths", nargs=-1, type=click.Path(path_type=Path)),
        click.option(
            "--project",
            "project",
            type=click.Path(path_type=Path),
            default=Path(),
            show_default=True,
            help="The project folder (with specs/ and templates/).",
        ),
        click.option(
            "--provider",
            metavar="NAME",
            help=f"Image backend: {', '.join(e.name for e in BUILTIN_PROVIDERS)} or a plugin's. "
            "Default: openai when OPENAI_API_KEY is set, else preview.",
        ),
        click.option("--model", help="Project default model (assets and spec defaults win)."),
        click.option("--output", type=str, help="Output folder (default output/)."),
        click.option("--cache-dir", type=str, help="Cache folder (default .assetpipe/)."),
        click.option(
            "--only",
            multiple=True,
            metavar="GLOB",
            help="Only jobs whose id matches (and what they depend on). Repeatable.",
        ),
        click.option(
            "--max-jobs",
            type=int,
            help="Refuse plans with more jobs, renditions and sheets included (10,000).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Print only errors and the summary."),
        click.option("-v", "--verbose", is_flag=True, help="Log every request and retry."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _request(kw: dict[str, Any], extra: dict[str, Any] | None = None) -> api.Request:
    flags = {
        "provider": kw.get("provider"),
        "model": kw.get("model"),
        "output": kw.get("output"),
        "cache_dir": kw.get("cache_dir"),
        "max_jobs": kw.get("max_jobs"),
        **(extra or {}),
    }
    return api.Request(
        project=kw["project"],
        paths=tuple(kw.get("paths") or ()),
        flags=flags,
        only=tuple(kw.get("only") or ()),
    )


def _setup_logging(verbose: bool, quiet: bool) -> None:
    """assetpipe's own loggers follow -v/-q; libraries (the SDK, HTTP) stay at warnings,
    so -v never prints request internals such as headers."""
    logging.basicConfig(
        level=logging.ERROR if quiet else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("assetpipe").setLevel(
        logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    )


def _warn_plan(ws: api.Workspace, quiet: bool) -> None:
    if quiet:
        return
    if ws.settings.provider_is_default and ws.settings.provider == "preview":
        err.print(
            "[dim]provider: preview (offline placeholders; set OPENAI_API_KEY or pass "
            "--provider openai for real images)[/dim]"
        )
    for warning in ws.plan.warnings:
        err.print(f"[yellow]{escape(str(warning))}[/yellow]")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="assetpipe")
def cli() -> None:
    """assetpipe: declarative, cached, concurrent image asset builds on OpenAI image models."""


@cli.command()
@project_options
def validate(**kw: Any) -> None:
    """Check specs, brand kits and templates (no network, no writes)."""
    _setup_logging(kw["verbose"], kw["quiet"])
    ws = api.open_workspace(_request(kw))
    _warn_plan(ws, kw["quiet"])
    collections = len(ws.project.collections)
    api_jobs = sum(1 for j in ws.plan.jobs if j.is_api)
    out.print(
        f"ok: {collections} spec file(s), {api_jobs} API job(s), "
        f"{len(ws.plan.jobs) - api_jobs} rendition(s)"
    )


@cli.command()
@project_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (DESIGN section 9).")
def plan(**kw: Any) -> None:
    """Show the job graph: what is up to date, cached or to generate, and what it costs."""
    _setup_logging(kw["verbose"], kw["quiet"])
    ws = api.open_workspace(_request(kw))
    states = api.job_states(ws)
    if kw["as_json"]:
        sys.stdout.write(api.plan_document(ws, states) + "\n")
        return
    _warn_plan(ws, kw["quiet"])
    if not kw["quiet"]:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in (
            "job",
            "kind",
            "size",
            "request",
            "model",
            "quality",
            "status",
            "checks",
            "est $",
        ):
            table.add_column(column, justify="right" if column == "est $" else "left")
        for job in ws.plan.jobs:
            state = states[job.id]
            w, h = job.size
            rw, rh = job.requested_size
            table.add_row(
                escape(job.id),
                job.kind,
                f"{w}x{h}" if job.kind != "sheet" else "packed",
                f"{rw}x{rh}" if job.is_api else "-",
                job.model if isinstance(job, ApiJob) else "-",
                str(job.params.get("quality", "-")) if job.is_api else "-",
                _status_style(state.status),
                _checks_cell(state.checks),
                f"{job.estimated_cost_usd:.3f}" if job.is_api else "",
            )
        out.print(table)
    totals = api.plan_totals(ws.plan, states)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(totals["by_status"].items()))
    provider = ws.settings.provider
    free = f" ({provider} images are free)" if ws.settings.provider_entry.free else ""
    out.print(
        f"{totals['jobs']} jobs ({counts}); estimated API cost of this build "
        f"${totals['estimated_cost_usd']:.2f}{free}"
    )


def _checks_cell(checks: Any) -> str:
    """``ok 3`` or ``2/3 failed`` for the checks recorded for an up-to-date file."""
    if not checks:
        return ""
    failed = sum(1 for c in checks if not c.get("ok"))
    return f"[red]{failed}/{len(checks)} failed[/]" if failed else f"[green]ok {len(checks)}[/]"


def _status_style(status: str) -> str:
    color = {"up-to-date": "green", "cached": "cyan", "generate": "yellow", "render": "blue"}
    return f"[{color.get(status, 'white')}]{status}[/]"


@cli.command()
@project_options
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
def graph(**kw: Any) -> None:
    """Print the job graph as a mermaid flowchart or Graphviz dot."""
    _setup_logging(kw["verbose"], kw["quiet"])
    ws = api.open_workspace(_request(kw))
    sys.stdout.write(api.graph_text(ws.plan, kw["fmt"]))


@cli.command()
@project_options
@click.option("--concurrency", type=int, help="Requests in flight at most (default 8).")
@click.option("--images-per-minute", type=float, help="Pace requests to this many images/min.")
@click.option("--requests-per-minute", type=float, help="Pace requests to this many requests/min.")
@click.option("--max-cost", type=float, metavar="USD", help="Stop starting jobs past this spend.")
@click.option("--timeout", type=float, help="Seconds before a request times out (600).")
@click.option("--force", is_flag=True, help="Call the API again even for cached requests.")
@click.option("--fail-fast", is_flag=True, help="Stop starting jobs after the first failure.")
@click.option("--prune", is_flag=True, help="Delete files of earlier builds no job makes now.")
@click.option("--strict-checks", is_flag=True, help="Exit 1 when a quality check fails.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def build(**kw: Any) -> None:
    """Run the plan: generate what is missing, reuse what is cached, write output/."""
    _setup_logging(kw["verbose"], kw["quiet"])
    req = _request(
        kw,
        {
            "concurrency": kw["concurrency"],
            "images_per_minute": kw["images_per_minute"],
            "requests_per_minute": kw["requests_per_minute"],
            "max_cost": kw["max_cost"],
            "timeout": kw["timeout"],
        },
    )
    ws = api.open_workspace(req)
    _warn_plan(ws, kw["quiet"] or kw["as_json"])
    reporter = _reporter(kw)
    try:
        result = api.run_workspace(
            ws,
            BuildOptions(
                force=kw["force"],
                fail_fast=kw["fail_fast"],
                prune=kw["prune"],
                strict_checks=kw["strict_checks"],
            ),
            reporter,
        )
    finally:
        if isinstance(reporter, RichReporter):
            reporter.close()
    if kw["as_json"]:
        sys.stdout.write(json.dumps(api.build_summary(result), indent=1) + "\n")
    else:
        _print_build(result, kw["quiet"])
    sys.exit(result.exit_code)


def _reporter(kw: dict[str, Any]) -> Reporter:
    if kw["quiet"] or kw["as_json"]:
        return QuietReporter()
    if err.is_terminal and not kw["verbose"]:
        return RichReporter(err)
    return PlainReporter(verbose=kw["verbose"])


def _print_build(result: BuildResult, quiet: bool) -> None:
    report = result.report
    counts = result.counts()
    order = ("generated", "cached", "up-to-date", "failed", "blocked", "skipped")
    summary = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))
    if report.stop_reason and not report.interrupted:
        err.print(f"[yellow]{escape(report.stop_reason)}[/yellow]")
    if report.budget_hit:
        err.print("[yellow]stopped by the budget (--max-cost); raise it to build the rest[/yellow]")
    for path in result.pruned:
        out.print(f"pruned {escape(path)}")
    if not quiet:
        for outcome in report.outcomes.values():
            if outcome.status == "blocked":
                err.print(
                    f"[red]blocked[/red] {escape(outcome.job.id)}: "
                    f"{escape(str((outcome.error or {}).get('message')))}"
                )
    out.print(
        f"{summary}; spent ${report.spent_usd:.2f} in {report.elapsed_s:.1f}s; "
        f"manifest: {result.manifest_path}"
    )
    fresh = [(j, c) for j, status, c in result.failed_checks if status in ("generated", "cached")]
    if fresh and not quiet:
        err.print(
            f"[yellow]{len(fresh)} quality check(s) failed[/yellow]"
            " (see `checks` in the manifest and output/index.html):"
        )
        for job_id, check in fresh[:20]:
            err.print(
                f"  {escape(job_id)}: {escape(str(check.get('name')))}: "
                f"{escape(str(check.get('detail')))}"
            )
    older = len(result.failed_checks) - len(fresh)
    if older and not quiet:
        err.print(f"{older} failed quality check(s) on unchanged files (see the manifest)")
    if report.interrupted:
        err.print("interrupted: finished images are kept; build again to continue")


@cli.command()
@project_options
def check(**kw: Any) -> None:
    """CI: exit 1 when a build would change anything (no network, no writes)."""
    _setup_logging(kw["verbose"], kw["quiet"])
    result = api.check(_request(kw))
    if not result.pending:
        out.print(f"up to date: {result.total} jobs")
        sys.exit(0)
    if not kw["quiet"]:
        for job_id, status in result.pending.items():
            out.print(f"{status:<9} {escape(job_id)}")
    out.print(f"{len(result.pending)} of {result.total} jobs would change; run assetpipe build")
    sys.exit(1)


@cli.group()
def cache() -> None:
    """Inspect or clean the result cache (.assetpipe/cache)."""


def _cache_options(func: Any) -> Any:
    func = click.option("--cache-dir", type=str, help="Cache folder (default .assetpipe/).")(func)
    return click.option(
        "--project",
        "project",
        type=click.Path(path_type=Path),
        default=Path(),
        help="The project folder.",
    )(func)


def _cache_request(kw: dict[str, Any]) -> api.Request:
    _setup_logging(verbose=False, quiet=False)  # a broken record's warning reaches stderr
    return api.Request(
        project=kw["project"], flags={"cache_dir": kw.get("cache_dir"), "provider": "preview"}
    )


@cache.command("stats")
@_cache_options
def cache_stats(**kw: Any) -> None:
    """Entries, image blobs and bytes in the cache."""
    stats = api.cache_stats(_cache_request(kw))
    out.print(f"{stats.entries} entries, {stats.blobs} blobs, {stats.bytes / 1e6:.1f} MB")


@cache.command("gc")
@_cache_options
def cache_gc(**kw: Any) -> None:
    """Drop broken entries and blobs no entry uses."""
    dropped, removed = api.cache_gc(_cache_request(kw))
    out.print(f"removed {dropped} broken entries and {removed} unused blobs")


@cache.command("clear")
@_cache_options
@click.option("--yes", is_flag=True, help="Do not ask (paid results are deleted).")
def cache_clear(**kw: Any) -> None:
    """Delete every cached result; the next build pays again for what output/ lacks."""
    if not kw["yes"] and not click.confirm("Delete every cached (paid) result?", err=True):
        sys.exit(1)
    api.cache_clear(_cache_request(kw))
    out.print("cache cleared")


def _report(exc: BaseException) -> int:
    if isinstance(exc, SpecErrors):
        for e in exc.errors:
            err.print(f"[red]error:[/red] {escape(e.render())}")
        err.print(f"{len(exc.errors)} errors")
        return exc.exit_code
    if isinstance(exc, PipelineError):
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return exc.exit_code
    raise exc


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``assetpipe`` and ``python -m pipeline``; maps errors to exit codes."""
    try:
        code = cli.main(args=argv, prog_name="assetpipe", standalone_mode=False)
    except click.exceptions.Abort:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except PipelineError as exc:
        sys.exit(_report(exc))
    sys.exit(code if isinstance(code, int) else 0)
