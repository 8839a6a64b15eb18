"""Wiring one build: folders, locks, provider, cache, limiter, runner, manifest and prune.

Part of the composition root (``api`` calls it): the one place that picks concrete
implementations for the runner and decides the exit code of a build. Before the runner
starts, the cache and output folders are checked (no links, writable) and locked: the
project lock (``.assetpipe/build.lock``) and the output lock (``output/.assetpipe.lock``),
so two builds sharing either folder never interleave their writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.catalog import Catalog
from pipeline.checks import near_duplicates
from pipeline.errors import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
)
from pipeline.fsutil import (
    UnsafePathError,
    check_folder,
    contained,
    held_lock,
    make_folders,
    probe_writable,
    remove_folders,
)
from pipeline.gallery import INDEX as GALLERY
from pipeline.gallery import THUMB_DIR, write_gallery
from pipeline.jobs import Plan, Provider
from pipeline.output import (
    MANIFEST,
    OUTPUT_LOCK,
    Manifest,
    file_matches,
    load_manifest,
    write_manifest,
)
from pipeline.providers.registry import ProviderOptions
from pipeline.runner.budget import CatalogPricing
from pipeline.runner.deps import Reporter, RunDeps, StopSignal
from pipeline.runner.dispatch import DirectDispatcher
from pipeline.runner.engine import RunConfig, Runner, RunReport
from pipeline.runner.freshness import assess
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.outcome import Outcome
from pipeline.runner.retry import RetryPolicy
from pipeline.settings import Settings
from pipeline.store import LocalStore

log = logging.getLogger("assetpipe.build")

LOCK_FILE = "build.lock"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Switches of ``assetpipe build``."""

    force: bool = False
    fail_fast: bool = False
    prune: bool = False
    strict_checks: bool = False


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build did and the exit code it deserves."""

    report: RunReport
    pruned: tuple[str, ...]
    manifest_path: Path
    exit_code: int
    failed_checks: tuple[tuple[str, str, Mapping[str, Any]], ...] = ()
    """(job id, status, check) of every failed check of the built jobs."""

    def counts(self) -> dict[str, int]:
        """Jobs by final status."""
        out: dict[str, int] = {}
        for outcome in self.report.outcomes.values():
            out[outcome.status] = out.get(outcome.status, 0) + 1
        return out


@contextlib.contextmanager
def project_lock(cache_dir: Path) -> Iterator[None]:
    """Hold the project's build lock, or fail at once with a clear message."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with held_lock(
        cache_dir / LOCK_FILE,
        "the build lock",
        lambda holder: (
            f"another assetpipe build is running in this project (pid {holder}); "
            "wait for it to finish, then build again"
        ),
    ):
        yield


@contextlib.contextmanager
def output_lock(output_dir: Path) -> Iterator[None]:
    """Hold the output folder's lock: builds of two projects (or two cache folders) never
    write one output tree and its manifest at the same time."""
    with held_lock(
        output_dir / OUTPUT_LOCK,
        "the output lock",
        lambda holder: (
            f"another assetpipe build (pid {holder}) is writing to the output folder "
            f"{output_dir}; wait for it to finish, or give this build its own --output"
        ),
    ):
        yield


@contextlib.contextmanager
def build_folders(settings: Settings, cache: LocalStore) -> Iterator[None]:
    """Check, create and lock the cache and output folders, then make sure both can be
    written, all before the first paid call; on a failure here nothing is left behind."""
    cache_dir, output_dir = settings.cache_dir, settings.output_dir
    check_folder(cache_dir, "cache folder", "--cache-dir")
    check_folder(output_dir, "output folder", "--output")
    created: list[Path] = []
    ready = False
    try:
        created += make_folders(cache_dir)
        with project_lock(cache_dir):
            created += make_folders(output_dir)
            with output_lock(output_dir):
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


def make_provider(settings: Settings) -> Provider:
    """The provider the settings ask for, built by its registry entry."""
    return settings.provider_entry.factory(ProviderOptions(timeout=settings.timeout))


def manifest_entries(
    full_plan: Plan,
    outcomes: Mapping[str, Outcome],
    previous: Manifest,
    output_dir: Path,
    prune: bool,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The next manifest: this build's outcomes, the earlier entries of jobs not run now,
    and (unless pruned) entries of files no job produces any more, marked stale."""
    entries: dict[str, dict[str, Any]] = {}
    produced = {job.output_path for job in full_plan.jobs}
    for path, entry in previous.entries.items():
        if path in produced:
            entries[path] = dict(entry)
    for outcome in outcomes.values():
        entries[outcome.job.output_path] = outcome.entry()
    pruned: list[str] = []
    for path, entry in previous.entries.items():
        if path in produced:
            continue
        if prune and entry.get("sha256"):
            if _removable(output_dir, path) and file_matches(output_dir, entry):
                pruned.extend(prune_entry(output_dir, path, entry))
                continue
            log.warning("not pruning %s: it changed since assetpipe wrote it", path)
        if not prune:
            entries[path] = {**entry, "stale": True}
    return list(entries.values()), pruned


def prune_entry(output_dir: Path, path: str, entry: Mapping[str, Any]) -> list[str]:
    """Delete the file of a manifest entry that :func:`file_matches`, with its companions
    and kept original; returns what was deleted.

    The manifest can be edited by hand, so each path is contained in the output folder
    first and must name a regular file; a kept original must also sit beside the file, as
    ``<stem>.original.<ext>``. Anything else is skipped with a warning.
    """
    companions = entry.get("companions") or ()
    targets = [
        c["path"] for c in companions if isinstance(c, dict) and isinstance(c.get("path"), str)
    ]
    provenance = entry.get("provenance")
    kept = provenance.get("original_path") if isinstance(provenance, dict) else None
    if kept is not None:
        if isinstance(kept, str) and kept.startswith(path.rsplit(".", 1)[0] + ".original."):
            targets.append(kept)
        else:
            log.warning("not pruning %r: it is not the kept original of %s", kept, path)
    targets.append(path)
    removed = []
    for rel in targets:
        if not _removable(output_dir, rel):
            continue
        target = contained(output_dir, rel)
        try:
            if stat.S_ISREG(target.lstat().st_mode):
                target.unlink()
                removed.append(rel)
        except (FileNotFoundError, ValueError):  # (ValueError: a NUL in a hand-edited path)
            continue
    return removed


def _removable(output_dir: Path, rel: str) -> bool:
    """Whether ``--prune`` may delete ``rel``: inside the output folder, through no link,
    and not one of assetpipe's own files there (manifest, gallery, lock)."""
    try:
        contained(output_dir, rel)
    except (UnsafePathError, ValueError):
        log.warning("not pruning %r: it is not a path inside %s", rel, output_dir)
        return False
    top = rel.split("/", 1)[0]
    if rel in (MANIFEST, GALLERY, OUTPUT_LOCK) or top == THUMB_DIR:
        log.warning("not pruning %s: assetpipe keeps it", rel)
        return False
    return True


def flag_near_duplicates(entries: list[dict[str, Any]], threshold: int = 6) -> None:
    """Add a ``distinct`` check to the variants of each asset: variants meant to differ
    that look alike (perceptual hashes within ``threshold`` bits) waste a paid call."""
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for e in entries:
        if e.get("kind") in ("generate", "edit") and e.get("phash"):
            groups.setdefault((e["collection"], e["asset"]), {})[e["job"]] = int(e["phash"], 16)
    by_job = {e.get("job"): e for e in entries}
    for hashes in groups.values():
        if len(hashes) < 2:
            continue
        twins: dict[str, tuple[str, int]] = {}
        for a, b, bits in near_duplicates(hashes, threshold):
            twins.setdefault(a, (b, bits))
            twins.setdefault(b, (a, bits))
        for job in hashes:
            entry = by_job[job]
            kept = [c for c in entry.get("checks") or () if c.get("name") != "distinct"]
            twin = twins.get(job)
            kept.append(
                {
                    "name": "distinct",
                    "ok": twin is None,
                    "detail": f"near-duplicate of {twin[0]} ({twin[1]} bits differ)"
                    if twin
                    else "differs from the other variants",
                    "value": twin[1] if twin else None,
                }
            )
            entry["checks"] = kept


def totals(entries: list[dict[str, Any]], report: RunReport | None) -> dict[str, Any]:
    """The manifest's ``totals``."""
    by_status: dict[str, int] = {}
    for e in entries:
        by_status[str(e.get("status"))] = by_status.get(str(e.get("status")), 0) + 1
    out: dict[str, Any] = {
        "files": sum(1 for e in entries if e.get("sha256")),
        "by_status": by_status,
        "cost_usd": round(sum(float(e.get("cost_usd") or 0) for e in entries), 6),
    }
    if report is not None:  # (no elapsed time: an unchanged build leaves the file as it is)
        out["spent_this_build_usd"] = round(report.spent_usd, 6)
    return out


def run_build(
    settings: Settings,
    catalog: Catalog,
    plan: Plan,
    full_plan: Plan,
    options: BuildOptions,
    reporter: Reporter,
    provider: Provider | None = None,
) -> BuildResult:
    """Build ``plan`` (a selection of ``full_plan``) under the project lock."""
    output_dir = settings.output_dir
    with LocalStore(settings.cache_dir / "cache") as cache, build_folders(settings, cache):
        manifest = load_manifest(output_dir)
        states = assess(plan, manifest, cache, output_dir)

        def checkpoint(outcomes: Mapping[str, Outcome]) -> None:
            entries, _ = manifest_entries(full_plan, outcomes, manifest, output_dir, False)
            write_manifest(output_dir, entries, totals(entries, None))

        stop = StopSignal()
        dispatcher = DirectDispatcher(
            provider or make_provider(settings),
            RateLimiter(settings.images_per_minute, settings.requests_per_minute),
            RetryPolicy(max_attempts=settings.max_attempts),
            concurrency=settings.concurrency,
            stopped=stop.__bool__,
            on_retry=reporter.retrying,
        )
        deps = RunDeps(
            store=cache,
            dispatcher=dispatcher,
            pricing=CatalogPricing(catalog, 0.0 if settings.provider_entry.free else 1.0),
            output_dir=output_dir,
            project_root=settings.root,
            manifest=manifest,
            reporter=reporter,
            stop=stop,
            on_checkpoint=checkpoint,
        )
        config = RunConfig(
            concurrency=settings.concurrency,
            max_cost=settings.max_cost,
            fail_fast=options.fail_fast,
            force=options.force,
            embed_metadata=settings.embed_metadata,
        )
        runner = Runner(plan, states, deps, config)
        report = asyncio.run(_run(runner))
        entries, pruned = manifest_entries(
            full_plan, report.outcomes, manifest, output_dir, options.prune
        )
        flag_near_duplicates(entries)
        changed = write_manifest(output_dir, entries, totals(entries, report))
        if changed or not (output_dir / GALLERY).is_file():
            write_gallery(output_dir, entries, title=f"assetpipe: {settings.root.resolve().name}")
    failed_checks = [
        (str(e["job"]), str(e.get("status")), c)
        for e in entries
        if e.get("job") in report.outcomes
        for c in e.get("checks") or ()
        if not c.get("ok")
    ]
    code = exit_code(report)
    if code == EXIT_OK and options.strict_checks and failed_checks:
        code = EXIT_FAILED
    return BuildResult(
        report=report,
        pruned=tuple(pruned),
        manifest_path=output_dir / "manifest.json",
        exit_code=code,
        failed_checks=tuple(failed_checks),
    )


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


def exit_code(report: RunReport) -> int:
    """130 interrupted, 3 stopped by the budget, 1 anything failed, 0 all done."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.budget_hit:
        return EXIT_BUDGET
    if any(not o.ok for o in report.outcomes.values()):
        return EXIT_FAILED
    return EXIT_OK
