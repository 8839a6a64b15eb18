"""Wiring one build: lock, provider, cache, limiter, runner, manifest and prune.

Part of the composition root (``api`` calls it): the one place that picks concrete
implementations for the runner and decides the exit code of a build.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.cache import ResultCache
from pipeline.catalog import Catalog
from pipeline.checks import near_duplicates
from pipeline.errors import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ProjectLocked,
)
from pipeline.gallery import INDEX as GALLERY
from pipeline.gallery import write_gallery
from pipeline.jobs import Provider
from pipeline.output import Manifest, file_matches, load_manifest, write_manifest
from pipeline.planner import Plan
from pipeline.providers.preview import PreviewProvider
from pipeline.runner.engine import Reporter, RunConfig, Runner, RunReport
from pipeline.runner.freshness import assess
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.outcome import Outcome
from pipeline.runner.retry import RetryPolicy
from pipeline.settings import Settings

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
    path = cache_dir / LOCK_FILE
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ProjectLocked(
                f"another assetpipe build is running in this project (pid {holder}); "
                "wait for it to finish, then build again"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_provider(settings: Settings) -> Provider:
    """The provider the settings ask for.

    The OpenAI provider is imported here, not at the top: importing the SDK costs a
    quarter of a second that `plan`, `check` and preview builds have no use for.
    """
    if settings.provider in ("openai", "azure"):
        from pipeline.providers.openai_provider import OpenAIProvider  # noqa: PLC0415

        if settings.provider == "azure":
            return OpenAIProvider.azure(timeout=settings.timeout)
        return OpenAIProvider.openai(timeout=settings.timeout)
    return PreviewProvider()


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
            if file_matches(output_dir, entry):
                for companion in entry.get("companions") or ():
                    (output_dir / str(companion["path"])).unlink()
                    pruned.append(str(companion["path"]))
                kept = (entry.get("provenance") or {}).get("original_path")
                if kept and (output_dir / str(kept)).is_file():
                    (output_dir / str(kept)).unlink()
                    pruned.append(str(kept))
                (output_dir / path).unlink()
                pruned.append(path)
                continue
            log.warning("not pruning %s: it changed since assetpipe wrote it", path)
        if not prune:
            entries[path] = {**entry, "stale": True}
    return list(entries.values()), pruned


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
    with project_lock(settings.cache_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        manifest = load_manifest(output_dir)
        with ResultCache(settings.cache_dir / "cache") as cache:
            states = assess(plan, manifest, cache, output_dir)

            def checkpoint(outcomes: Mapping[str, Outcome]) -> None:
                entries, _ = manifest_entries(full_plan, outcomes, manifest, output_dir, False)
                write_manifest(output_dir, entries, totals(entries, None))

            runner = Runner(
                plan,
                states,
                provider=provider or make_provider(settings),
                cache=cache,
                output_dir=output_dir,
                project_root=settings.root,
                manifest=manifest,
                catalog=catalog,
                limiter=RateLimiter(settings.images_per_minute, settings.requests_per_minute),
                config=RunConfig(
                    concurrency=settings.concurrency,
                    max_cost=settings.max_cost,
                    fail_fast=options.fail_fast,
                    force=options.force,
                    free=settings.provider == "preview",
                    retry=RetryPolicy(max_attempts=settings.max_attempts),
                    embed_metadata=settings.embed_metadata,
                ),
                reporter=reporter,
                on_checkpoint=checkpoint,
            )
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
        await runner.provider.aclose()


def exit_code(report: RunReport) -> int:
    """130 interrupted, 3 stopped by the budget, 1 anything failed, 0 all done."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.budget_hit:
        return EXIT_BUDGET
    if any(not o.ok for o in report.outcomes.values()):
        return EXIT_FAILED
    return EXIT_OK
