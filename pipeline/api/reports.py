"""What ``plan``, ``plan --json``, ``graph`` and ``build --json`` print.

Documents built from a plan and a build's result, kept apart from the wiring so the
formats (docs/cli.md) are read in one place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from pipeline.api.results import BuildResult
from pipeline.api.workspace import Workspace
from pipeline.errors import PipelineError, SpecError, SpecErrors, UsageError
from pipeline.jobs import ApiJob, Job, Plan
from pipeline.runner.freshness import JobState

if TYPE_CHECKING:
    from pipeline.api.qa_status import JudgingEstimate

_RAW_CONTROLS = re.compile("[\x7f-\x9f]")
"""What ``json.dumps(..., ensure_ascii=False)`` leaves raw that a terminal acts on: DEL and
the C1 controls (it escapes the C0 ones itself)."""


def _escape_controls(text: str) -> str:
    """JSON text with DEL and the C1 controls written as ``\\u`` escapes: the same value
    for a JSON reader, and inert on a terminal. Outside strings JSON is ASCII, so every
    such character found is inside a string."""
    return _RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def route_factor(job: Job, factor: float, direct: AbstractSet[str]) -> float:
    """The share of the table's price ``job`` pays: ``factor``, except the jobs of
    ``direct`` models, which a batch build sends directly at the full price."""
    return 1.0 if factor != 1.0 and isinstance(job, ApiJob) and job.model in direct else factor


def job_json(
    job: Job, state: JobState | None, factor: float = 1.0, direct: AbstractSet[str] = frozenset()
) -> dict[str, Any]:
    """One job as ``plan --json`` prints it (docs/cli.md)."""
    return {
        "id": job.id,
        "kind": job.kind,
        "collection": job.collection,
        "asset": job.asset,
        "variant": job.variant,
        "model": "-" if job.kind == "sheet" else job.model,
        "size": f"{job.size[0]}x{job.size[1]}" if job.kind != "sheet" else "packed",
        "requested_size": (
            f"{job.requested_size[0]}x{job.requested_size[1]}" if job.is_api else None
        ),
        "quality": job.params.get("quality") if job.is_api else None,
        "background": job.params.get("background") if job.is_api else None,
        "params": dict(job.params) if job.is_api else None,
        "format": job.format,
        "prompt": "" if job.kind == "sheet" else job.prompt,
        "depends_on": list(job.depends_on),
        "status": state.status if state else None,
        "reason": state.reason if state else None,
        "cache_key": state.cache_key if state else job.cache_key,
        "estimated_cost_usd": round(job.estimated_cost_usd * route_factor(job, factor, direct), 6),
        "output": job.output_path,
        "source": job.source,
        "checks": [dict(c) for c in state.checks] if state and state.checks else None,
        "approval": state.approval if state else None,
    }


def plan_totals(
    plan_: Plan,
    states: Mapping[str, JobState],
    factor: float = 1.0,
    direct: AbstractSet[str] = frozenset(),
    judging: JudgingEstimate | None = None,
) -> dict[str, Any]:
    """Counts by status and kind, and the estimated cost of what a build would pay for
    (``factor`` of the model table's prices: 0.5 at Batch API prices, except for the jobs
    of ``direct`` models, which a batch build sends directly at the full price; those are
    counted under ``direct`` when there are any). With the quality gate on, ``judging``
    (the judge calls the build would make) is under ``judging`` and in the estimate."""
    by_status: dict[str, int] = {}
    for state in states.values():
        by_status[state.status] = by_status.get(state.status, 0) + 1
    api_jobs = [j for j in plan_.jobs if isinstance(j, ApiJob)]
    to_pay = [j for j in api_jobs if states[j.id].status == "generate"]
    totals: dict[str, Any] = {
        "jobs": len(plan_.jobs),
        "api_jobs": len(api_jobs),
        "renditions": len(plan_.jobs) - len(api_jobs),
        "by_status": by_status,
        "estimated_cost_usd": round(_priced(to_pay, factor, direct), 6),
        "estimated_cost_all_usd": round(_priced(api_jobs, factor, direct), 6),
    }
    alone = [j for j in to_pay if route_factor(j, factor, direct) != factor]
    if factor != 1.0 and any(route_factor(j, factor, direct) != factor for j in api_jobs):
        totals["direct"] = {
            "models": sorted({j.model for j in api_jobs if j.model in direct}),
            "jobs": len(alone),
            "estimated_cost_usd": round(_priced(alone, 1.0, frozenset()), 6),
        }
    if judging is not None:
        totals["judging"] = judging.as_dict()
        totals["estimated_cost_usd"] = round(_priced(to_pay, factor, direct) + judging.cost_usd, 6)
    return totals


def _priced(jobs: list[ApiJob], factor: float, direct: AbstractSet[str]) -> float:
    return sum(j.estimated_cost_usd * route_factor(j, factor, direct) for j in jobs)


def plan_document(
    ws: Workspace,
    states: Mapping[str, JobState],
    factor: float = 1.0,
    shared: tuple[str, str | None] | None = None,
    direct: AbstractSet[str] = frozenset(),
    judging: JudgingEstimate | None = None,
) -> str:
    """``plan --json`` as text (estimates at ``factor`` of the model table's prices).

    One job per line, each written by the C encoder: indenting the whole document makes
    ``json`` fall back to its pure-Python encoder, seconds for 10,000 jobs. Text stays
    readable (non-ASCII as it is) but no control character is printed raw."""
    totals = plan_totals(ws.plan, states, factor, direct, judging)
    jobs = ",\n".join(
        json.dumps(job_json(j, states.get(j.id), factor, direct), ensure_ascii=False)
        for j in ws.plan.jobs
    )
    rest: dict[str, Any] = {
        "totals": {**totals, "provider": ws.settings.provider, "price_factor": factor},
        "warnings": [str(w) for w in ws.plan.warnings],
    }
    if shared is not None:
        rest["shared_cache"] = {"url": shared[0], "problem": shared[1]}
    tail = ",\n".join(
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in rest.items()
    )
    document = f'{{"jobs": [\n{jobs}\n],\n{tail}\n}}' if jobs else f'{{"jobs": [],\n{tail}\n}}'
    return _escape_controls(document)


def graph_text(plan_: Plan, fmt: str) -> str:
    """The job graph as mermaid or Graphviz dot."""
    if fmt == "mermaid":
        lines = ["flowchart LR"]
        names = {job.id: f"j{i}" for i, job in enumerate(plan_.jobs)}
        for job in plan_.jobs:
            lines.append(f'  {names[job.id]}["{job.id}<br/>{job.kind}"]')
        for job in plan_.jobs:
            lines.extend(f"  {names[d]} --> {names[job.id]}" for d in job.depends_on if d in names)
        return "\n".join(lines) + "\n"
    if fmt == "dot":
        lines = ["digraph assetpipe {", "  rankdir=LR;", "  node [shape=box];"]
        for job in plan_.jobs:
            lines.append(f'  "{job.id}" [label="{job.id}\\n{job.kind}"];')
        for job in plan_.jobs:
            lines.extend(f'  "{d}" -> "{job.id}";' for d in job.depends_on)
        lines.append("}")
        return "\n".join(lines) + "\n"
    raise UsageError(f"unknown graph format '{fmt}'; use mermaid or dot")


def error_summary(exc: PipelineError) -> dict[str, Any]:
    """``build --json`` when the build could not start (a bad spec, bad settings): the
    exit code and each error with its place, so a CI step still gets JSON to read."""
    return {"exit_code": exc.exit_code, "counts": {}, "spent_usd": 0.0, "errors": _errors(exc)}


def plan_error_document(exc: PipelineError) -> dict[str, Any]:
    """``plan --json`` when there is no plan (a bad spec, bad settings): no jobs, the exit
    code and the errors as ``build --json`` lists them, so a script that reads the plan
    reads why there is none instead of an empty stdout."""
    return {"jobs": [], "exit_code": exc.exit_code, "errors": _errors(exc)}


def _errors(exc: PipelineError) -> list[dict[str, Any]]:
    """Each error of ``exc`` with its place and hint (None where it has none)."""
    errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
    listed = []
    for error in errors:
        where = error.location if isinstance(error, SpecError) else None
        listed.append(
            {
                "message": error.message if isinstance(error, SpecError) else str(error),
                "file": where.file if where else None,
                "line": where.line if where else None,
                "column": where.column if where else None,
                "hint": error.hint if isinstance(error, SpecError) else None,
            }
        )
    return listed


def build_summary(result: BuildResult, total_s: float | None = None) -> dict[str, Any]:
    """``build --json``: counts, spend, time, failures and the exit code; ``elapsed_s`` is
    the whole command (planning included) when ``total_s`` is given."""
    report = result.report
    return {
        "exit_code": result.exit_code,
        "counts": result.counts(),
        "spent_usd": round(report.spent_usd, 6),
        "elapsed_s": round(report.elapsed_s if total_s is None else total_s, 3),
        "build_s": round(report.elapsed_s, 3),
        "stop_reason": report.stop_reason,
        "budget_hit": report.budget_hit,
        "interrupted": report.interrupted,
        "failed": [
            {"job": o.job.id, "status": o.status, "error": dict(o.error or {})}
            for o in report.outcomes.values()
            if o.status in ("failed", "blocked")
        ],
        "failed_checks": [
            {"job": job, "status": status, **dict(check)}
            for job, status, check in result.failed_checks
        ],
        "pruned": list(result.pruned),
        "manifest": str(result.manifest_path),
        **(
            {"shared_cache": {"url": result.shared_cache, "problem": result.shared_cache_problem}}
            if result.shared_cache
            else {}
        ),
    }
