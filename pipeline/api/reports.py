"""What ``plan``, ``plan --json``, ``graph`` and ``build --json`` print.

Documents built from a plan and a build's result, kept apart from the wiring so the
formats (docs/cli.md) are read in one place.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, TextIO

from pipeline.api.results import BuildResult
from pipeline.api.workspace import Workspace
from pipeline.errors import PipelineError, SpecError, SpecErrors, UsageError
from pipeline.jobs import ApiJob, Job, Plan, SheetJob
from pipeline.runner.freshness import JobState

if TYPE_CHECKING:
    from pipeline.api.qa_status import JudgingEstimate

_RAW_CONTROLS = re.compile("[\x7f-\x9f]")
"""What ``json.dumps(..., ensure_ascii=False)`` leaves raw that a terminal acts on: DEL and
the C1 controls (it escapes the C0 ones itself)."""


def _escape_controls(text: str) -> str:
    """JSON text with DEL and the C1 controls written as ``\\u`` escapes: the same value
    for a JSON reader, and inert on a terminal. Outside strings JSON is ASCII, so every
    such character found is inside a string. Most text is ASCII without DEL: two quick
    scans say so, and then there is nothing to replace."""
    if text.isascii() and "\x7f" not in text:
        return text
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
    # At the table's prices every job pays ``factor`` itself (see route_factor): none alone.
    alone = (
        [j for j in to_pay if route_factor(j, factor, direct) != factor] if factor != 1.0 else []
    )
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
    if factor == 1.0:  # route_factor is ``factor`` for every job: the same sum, no call
        return sum(j.estimated_cost_usd * factor for j in jobs)
    return sum(j.estimated_cost_usd * route_factor(j, factor, direct) for j in jobs)


def plan_document(
    ws: Workspace,
    states: Mapping[str, JobState],
    factor: float = 1.0,
    shared: tuple[str, str | None] | None = None,
    direct: AbstractSet[str] = frozenset(),
    judging: JudgingEstimate | None = None,
) -> str:
    """``plan --json`` as text (estimates at ``factor`` of the model table's prices): what
    :func:`write_plan_document` writes, in one string."""
    out = io.StringIO()
    write_plan_document(out, ws, states, factor, shared, direct, judging)
    return out.getvalue()


WRITE_BATCH = 2000
"""Job lines written at once: a 100,000-job plan is 70 MB of text, never held whole."""


def write_plan_document(
    out: TextIO,
    ws: Workspace,
    states: Mapping[str, JobState],
    factor: float = 1.0,
    shared: tuple[str, str | None] | None = None,
    direct: AbstractSet[str] = frozenset(),
    judging: JudgingEstimate | None = None,
) -> None:
    """Write ``plan --json`` to ``out`` (without the final newline), a batch of jobs at a
    time. One job per line, each exactly as ``json.dumps`` writes :func:`job_json`'s
    mapping (see :class:`_JobLines`): indenting the whole document makes ``json`` fall
    back to its pure-Python encoder, seconds for 10,000 jobs. Text stays readable
    (non-ASCII as it is) but no control character is printed raw."""
    totals = plan_totals(ws.plan, states, factor, direct, judging)
    rest: dict[str, Any] = {
        "totals": {**totals, "provider": ws.settings.provider, "price_factor": factor},
        "warnings": [str(w) for w in ws.plan.warnings],
    }
    if shared is not None:
        rest["shared_cache"] = {"url": shared[0], "problem": shared[1]}
    tail = ",\n".join(
        f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in rest.items()
    )
    jobs = ws.plan.jobs
    if not jobs:
        out.write(_escape_controls(f'{{"jobs": [],\n{tail}\n}}'))
        return
    out.write('{"jobs": [\n')
    lines = _JobLines(factor, direct)
    for start in range(0, len(jobs), WRITE_BATCH):
        batch = jobs[start : start + WRITE_BATCH]
        text = ",\n".join(lines.line(j, states.get(j.id)) for j in batch)
        out.write(_escape_controls(text if start == 0 else ",\n" + text))
    out.write(_escape_controls(f"\n],\n{tail}\n}}"))


_encode_text: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
)
"""How ``json.dumps(..., ensure_ascii=False)`` writes a string (quotes included)."""


def _value(value: object) -> str:
    """One JSON value as ``json.dumps(value, ensure_ascii=False)`` writes it: the common
    scalars directly, anything else through ``json`` itself."""
    kind = type(value)
    if kind is str and isinstance(value, str):
        return _encode_text(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is float and isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, ensure_ascii=False)


class _JobLines:
    """Each job's line of ``plan --json``: the text ``json.dumps(job_json(...),
    ensure_ascii=False)`` gives, written field by field (a test holds them equal on
    every kind of job and on awkward text). The fields from ``model`` to ``format`` are
    written once per combination of their values: the jobs of one asset share them (and
    their parameter mapping)."""

    def __init__(self, factor: float, direct: AbstractSet[str]):
        self.factor = factor
        self.direct = direct
        self._middles: dict[tuple[object, ...], tuple[object, str]] = {}
        self._texts: dict[tuple[object, ...], tuple[str, str, str]] = {}
        self._costs: dict[tuple[float, float], str] = {}
        self._last: tuple[object, object, object, object, str] | None = None

    def _middle(self, job: Job) -> str:
        """``, "model": ...`` to ``, "prompt": ``, before the prompt's text."""
        last = self._last
        if (
            last is not None
            and type(job) is ApiJob
            and job.params is last[0]
            and job.model is last[1]
            and job.size is last[2]
            and job.requested_size is last[3]
        ):
            # The same objects as the last API job's (the jobs of one shape share them):
            # the same text, and its format is its parameters'.
            return last[4]
        text = self._middle_of(job)
        if type(job) is ApiJob:
            self._last = (job.params, job.model, job.size, job.requested_size, text)
        return text

    def _middle_of(self, job: Job) -> str:
        """:meth:`_middle`, by the values of the fields it writes."""
        is_api = job.is_api
        params = job.params if is_api else None
        sheet = isinstance(job, SheetJob)
        model = None if isinstance(job, SheetJob) else job.model
        requested = job.requested_size if is_api else None
        key = (type(job), model, job.size, requested, id(params), job.format)
        known = self._middles.get(key)
        if known is not None and known[0] is params:
            return known[1]
        if params is not None and requested is not None:
            quality = _value(params.get("quality"))
            background = _value(params.get("background"))
            params_text = json.dumps(dict(params), ensure_ascii=False)
            requested_text = _value(f"{requested[0]}x{requested[1]}")
        else:
            quality = background = params_text = requested_text = "null"
        text = "".join(
            (
                ', "model": ',
                '"-"' if sheet else _value(model),
                ', "size": ',
                '"packed"' if sheet else _value(f"{job.size[0]}x{job.size[1]}"),
                ', "requested_size": ',
                requested_text,
                ', "quality": ',
                quality,
                ', "background": ',
                background,
                ', "params": ',
                params_text,
                ', "format": ',
                _value(job.format),
                ', "prompt": ',
            )
        )
        self._middles[key] = (params, text)  # the mapping held, so its id is not reused
        return text

    def line(self, job: Job, state: JobState | None) -> str:
        if type(job.variant) is not int:  # nothing assetpipe makes: json says it its way
            return json.dumps(job_json(job, state, self.factor, self.direct), ensure_ascii=False)
        depends = job.depends_on
        status: str | None
        reason: str | None
        if state is not None:
            status, reason, key = state.status, state.reason, state.cache_key
            checks = [dict(c) for c in state.checks] if state.checks else None
            approval = state.approval
        else:
            status = reason = approval = None
            key, checks = job.cache_key, None
        factor = self.factor
        if factor != 1.0:
            factor = route_factor(job, factor, self.direct)
        estimate = job.estimated_cost_usd
        costs = self._costs
        # The estimates of a shape's jobs are few: each one's text is written once
        # (a float's only, and never of a zero, whose sign the key would not keep).
        memo = estimate.__class__ is float and estimate != 0.0 and factor != 0.0
        cost = costs.get((estimate, factor)) if memo else None
        if cost is None:
            cost = _value(round(estimate * factor, 6))
            if memo:
                costs[(estimate, factor)] = cost
        kind, collection, source = job.kind, job.collection, job.source
        # Values most jobs share are written once: (kind, collection), (status, reason),
        # (source, approval) when there are no checks; all three in one lookup.
        texts = self._texts
        shared = (kind, collection, status, reason, source, approval)
        known = texts.get(shared) if checks is None else None
        if known is not None:
            head, said, tail = known
        else:
            head = "".join((', "kind": ', _value(kind), ', "collection": ', _value(collection)))
            said = "".join((', "status": ', _value(status), ', "reason": ', _value(reason)))
            if checks is None:
                tail = "".join(
                    (
                        ', "source": ',
                        _value(source),
                        ', "checks": null, "approval": ',
                        _value(approval),
                        "}",
                    )
                )
                texts[shared] = (head, said, tail)
            else:
                tail = "".join(
                    (
                        ', "source": ',
                        _value(source),
                        ', "checks": ',
                        json.dumps(checks, ensure_ascii=False),
                        ', "approval": ',
                        _value(approval),
                        "}",
                    )
                )
        # Text fields are nearly always ``str``: written by json's own C function
        # directly; anything else through :func:`_value`, as before.
        enc = _encode_text
        job_id, asset, output = job.id, job.asset, job.output_path
        if isinstance(job, SheetJob):
            prompt = '""'
        else:
            prompt = job.prompt
            prompt = enc(prompt) if prompt.__class__ is str else _value(prompt)
        return _LINE % (
            enc(job_id) if job_id.__class__ is str else _value(job_id),
            head,
            enc(asset) if asset.__class__ is str else _value(asset),
            int.__repr__(job.variant),
            self._middle(job),
            prompt,
            "[]" if not depends else json.dumps(list(depends), ensure_ascii=False),
            said,
            enc(key) if key.__class__ is str else _value(key),
            cost,
            enc(output) if output.__class__ is str else _value(output),
            tail,
        )


_LINE = (
    '{"id": %s%s, "asset": %s, "variant": %s%s%s, "depends_on": %s%s, "cache_key": %s, '
    '"estimated_cost_usd": %s, "output": %s%s'
)
"""A job's line with ``%s`` for each text :meth:`_JobLines.line` writes (all made
before, so ``%`` puts each in as it is)."""


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
