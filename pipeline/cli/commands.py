"""The commands that read a project: validate, plan, graph, build and check.

Each maps its flags to one ``api`` call and hands the result to
:mod:`~pipeline.cli.render`; the ``cache`` group, which reads only the cache, is in
:mod:`~pipeline.cli.cache`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from pipeline import __version__, api
from pipeline.cli.batch import batch
from pipeline.cli.cache import cache
from pipeline.cli.export import export
from pipeline.cli.options import project_options, project_request, setup_logging, shard_option
from pipeline.cli.render import (
    counted,
    err,
    out,
    print_build,
    print_plan,
    print_plan_warnings,
    shown,
    waiting_in_batches,
    warn_plan,
)
from pipeline.cli.review import pick, review_page, unpick, watch
from pipeline.cli.scaffold import init
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.jobs.shards import PacingNote
    from pipeline.runner.deps import Reporter


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="assetpipe")
def cli() -> None:
    """assetpipe: declarative, cached, concurrent image asset builds on OpenAI image models."""


cli.add_command(cache)
cli.add_command(batch)
cli.add_command(pick)
cli.add_command(unpick)
cli.add_command(review_page)
cli.add_command(watch)
cli.add_command(init)
cli.add_command(export)


@cli.command()
@project_options
def validate(**kw: Any) -> None:
    """Check specs, brand kits and templates (no network, no writes)."""
    setup_logging(kw["verbose"], kw["quiet"])
    ws = api.open_workspace(project_request(kw), credentials=False)
    warn_plan(ws, kw["quiet"], provider_note=False)  # validation is the same on every provider
    collections = len(ws.specs().collections)
    api_jobs = sum(1 for j in ws.plan.jobs if j.is_api)
    out.print(
        f"ok: {counted(collections, 'spec file')}, {counted(api_jobs, 'API job')}, "
        f"{counted(len(ws.plan.jobs) - api_jobs, 'rendition')}"
    )


@cli.command()
@project_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (docs/cli.md).")
@click.option("--batch", is_flag=True, help="Estimate at Batch API prices (half).")
@click.option("--qa/--no-qa", "qa", default=None, help="Price judging too (over ASSETPIPE_QA).")
@shard_option
def plan(**kw: Any) -> None:
    """Show the job graph: what is up to date, cached or to generate, and what it costs."""
    setup_logging(kw["verbose"], kw["quiet"])
    try:
        ws = api.open_workspace(
            project_request(kw, {"qa": kw["qa"]}), credentials=False, reuse=True
        )
        if not kw["as_json"]:
            _empty_shard(kw, len(ws.plan.jobs))
        assessed = api.assess_workspace(ws)
        states = assessed.states
        # Under --batch the judge lines go through the Batch API too, at its discount.
        judging = api.judging_estimate(ws, states, api.BATCH_PRICE_FACTOR if kw["batch"] else 1.0)
    except PipelineError as exc:
        if kw["as_json"]:  # a script reading stdout gets JSON saying why there is no plan
            sys.stdout.write(json.dumps(api.plan_error_document(exc), indent=1) + "\n")
        raise
    factor = api.BATCH_PRICE_FACTOR if kw["batch"] else 1.0
    # Jobs of models the Batch API does not take go directly, at the full price.
    direct = api.direct_models(ws.catalog) if kw["batch"] else frozenset()
    if kw["as_json"]:
        shared = assessed.shared_cache
        shared_state = (shared, assessed.shared_cache_problem) if shared else None
        # Written as it is made: 100,000 jobs are 70 MB of JSON, never held whole.
        api.write_plan_document(sys.stdout, ws, states, factor, shared_state, direct, judging)
        sys.stdout.write("\n")
        return
    warn_plan(ws, kw["quiet"])
    print_plan(ws, states, kw["quiet"], factor, direct, judging)


@cli.command()
@project_options
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
def graph(**kw: Any) -> None:
    """Print the job graph as a mermaid flowchart or Graphviz dot."""
    setup_logging(kw["verbose"], kw["quiet"])
    ws = api.open_workspace(project_request(kw), credentials=False)
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
@click.option(
    "--qa/--no-qa",
    "qa",
    default=None,
    help="Check delivered images against their expect: (docs/quality.md); over ASSETPIPE_QA.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option(
    "--batch", is_flag=True, help="Send requests through the Batch API: half price, within 24 h."
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="With --batch: submit, exit 4, and collect on the next build --batch.",
)
@click.option("--partials-fd", type=int, hidden=True, help="The review page's preview pipe.")
@shard_option
def build(**kw: Any) -> None:
    """Run the plan: generate what is missing, reuse what is cached, write output/."""
    started = time.monotonic()
    setup_logging(kw["verbose"], kw["quiet"])
    try:
        result, pacing = _build(kw)
    except PipelineError as exc:
        if kw["as_json"]:  # a CI step reading stdout still gets JSON, with the errors
            sys.stdout.write(json.dumps(api.error_summary(exc), indent=1) + "\n")
        raise
    total = time.monotonic() - started
    if kw["as_json"]:
        summary = api.build_summary(result, total)
        if pacing is not None:
            summary["pacing"] = pacing.summary()
        sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    else:
        print_build(result, kw["quiet"], total)
    sys.exit(result.exit_code)


def _build(kw: dict[str, Any]) -> tuple[api.BuildResult, PacingNote | None]:
    from pipeline import progress  # noqa: PLC0415 - rich's live display, for builds only

    req = project_request(
        kw,
        {
            "concurrency": kw["concurrency"],
            "images_per_minute": kw["images_per_minute"],
            "requests_per_minute": kw["requests_per_minute"],
            "max_cost": kw["max_cost"],
            "timeout": kw["timeout"],
            "qa": kw["qa"],
        },
    )
    if kw["no_wait"] and not kw["batch"]:
        raise click.UsageError("--no-wait goes with --batch")
    options = api.BuildOptions(
        force=kw["force"],
        fail_fast=kw["fail_fast"],
        prune=kw["prune"],
        strict_checks=kw["strict_checks"],
        batch=kw["batch"],
        wait=not kw["no_wait"],
    )
    if kw["partials_fd"] is None and (answer := api.answer_unchanged(req, options)):
        print_plan_warnings(answer.settings, answer.warnings, kw["quiet"])
        reporter = _reporter(kw)  # nothing to do, found before the plan was decoded
        pacing = answer.settings.pacing_note()
        if pacing is not None and isinstance(reporter, progress.QuietReporter):
            reporter.pacing = pacing.line()
        try:
            return answer.result(reporter), pacing
        finally:
            if isinstance(reporter, progress.RichReporter):
                reporter.close()
    ws = api.open_workspace(req, reuse=True, store_plan=True)
    _empty_shard(kw, len(ws.plan.jobs))
    warn_plan(ws, kw["quiet"])  # stderr: with --json, stdout stays the summary alone
    reporter = _reporter(kw)
    pacing = ws.settings.pacing_note()
    if pacing is not None and isinstance(reporter, progress.QuietReporter):
        reporter.pacing = pacing.line()
    try:
        result = api.run_workspace(
            ws,
            options,
            reporter,
            api.previewing_provider(ws.settings, kw["partials_fd"]),
        )
    finally:
        if isinstance(reporter, progress.RichReporter):
            reporter.close()
    return result, pacing


def _empty_shard(kw: dict[str, Any], jobs: int) -> None:
    """Exit 0 with one line when ``--shard`` left nothing to do: with few dependency
    chains a hash leaves some shards none, and a CI matrix must not fail for that."""
    if kw.get("shard") is not None and jobs == 0:
        console = err if kw.get("as_json") else out
        console.print(f"shard {kw['shard']} has none of this plan's jobs; nothing to do")
        sys.exit(0)


def _reporter(kw: dict[str, Any]) -> Reporter:
    """Live progress on a terminal; plain lines in a log, with -v, or with --json (whose
    reader is a script, and whose log is stderr: no live display redrawing a CI log);
    nothing but failures with -q."""
    from pipeline.progress import PlainReporter, QuietReporter, RichReporter  # noqa: PLC0415

    if kw["quiet"]:
        return QuietReporter()
    if err.is_terminal and not kw["verbose"] and not kw["as_json"]:
        return RichReporter(err)
    return PlainReporter(verbose=kw["verbose"])


@cli.command()
@project_options
@click.option(
    "--require-review",
    is_flag=True,
    help="Also exit 1 for assets with several variants and no current pick.",
)
@click.option(
    "--stale",
    is_flag=True,
    help="Also exit 1 while files of removed assets remain in output/ (build --prune).",
)
@click.option(
    "--qa/--no-qa",
    "qa",
    default=None,
    help="Also exit 1 for assets whose image fails its expect: (over ASSETPIPE_QA).",
)
@shard_option
def check(**kw: Any) -> None:
    """CI: exit 1 when a build would change anything (no network, no writes)."""
    setup_logging(kw["verbose"], kw["quiet"])
    result = api.check(project_request(kw, {"qa": kw["qa"]}))
    if kw["stale"] and result.stale:
        for path in result.stale:
            out.print(f"stale     {shown(path)}")
        remain = "remains" if len(result.stale) == 1 else "remain"
        out.print(
            f"{counted(len(result.stale), 'file')} of removed assets {remain}; "
            "assetpipe build --prune removes them"
        )
        sys.exit(1)
    if kw["require_review"] and result.review:
        for problem in result.review:
            out.print(f"review    {shown(problem.asset)}: {shown(problem.problem)}")
        need = "needs" if len(result.review) == 1 else "need"
        out.print(
            f"{counted(len(result.review), 'asset')} {need} review: "
            "`assetpipe pick COLLECTION/ASSET#K`"
        )
        sys.exit(1)
    if result.qa:
        for failure in result.qa:
            out.print(f"qa failed {shown(failure.asset)}: {shown(failure.problem)}")
        fail = "fails" if len(result.qa) == 1 else "fail"
        out.print(f"{counted(len(result.qa), 'asset')} {fail} the quality gate (docs/quality.md)")
        sys.exit(1)
    _empty_shard(kw, result.total)
    if not result.pending:
        out.print(f"up to date: {counted(result.total, 'job')}")
        sys.exit(0)
    if not kw["quiet"]:
        for job_id, status in result.pending.items():
            out.print(f"{status:<9} {shown(job_id)}")
    out.print(
        f"{len(result.pending)} of {counted(result.total, 'job')} would change; {_to_run(result)}"
    )
    sys.exit(1)


def _to_run(result: api.CheckResult) -> str:
    """The build to run: a plain ``build`` pays for nothing an open batch holds (it
    exits 4 for those jobs), so when some wait there it is ``build --batch``, which
    collects them and builds the rest."""
    waiting = sum(1 for status in result.pending.values() if status == "pending")
    if not waiting:
        return "run assetpipe build"
    return f"run assetpipe build --batch ({waiting_in_batches(waiting)})"
