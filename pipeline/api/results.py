"""What a build is asked to do, what it answers, and the exit code the answer deserves.

Both halves of a build need these: :mod:`~pipeline.api.building` (the entry points and
the answer "nothing to do") and :mod:`~pipeline.api.running` (a build with work). They
live here, below both, so that neither half imports the other's types and the light
half never loads the runner to name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PENDING,
)
from pipeline.runner.outcome import RunReport


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Switches of ``assetpipe build``."""

    force: bool = False
    fail_fast: bool = False
    prune: bool = False
    strict_checks: bool = False
    batch: bool = False
    """Send paid requests through the Batch API (half price, results within 24 h)."""
    wait: bool = True
    """With ``batch``: wait for the batches (False: submit, exit 4, collect next time)."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build did and the exit code it deserves."""

    report: RunReport
    pruned: tuple[str, ...]
    manifest_path: Path
    exit_code: int
    failed_checks: tuple[tuple[str, str, Mapping[str, Any]], ...] = ()
    """(job id, status, check) of every failed check of the built jobs."""
    shared_cache: str | None = None
    """The shared cache's URL, when one is configured."""
    shared_cache_problem: str | None = None
    """Why it could not be relied on to be read (said at the start, as a warning)."""

    def counts(self) -> dict[str, int]:
        """Jobs by final status."""
        out: dict[str, int] = {}
        for outcome in self.report.outcomes.values():
            out[outcome.status] = out.get(outcome.status, 0) + 1
        return out


def exit_code(report: RunReport) -> int:
    """130 interrupted, 3 stopped by the budget, 1 anything failed, 4 some requests wait
    in open batches, 0 all done."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.budget_hit:
        return EXIT_BUDGET
    statuses = {o.status for o in report.outcomes.values()}
    if statuses - {"generated", "cached", "up-to-date", "pending"}:
        return EXIT_FAILED
    if "pending" in statuses:
        return EXIT_PENDING
    return EXIT_OK
