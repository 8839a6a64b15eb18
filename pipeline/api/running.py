"""Running a plan: folders, locks, provider, store, dispatcher, runner, manifest, exports.

The composition root of a build that has work to do: the one place that picks concrete
implementations for the runner (the provider from the registry, the store from
:mod:`~pipeline.api.stores`, the direct dispatcher, the catalog's pricing). A new store
or dispatcher is chosen here and nowhere else. Before the runner starts, the cache and
output folders are checked (no links, writable) and locked: the project lock
(``.assetpipe/build.lock``) and the output lock (``output/.assetpipe.lock``), so two
builds sharing either folder never interleave their writes. It is imported only when a
build runs (:func:`pipeline.api.building.run_workspace`): a build with nothing to do
never loads the runner, the exporters' work (the gallery) or a provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from pipeline.api import stamps
from pipeline.api.buildlock import project_lock
from pipeline.api.exports import build_exports, owned_files, prepare_exports
from pipeline.api.qa import QaResult, run_qa
from pipeline.api.results import BuildOptions, BuildResult, exit_code
from pipeline.api.routes import batch_route, direct_route
from pipeline.api.sealing import user_sealer
from pipeline.api.stores import build_store, shared_cache_problem, stop_paying_when_lost
from pipeline.catalog import Catalog
from pipeline.checks import flag_near_duplicates
from pipeline.collecting import settle
from pipeline.errors import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_USAGE,
    UsageError,
)
from pipeline.exports import reserved_paths
from pipeline.fsutil import check_folder, make_folders, probe_writable, remove_folders
from pipeline.jobs import Plan, Provider
from pipeline.jobs.judging import Judge
from pipeline.output import (
    MANIFEST,
    ManifestEntry,
    OutputTree,
    load_manifest,
    next_entries,
    totals,
    write_manifest,
)
from pipeline.output.update import CheckpointPace
from pipeline.providers import registry
from pipeline.runner.deps import Reporter, RunConfig, RunDeps, StopSignal
from pipeline.runner.engine import Runner
from pipeline.runner.freshness import assess
from pipeline.runner.outcome import Outcome, RunReport
from pipeline.settings import Settings
from pipeline.spec.models import Expect
from pipeline.store import LocalStore


@contextlib.contextmanager
def build_folders(settings: Settings, cache: LocalStore, tree: OutputTree) -> Iterator[None]:
    """Check, create and lock the cache and output folders, then make sure both can be
    written, all before the first paid call; on a failure here nothing is left behind."""
    cache_dir, output_dir = settings.cache_dir, tree.root
    check_folder(cache_dir, "cache folder", "--cache-dir")
    check_folder(output_dir, "output folder", "--output")
    created: list[Path] = []
    ready = False
    try:
        created += make_folders(cache_dir)
        with project_lock(cache_dir):
            created += make_folders(output_dir)
            with tree.lock():
                probe_writable(output_dir, "output folder", "--output")
                created += make_folders(cache.blob_dir)
                cache.prepare()
                ready = True
                yield
    except OSError as exc:
        if ready:
            raise
        raise UsageError(
            f"cannot prepare the build's folders: {exc.strerror or exc}: "
            f"{exc.filename or cache_dir}; check --cache-dir and --output"
        ) from None
    finally:
        if not ready:
            remove_folders(created)


def run_build(
    settings: Settings,
    catalog: Catalog,
    plan: Plan,
    full_plan: Plan,
    options: BuildOptions,
    reporter: Reporter,
    provider: Provider | None = None,
    plan_digest: str | None = None,
    keep_plan: Callable[[], None] | None = None,
    expected: Mapping[tuple[str, str], Expect] | None = None,
    judge: Judge | None = None,
) -> BuildResult:
    """Build ``plan`` (a selection of ``full_plan``) under the project lock; with
    ``plan_digest`` (a stored plan), stamp a build that finds every job up to date.
    ``keep_plan`` stores the plan once the build holds its folders; ``expected`` (each
    asset's ``expect``) is what the quality gate checks when it is on."""
    tree = OutputTree(settings.output_dir)
    produced = {job.output_path for job in full_plan.jobs}
    with (
        build_store(settings, force=options.force) as (cache, store),
        build_folders(settings, cache, tree),
    ):
        stamps.forget(settings.cache_dir)
        shared_problem = shared_cache_problem(store)
        if keep_plan is not None:
            keep_plan()
        manifest = load_manifest(tree.root)

        paced = CheckpointPace()

        def checkpoint(outcomes: Mapping[str, Outcome]) -> None:
            if not paced.due():
                return
            with paced.timed():
                built = (o.entry() for o in outcomes.values())
                entries, _ = next_entries(produced, built, manifest, tree, False)
                write_manifest(tree.root, entries, totals(entries, None))

        stop = StopSignal()
        lost = stop_paying_when_lost(settings, store, stop.set)
        route = (
            batch_route(settings, catalog, store, stop, reporter, wait=options.wait)
            if options.batch
            else direct_route(settings, catalog, stop, reporter, provider)
        )
        signing = settings.signing.fingerprint if settings.signing is not None else None
        states = assess(
            plan, manifest, store, tree, route.pending, signing, fetch=not options.force
        )
        pays = any(s.status == "generate" for s in states.values())
        if route.prepare is not None and pays:
            route.prepare()  # this build pays: the SDK is loaded before its clock starts
        deps = RunDeps(
            store=store,
            dispatcher=route.dispatcher,
            pricing=route.pricing,
            pending=route.pending,
            output=tree,
            project_root=settings.root,
            manifest=manifest,
            reporter=reporter,
            stop=stop,
            on_checkpoint=checkpoint,
            memo=cache.memo,
            forget=cache.forget if store is cache else None,
        )
        config = RunConfig(
            concurrency=settings.concurrency,
            max_cost=settings.max_cost,
            fail_fast=options.fail_fast,
            force=options.force,
            embed_metadata=settings.embed_metadata,
            placeholders=settings.provider_entry.free,
            signing=settings.signing,
        )
        runner = Runner(plan, states, deps, config)
        settle()  # what the build started with lives on; its requests make garbage
        if options.force or any(s.status != "up-to-date" for s in states.values()):
            prepare_exports(settings.exports)  # work to do: while requests or downloads are out
        report = asyncio.run(_run(runner))
        built = [o.entry() for o in report.outcomes.values()]
        keep = reserved_paths(settings.exports)
        entries, pruned = next_entries(produced, built, manifest, tree, options.prune, keep)
        free = {name for name, entry in registry.providers().items() if entry.free}
        entries = flag_near_duplicates(entries, placeholders=free)
        gate = run_qa(
            settings,
            cache.memo,
            tree,
            entries,
            set(report.outcomes),
            expected or {},
            report.spent_usd,
            judge,
            batch=options.batch,
            wait=options.wait,
            note=reporter.note,
        )
        entries = gate.entries
        write_manifest(tree.root, entries, totals(entries, report.spent_usd + gate.cost_usd))
        exported = build_exports(settings, tree, entries, full_plan, plan_digest)
        failed_checks = [
            (e.job, e.status, c)
            for e in entries
            if e.job in report.outcomes
            for c in e.failed_checks()
        ]
        if plan_digest and _changed_nothing(report, pruned) and not failed_checks:
            stamps.record(
                settings.cache_dir,
                plan_digest,
                tree,
                [*_owned(entries, report), *owned_files(exported)],
                user_sealer(),
                exports=stamps.stamp_inputs(settings),
                whole_plan=_whole(plan, full_plan),
            )
    return BuildResult(
        report=report,
        pruned=tuple(pruned),
        manifest_path=tree.root / MANIFEST,
        exit_code=_exit_code(report, gate, options.strict_checks and bool(failed_checks), lost),
        failed_checks=tuple(failed_checks),
        shared_cache=settings.remote_cache,
        shared_cache_problem=shared_problem,
    )


def _exit_code(report: RunReport, gate: QaResult, strict_failed: bool, lost: list[str]) -> int:
    """The build's exit code: the run's, then a required shared cache lost on the way
    (2, as when it cannot be read at the start), the quality gate's budget and pending
    verdicts, and checks that failed under ``--strict-checks``."""
    code = exit_code(report)
    if lost and code in (EXIT_OK, EXIT_FAILED):
        return EXIT_USAGE
    if code in (EXIT_OK, EXIT_FAILED) and gate.budget_hit:
        return EXIT_BUDGET
    if code == EXIT_OK and gate.pending:
        return EXIT_PENDING  # verdicts wait in a judge batch: build --batch collects them
    if code == EXIT_OK and strict_failed:
        return EXIT_FAILED
    return code


async def _run(runner: Runner) -> RunReport:
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, runner.interrupt)
            handled.append(sig)
    try:
        return await runner.run()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.deps.dispatcher.aclose()


def _whole(plan: Plan, full_plan: Plan) -> Plan | None:
    """``plan`` when it is the whole plan (nothing was selected; it is a selection of it):
    then the stamp lets the next build answer before the plan is decoded."""
    return plan if len(plan.jobs) == len(full_plan.jobs) else None


def _changed_nothing(report: RunReport, pruned: Sequence[str]) -> bool:
    """Whether every job was up to date and nothing was pruned: the manifest then already
    says so (its statuses are this build's), and the next build of the same plan would
    write it again byte for byte, so it may answer from the stamp instead."""
    return (
        not report.interrupted
        and not pruned
        and all(o.status == "up-to-date" for o in report.outcomes.values())
    )


def _owned(entries: Iterable[ManifestEntry], report: RunReport) -> Iterator[str]:
    """The files the built jobs own: each one's file and its companions."""
    for entry in entries:
        if entry.job in report.outcomes:
            yield entry.path
            yield from (c.path for c in entry.companions or ())
