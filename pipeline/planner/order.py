"""Edit cycles: found before anything runs, reported as the loop of asset names.

Kept apart from graph building so the rule is read (and tested) on its own; the order
the runner follows and ``--only`` selection live with the graph's type in
:mod:`pipeline.jobs.plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.errors import Location, SpecError
from pipeline.jobs import Job
from pipeline.planner.resolve import ResolvedAsset


def check_cycles(jobs: Sequence[Job], assets: Mapping[tuple[str, str], ResolvedAsset]) -> None:
    """Raise the first edit cycle found among ``jobs``, at the edit that closes it."""
    if not any(job.depends_on for job in jobs):
        return  # no job waits for another (a plain matrix): no cycle, and no graph to build
    deps = {job.id: job.depends_on for job in jobs}
    state: dict[str, int] = {}
    for start, first in deps.items():
        if not first or state.get(start):
            continue  # a job that waits for none is on no cycle
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
    if job.kind not in ("generate", "edit"):
        return asset.where("edit")
    for i, ref in enumerate(job.inputs):
        if ref.job == target:
            return asset.where("edit", "images", i)
    if job.mask is not None and job.mask.job == target:
        return asset.where("edit", "mask")
    return asset.where("edit")
