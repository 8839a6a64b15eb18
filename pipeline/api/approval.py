"""Which assets still need a person's eye (``check --require-review``).

An asset with several variants is only done when someone picked one, and a pick is only
current while the picked variant's request is still what the spec asks for. Kept apart
from picking itself so that ``check`` can ask it without loading anything twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.jobs import ApiJob, Plan
from pipeline.runner.freshness import JobState
from pipeline.spec.lock import read_lock


@dataclass(frozen=True, slots=True)
class ReviewProblem:
    """An asset ``check --require-review`` stops on, and why."""

    asset: str
    problem: str


def review_problems(root: Path, plan: Plan, states: Mapping[str, JobState]) -> list[ReviewProblem]:
    """Every asset with several variants and no current pick, and every pick that names an
    asset the specs no longer have (``check --require-review``)."""
    picks = read_lock(root).picks
    assets: dict[str, int] = {}
    for job in plan.jobs:
        if isinstance(job, ApiJob):
            name = f"{job.collection}/{job.asset}"
            assets[name] = max(assets.get(name, 0), job.variant)
    problems = []
    for name, count in assets.items():
        state = states.get(name)
        if name in picks:
            if state is not None and state.approval == "changed":
                why = "changed since approval: the spec now asks for another image"
                problems.append(ReviewProblem(name, why))
        elif count > 1:
            problems.append(ReviewProblem(name, f"{count} variants and none picked"))
    for name in sorted(set(picks) - set(assets)):
        problems.append(ReviewProblem(name, "picked, but no spec has this asset any more"))
    return problems
