"""Ordering the job graph: cycle errors that name the loop, topological order, selection.

Kept apart from graph building so the rules for *which* jobs run and in *what order*
are read (and tested) on their own.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pipeline.errors import Location, SpecError
from pipeline.jobs import Job
from pipeline.planner.resolve import ResolvedAsset

if TYPE_CHECKING:
    from pipeline.planner.graph import Plan


def check_cycles(jobs: Sequence[Job], assets: Mapping[tuple[str, str], ResolvedAsset]) -> None:
    deps = {job.id: job.depends_on for job in jobs}
    state: dict[str, int] = {}
    for start in deps:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            children = deps.get(node, ())
            if i < len(children):
                stack.append((node, i + 1))
                child = children[i]
                if state.get(child) == 1:
                    cycle = [*path[path.index(child) :], child]
                    job = next(j for j in jobs if j.id == child)
                    asset = assets[(job.collection, job.asset)]
                    raise cycle_error(cycle, _reference_to(asset, job, cycle[1]))
                if not state.get(child):
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()


def cycle_error(chain: Sequence[str], where: Location) -> SpecError:
    """The error for an edit cycle, listing it: ``a -> b -> a`` (each edits the next)."""
    return SpecError(
        "edit cycle: " + " -> ".join(chain) + " (each is an edit of the next)",
        where,
        "an asset cannot be built from its own output; remove one of these edit inputs",
    )


def _reference_to(asset: ResolvedAsset, job: Job, target: str) -> Location:
    """Where ``asset``'s edit names the job ``target`` (an image or the mask)."""
    for i, ref in enumerate(job.inputs):
        if ref.job == target:
            return asset.where("edit", "images", i)
    if job.mask is not None and job.mask.job == target:
        return asset.where("edit", "mask")
    return asset.where("edit")


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
        if job.id not in done:
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
        if job.kind == "rendition" and job.depends_on[0] in chosen:
            chosen.add(job.id)
    stack = list(chosen)
    while stack:
        for dep in by_id[stack.pop()].depends_on:
            if dep not in chosen:
                chosen.add(dep)
                stack.append(dep)
    return replace(plan_, jobs=tuple(j for j in plan_.jobs if j.id in chosen))
