"""The job graph as the runner reads it: jobs in dependency order, warnings, selection.

The planner builds a :class:`Plan`; the runner, ``plan``/``check`` and the future batch
and shard dispatchers only read one. Keeping the graph's type and its pure operations
here, below both, is what lets the runner run a plan without importing the planner.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pipeline.errors import Location
from pipeline.jobs.job import Job

PALETTE_SKIPPED = (
    "the palette check is skipped for preview images: they are placeholders, so their "
    "colors say nothing of the brand palette"
)
"""The plan's note when the build will skip the palette check: one text, whatever the
free provider is called, so a command can tell it from the spec's own warnings."""


@dataclass(frozen=True, slots=True)
class PlanWarning:
    """Something that will work but deserves a look (a deprecated model, a preview feature)."""

    message: str
    location: Location | None

    def __str__(self) -> str:
        return f"{self.location}: warning: {self.message}" if self.location else self.message


@dataclass(frozen=True, slots=True)
class Plan:
    """The job graph: jobs in spec order (inputs before their dependents), and warnings."""

    jobs: tuple[Job, ...]
    warnings: tuple[PlanWarning, ...] = ()

    @property
    def by_id(self) -> dict[str, Job]:
        """Jobs by id."""
        return {job.id: job for job in self.jobs}

    @property
    def estimated_cost_usd(self) -> float:
        """The sum of every job's estimate."""
        return sum(job.estimated_cost_usd for job in self.jobs)


def topological(jobs: Sequence[Job]) -> list[Job]:
    """Spec order, but every job after the jobs it depends on."""
    by_id = {job.id: job for job in jobs}
    done: set[str] = set()
    out: list[Job] = []

    def visit(job: Job) -> None:
        stack = [job]
        while stack:
            top = stack[-1]
            pending = [by_id[d] for d in top.depends_on if d not in done and d in by_id]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if top.id not in done:
                done.add(top.id)
                out.append(top)

    for job in jobs:
        if job.id in done:
            continue
        if not job.depends_on:  # most jobs wait for none: no walk
            done.add(job.id)
            out.append(job)
            continue
        visit(job)
    return out


def select(
    plan_: Plan, patterns: Iterable[str] = (), collections: Iterable[str] | None = None
) -> Plan:
    """The jobs matching ``patterns`` (globs over job ids) and/or in ``collections``, plus
    everything they depend on and the renditions of what is selected."""
    pats = list(patterns)
    wanted_colls = set(collections) if collections is not None else None
    if not pats and wanted_colls is None:
        return plan_
    by_id = plan_.by_id
    chosen: set[str] = set()
    for job in plan_.jobs:
        if wanted_colls is not None and job.collection not in wanted_colls:
            continue
        if pats and not any(fnmatch.fnmatchcase(job.id, p) for p in pats):
            continue
        chosen.add(job.id)
    for job in plan_.jobs:
        if job.kind == "rendition" and job.parent in chosen:
            chosen.add(job.id)
    stack = list(chosen)
    while stack:
        for dep in by_id[stack.pop()].depends_on:
            if dep not in chosen:
                chosen.add(dep)
                stack.append(dep)
    return replace(plan_, jobs=tuple(j for j in plan_.jobs if j.id in chosen))
