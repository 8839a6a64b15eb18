"""A build's entry points, and the answer "nothing to do".

A build first asks whether there is anything to do: when the last build of this very
plan left every file as it still is (:mod:`~pipeline.api.stamps`), it says so at once.
Otherwise :mod:`~pipeline.api.running` (the runner, the exporters, a provider: most of
assetpipe) is loaded and runs the plan. An up-to-date build of 10,000 jobs then costs
little more than starting Python. The options, the result and the exit code both halves
share are in :mod:`~pipeline.api.results`; only this module imports the other half.

A build of the whole project asks even earlier (:func:`answer_unchanged`), before the
stored plan is decoded: 100,000 jobs take seconds to decode, more than the whole answer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pipeline.api import stamps
from pipeline.api.buildlock import project_lock
from pipeline.api.plancache import mark_used, stored_digest
from pipeline.api.results import BuildOptions, BuildResult
from pipeline.api.sealing import user_sealer
from pipeline.api.workspace import (
    Request,
    Workspace,
    lifecycle_date,
    open_workspace,
    selection_digest,
    stored_plan_lookup,
)
from pipeline.errors import EXIT_OK, UsageError, printable
from pipeline.fsutil import check_folder
from pipeline.jobs import PlanWarning, Provider
from pipeline.jobs.judging import Judge
from pipeline.output import MANIFEST, OutputTree, load_manifest
from pipeline.providers import registry
from pipeline.runner.outcome import Outcome, RunReport
from pipeline.settings import Settings, resolve_settings

if TYPE_CHECKING:
    from pipeline.runner.deps import Reporter

log = logging.getLogger("assetpipe.build")


def build(
    req: Request,
    options: BuildOptions,
    reporter: Reporter,
    provider: Provider | None = None,
    judge: Judge | None = None,
) -> BuildResult:
    """Plan, then run the plan (``provider`` and ``judge`` override the settings' ones,
    for tests)."""
    ws = open_workspace(req, reuse=True, store_plan=True)
    return run_workspace(ws, options, reporter, provider, judge)


def run_workspace(
    ws: Workspace,
    options: BuildOptions,
    reporter: Reporter,
    provider: Provider | None = None,
    judge: Judge | None = None,
) -> BuildResult:
    """Run an already planned workspace; when the last build of this very plan left every
    file as it still is (:mod:`~pipeline.api.stamps`), say so without running anything."""
    if ws.settings.provider_is_default and ws.settings.provider_entry.free:
        _refuse_placeholders_over_real_images(ws)
    plain = not (options.force or options.prune or options.batch)
    if ws.plan_digest and plain:
        unchanged = _unchanged(ws, ws.plan_digest, reporter)
        if unchanged is not None:
            return unchanged
    result = _run_planned(ws, options, reporter, provider, judge)
    qa = ws.settings.qa
    if qa is None or not qa.rerolls or options.batch:
        return result
    from pipeline.api.rerolling_qa import reroll_failing  # noqa: PLC0415 - only with rerolls

    again = replace(options, force=False)  # a reroll pays for its new variant, nothing else
    return reroll_failing(
        ws, result, lambda planned: _run_planned(planned, again, reporter, provider, judge)
    )


def _run_planned(
    ws: Workspace,
    options: BuildOptions,
    reporter: Reporter,
    provider: Provider | None,
    judge: Judge | None,
) -> BuildResult:
    """Run the workspace's plan (the runner, then the quality gate and the exporters)."""
    from pipeline.api.qa import expectations  # noqa: PLC0415 - only a build with work
    from pipeline.api.running import run_build  # noqa: PLC0415 - only a build with work

    return run_build(
        ws.settings,
        ws.catalog,
        ws.plan,
        ws.full_plan,
        options,
        reporter,
        provider,
        plan_digest=ws.plan_digest,
        keep_plan=ws.stored_plan.keep if ws.stored_plan else None,
        expected=expectations(ws) if ws.settings.qa is not None else None,
        judge=judge,
    )


def _refuse_placeholders_over_real_images(ws: Workspace) -> None:
    """Stop a build that fell back to placeholders (no provider named, no key found) when
    ``output/`` holds real images this plan would replace: a CI secret that did not
    arrive must not ship a tree of placeholders. Naming ``preview`` builds them anyway."""
    paths = {job.output_path for job in ws.plan.jobs}
    manifest = load_manifest(ws.settings.output_dir)
    real = sorted(
        (entry.path, entry.provider)
        for entry in manifest.entries.values()
        if entry.path in paths and entry.provider and not _draws_placeholders(entry.provider)
    )
    if not real:
        return
    path, made_by = real[0]
    raise UsageError(
        f"output/ holds {len(real)} image(s) made by {printable(made_by)} (e.g. "
        f"{printable(path)}), and with no API key set this build would replace them with "
        "preview placeholders; nothing was written. Set OPENAI_API_KEY (or name the "
        "provider whose key is set), or pass --provider preview to draw placeholders on "
        "purpose"
    )


def _draws_placeholders(name: str) -> bool:
    entry = registry.get(name)
    return entry is not None and entry.free


@dataclass(frozen=True, slots=True)
class AllUpToDate(BuildResult):
    """A build answered from the last build's stamp before its plan was decoded: it
    counts its jobs, which are all up to date, without an outcome object for each."""

    up_to_date: int = 0

    def counts(self) -> dict[str, int]:
        return {"up-to-date": self.up_to_date} if self.up_to_date else {}


@dataclass(frozen=True, slots=True)
class NothingToDo:
    """What :func:`answer_unchanged` found: the settings (the command prints their pacing
    note), how many jobs the whole plan has, all up to date, and the plan's warnings (a
    build prints them every time)."""

    settings: Settings
    jobs: int
    warnings: tuple[PlanWarning, ...]
    elapsed_s: float

    def result(self, reporter: Reporter) -> AllUpToDate:
        """The build's result, said to ``reporter`` as a build with nothing to do says it."""
        reporter.started(self.jobs, self.jobs)
        report = RunReport(
            outcomes={},
            stop_reason=None,
            budget_hit=False,
            interrupted=False,
            spent_usd=0.0,
            elapsed_s=self.elapsed_s,
        )
        return AllUpToDate(
            report=report,
            pruned=(),
            manifest_path=self.settings.output_dir / MANIFEST,
            exit_code=EXIT_OK,
            up_to_date=self.jobs,
        )


def answer_unchanged(req: Request, options: BuildOptions) -> NothingToDo | None:
    """Whether a build of the whole project has nothing to do, found before its plan is
    decoded (a stored plan of 100,000 jobs takes seconds to decode; this takes its
    sha256): the stored plan this build would reuse, checked as it would be (this user's
    MAC, every file it was made from unchanged), is the one the last build built whole
    and stamped, and the stamp finds every file as it left them
    (:func:`stamps.whole_plan_unchanged`). None when that is not certain, or when the
    build asks for more than the whole plan as it is: a selection (the stamp lists the
    whole plan), ``--force``/``--prune``/``--batch``, or the fallback to placeholders,
    which first looks at what ``output/`` holds. The build then runs as always."""
    plain = not (options.force or options.prune or options.batch)
    if not plain or req.paths or req.only or req.shard is not None or not req.picks:
        return None
    settings = resolve_settings(req.project, dict(req.flags or {}), credentials=True)
    if settings.provider_is_default and settings.provider_entry.free:
        return None
    tree = OutputTree(settings.output_dir)
    if not (
        settings.specs_dir.is_dir()
        and (settings.cache_dir / stamps.STAMP_FILE).is_file()
        and tree.root.is_dir()
    ):
        return None
    started = time.monotonic()
    check_folder(settings.cache_dir, "cache folder", "--cache-dir")  # as a build would
    check_folder(tree.root, "output folder", "--output")
    context, folders, list_specs = stored_plan_lookup(
        settings, req.today or lifecycle_date(), picks=req.picks
    )
    sealer = user_sealer()
    with project_lock(settings.cache_dir), tree.lock():
        stored = stored_digest(settings.cache_dir, context, folders, list_specs, sealer)
        if stored is None:
            return None
        digest, path = stored
        exports = stamps.stamp_inputs(settings)
        whole = stamps.whole_plan_unchanged(
            settings.cache_dir, digest, tree, sealer, selection_digest, exports=exports
        )
        if whole is None:
            return None
        mark_used(path)  # the most recently used plan is kept longest
    return NothingToDo(settings, whole.jobs, whole.warnings, time.monotonic() - started)


def _unchanged(ws: Workspace, digest: str, reporter: Reporter) -> BuildResult | None:
    """The result of a build with nothing to do, or None when that is not certain."""
    settings, tree = ws.settings, OutputTree(ws.settings.output_dir)
    if not (settings.cache_dir / stamps.STAMP_FILE).is_file():
        return None
    if not tree.root.is_dir():  # output/ deleted: a build restores it from the cache
        return None
    started = time.monotonic()
    check_folder(settings.cache_dir, "cache folder", "--cache-dir")  # as a build would
    check_folder(tree.root, "output folder", "--output")
    with project_lock(settings.cache_dir), tree.lock():
        exports = stamps.stamp_inputs(settings)
        if (
            stamps.unchanged_since(settings.cache_dir, digest, tree, user_sealer(), exports=exports)
            is None
        ):
            return None
        if ws.stored_plan is not None:
            ws.stored_plan.keep()  # the most recently used plan is kept longest
    jobs = ws.plan.jobs
    reporter.started(len(jobs), len(jobs))
    outcomes = {job.id: Outcome(job, "up-to-date") for job in jobs}
    report = RunReport(
        outcomes=outcomes,
        stop_reason=None,
        budget_hit=False,
        interrupted=False,
        spent_usd=0.0,
        elapsed_s=time.monotonic() - started,
    )
    return BuildResult(
        report=report, pruned=(), manifest_path=tree.root / MANIFEST, exit_code=EXIT_OK
    )
