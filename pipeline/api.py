"""The composition root: settings in, loaded project, plan, build and check out.

Every command of the CLI is one call here. This is the only module (with ``settings``)
that reads settings and the environment, and the only one that picks concrete
implementations — a provider, the cache, the clock — to hand to the runner.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import stat
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipeline.build import BuildOptions, BuildResult, run_build
from pipeline.catalog import Catalog, load_catalog
from pipeline.errors import UsageError
from pipeline.hashing import sha256_bytes
from pipeline.jobs import Job, Plan, Provider, select
from pipeline.output import load_manifest
from pipeline.planner import FileFacts, PlanOptions, plan
from pipeline.postprocess import DECODE_FORMATS
from pipeline.runner.engine import Reporter
from pipeline.runner.freshness import JobState, assess
from pipeline.settings import Settings, resolve_settings
from pipeline.spec.loader import Project, collection_name, load_project, select_files
from pipeline.store import CacheStats, LocalStore
from pipeline.templating import TemplateEngine

MAX_INPUT_FILE_BYTES = 50 * 1000 * 1000


@dataclass(frozen=True, slots=True)
class Request:
    """What a command was asked: the project folder, spec paths, flags and selections."""

    project: Path = Path()
    paths: Sequence[Path] = ()
    flags: Mapping[str, Any] | None = None
    only: Sequence[str] = ()
    today: dt.date | None = None


@dataclass(frozen=True, slots=True)
class Workspace:
    """A loaded project and the plan of the selected jobs."""

    settings: Settings
    catalog: Catalog
    project: Project
    plan: Plan
    full_plan: Plan


def read_image_facts(path: Path) -> FileFacts:
    """Hash and measure an input image without decoding its pixels.

    Refuses what would hang or swamp a validate: a FIFO or device (its read never ends),
    a file over the API's 50 MB, and a header claiming more pixels than Pillow's
    decompression-bomb limit (Pillow raises its own error type for those, and only
    warns between one and two times the limit).
    """
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("it is not a regular file")
    size = info.st_size
    if size > MAX_INPUT_FILE_BYTES:
        raise ValueError(f"it is {size:,} bytes; edit inputs must be under 50 MB")
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=DECODE_FORMATS) as image:
                fmt = (image.format or "").lower()
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(
            f"its header claims more than {Image.MAX_IMAGE_PIXELS or 0:,} pixels"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ValueError("it is not an image Pillow can read") from None
    return FileFacts(
        sha256=sha256_bytes(data),
        width=width,
        height=height,
        format="jpeg" if fmt == "jpg" else fmt,
        bytes=size,
    )


TODAY_VARIABLE = "ASSETPIPE_TODAY"


def lifecycle_date(environ: Mapping[str, str] | None = None) -> dt.date:
    """The date model lifecycles are judged on: ``ASSETPIPE_TODAY`` (YYYY-MM-DD) or today.

    Pinning it makes a CI run reproducible across a model's shutdown date, and lets a team
    ask ahead of time whether its specs still plan after an announced shutdown.
    """
    text = (os.environ if environ is None else environ).get(TODAY_VARIABLE, "").strip()
    if not text:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{TODAY_VARIABLE}={text!r} is not a date; write it as YYYY-MM-DD (e.g. 2026-12-01)"
        ) from None


def open_workspace(req: Request) -> Workspace:
    """Load settings and specs and plan them (no network, no writes)."""
    base = load_catalog()
    settings = resolve_settings(req.project, dict(req.flags or {}), catalog=base)
    catalog = settings.catalog(base)
    if not settings.specs_dir.is_dir():
        raise UsageError(
            f"no specs folder at {settings.specs_dir}; create it with a spec, or point "
            "--project at your project folder"
        )
    files = select_files(list(req.paths), settings.specs_dir) if req.paths else None
    project = load_project(settings.root, settings.specs_dir)
    engine = TemplateEngine(
        settings.templates_dir if settings.templates_dir.is_dir() else None,
        display_dir=settings.templates_dir.name,
    )
    options = PlanOptions(
        catalog=catalog,
        provider=settings.provider,
        model=settings.model,
        today=req.today or lifecycle_date(),
        max_jobs=settings.max_jobs,
    )
    full = plan(project, engine, options, read_image_facts)
    collections = (
        {collection_name(f, settings.specs_dir) for f in files} if files is not None else None
    )
    selected = select(full, req.only, collections)
    if req.only and not selected.jobs:
        raise UsageError(
            f"--only {' '.join(req.only)} matches no job; `assetpipe plan` lists the job ids"
        )
    return Workspace(
        settings=settings, catalog=catalog, project=project, plan=selected, full_plan=full
    )


def job_states(ws: Workspace) -> dict[str, JobState]:
    """Each selected job's state against the output manifest and the cache."""
    manifest = load_manifest(ws.settings.output_dir)
    cache_dir = ws.settings.cache_dir / "cache"
    if cache_dir.exists():
        with LocalStore(cache_dir) as cache:
            return assess(ws.plan, manifest, cache, ws.settings.output_dir)
    return assess(ws.plan, manifest, None, ws.settings.output_dir)


def job_json(job: Job, state: JobState | None) -> dict[str, Any]:
    """One job as ``plan --json`` prints it (DESIGN section 9)."""
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
        "format": job.format,
        "prompt": "" if job.kind == "sheet" else job.prompt,
        "depends_on": list(job.depends_on),
        "status": state.status if state else None,
        "reason": state.reason if state else None,
        "cache_key": state.cache_key if state else job.cache_key,
        "estimated_cost_usd": round(job.estimated_cost_usd, 6),
        "output": job.output_path,
        "source": job.source,
        "checks": [dict(c) for c in state.checks] if state and state.checks else None,
    }


def plan_totals(plan_: Plan, states: Mapping[str, JobState]) -> dict[str, Any]:
    """Counts by status and kind, and the estimated cost of what a build would pay for."""
    by_status: dict[str, int] = {}
    for state in states.values():
        by_status[state.status] = by_status.get(state.status, 0) + 1
    to_pay = sum(
        j.estimated_cost_usd for j in plan_.jobs if j.is_api and states[j.id].status == "generate"
    )
    return {
        "jobs": len(plan_.jobs),
        "api_jobs": sum(1 for j in plan_.jobs if j.is_api),
        "renditions": sum(1 for j in plan_.jobs if not j.is_api),
        "by_status": by_status,
        "estimated_cost_usd": round(to_pay, 6),
        "estimated_cost_all_usd": round(plan_.estimated_cost_usd, 6),
    }


def plan_document(ws: Workspace, states: Mapping[str, JobState]) -> str:
    """``plan --json`` as text."""
    doc = {
        "jobs": [job_json(j, states.get(j.id)) for j in ws.plan.jobs],
        "totals": {**plan_totals(ws.plan, states), "provider": ws.settings.provider},
        "warnings": [str(w) for w in ws.plan.warnings],
    }
    return json.dumps(doc, ensure_ascii=False, indent=1)


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


def build(
    req: Request, options: BuildOptions, reporter: Reporter, provider: Provider | None = None
) -> BuildResult:
    """Plan, then run the plan (``provider`` overrides the settings' one, for tests)."""
    return run_workspace(open_workspace(req), options, reporter, provider)


def run_workspace(
    ws: Workspace, options: BuildOptions, reporter: Reporter, provider: Provider | None = None
) -> BuildResult:
    """Run an already planned workspace."""
    return run_build(ws.settings, ws.catalog, ws.plan, ws.full_plan, options, reporter, provider)


def build_summary(result: BuildResult) -> dict[str, Any]:
    """``build --json``: counts, spend, time, failures and the exit code."""
    report = result.report
    return {
        "exit_code": result.exit_code,
        "counts": result.counts(),
        "spent_usd": round(report.spent_usd, 6),
        "elapsed_s": round(report.elapsed_s, 3),
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
    }


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a build would change: job ids by status (empty when all is up to date)."""

    pending: Mapping[str, str]
    total: int


def check(req: Request) -> CheckResult:
    """Whether a build would change anything (no network, no writes)."""
    ws = open_workspace(req)
    states = job_states(ws)
    pending = {jid: s.status for jid, s in states.items() if s.status != "up-to-date"}
    return CheckResult(pending=pending, total=len(states))


def cache_folder(req: Request) -> Path:
    """Where the project's result cache lives."""
    settings = resolve_settings(req.project, dict(req.flags or {}))
    return settings.cache_dir / "cache"


def cache_stats(req: Request) -> CacheStats:
    """Entries, blobs and bytes in the cache."""
    folder = cache_folder(req)
    if not folder.exists():
        return CacheStats(entries=0, blobs=0, bytes=0)
    with LocalStore(folder) as cache:
        return cache.stats()


def cache_gc(req: Request) -> tuple[int, int]:
    """Drop broken entries and unreferenced blobs."""
    folder = cache_folder(req)
    if not folder.exists():
        return (0, 0)
    with LocalStore(folder) as cache:
        return cache.gc()


def cache_clear(req: Request) -> None:
    """Delete the whole cache (paid results too: the next build pays again)."""
    LocalStore(cache_folder(req)).clear()
