"""A plan as JSON and back, validated field by field: for reusing a plan while the
project files it was made from are unchanged (``.assetpipe/plans/``).

The stored text is untrusted like everything under ``.assetpipe/``: it is read with
pydantic against the job types themselves (strict: a string where a number belongs is
refused, not coerced), never unpickled, and a record that does not validate is no plan
at all. Paths in it are still contained where they are used (``OutputTree``). The cache
keys it carries are never used to find or file a result: the runner and ``plan`` compute
every key again from the request it names.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from pipeline.jobs.job import ApiJob, Job, PinnedJob, RenditionJob, SheetJob
from pipeline.jobs.plan import Plan, PlanWarning

CODEC_VERSION = 3
"""Bump when a job type changes shape: older stored plans then fail to validate anyway,
but a new version says so without trying."""


class PlanDecodeError(ValueError):
    """Stored plan text that is not a valid plan."""


@functools.cache
def _adapter() -> Any:
    # Built on first use (~20 ms), once per process.
    tagged = Annotated[ApiJob | RenditionJob | SheetJob | PinnedJob, Field(discriminator="kind")]
    return TypeAdapter(
        tuple[tuple[tagged, ...], tuple[PlanWarning, ...]],
        config=ConfigDict(strict=True, extra="forbid"),
    )


def encode_plan(plan: Plan) -> bytes:
    """The plan's jobs and warnings as compact JSON."""
    return bytes(_adapter().dump_json((plan.jobs, plan.warnings)))


def decode_plan(data: bytes | str) -> Plan:
    """The plan stored by :func:`encode_plan`; :class:`PlanDecodeError` when it is not one."""
    try:
        jobs, warnings = _adapter().validate_json(data)
    except (ValidationError, ValueError) as exc:
        raise PlanDecodeError(str(exc).splitlines()[0]) from None
    plan = Plan(jobs=tuple(jobs), warnings=tuple(warnings))
    _check_graph(plan.jobs)
    return plan


def _check_graph(jobs: tuple[Job, ...]) -> None:
    """Ids unique, and every dependency a job listed before it (the order the planner
    writes, which the runner relies on)."""
    seen: set[str] = set()
    for job in jobs:
        if job.id in seen:
            raise PlanDecodeError(f"job {job.id!r} appears twice")
        missing = [d for d in job.depends_on if d not in seen]
        if missing:
            raise PlanDecodeError(f"job {job.id!r} depends on {missing[0]!r}, not before it")
        seen.add(job.id)
