"""What the page says of each asset beyond its files: picks, rejections, tags, approval.

The manifest records what was built; the plan and ``assetpipe.lock`` say what a person
decided and what the spec asks for now. Both the static page (written at the end of a
build) and the review server compute this the same way, from plain values, so the two
pages cannot disagree about which asset needs review.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.jobs import ApiJob, PinnedJob, Plan
from pipeline.output import ManifestEntry
from pipeline.spec.lock import Lock


@dataclass(frozen=True, slots=True)
class AssetReview:
    """One asset (``collection/asset``) as the plan and the lock see it."""

    asset: str
    variants: int
    """API variants the plan has (the spec's ``variants`` plus rerolls)."""
    tags: tuple[str, ...] = ()
    picked: int | None = None
    pinned: str = ""
    """The sha256 of the image the lock approved ("" without a pick). A pick is of an
    image, not of a variant number: once the variant is made again, its card shows
    another image than the one the build delivers."""
    rejected: tuple[int, ...] = ()
    changed: bool = False
    """Picked, but the picked variant's request is no longer what the spec asks for."""
    problem: str = ""
    """Why the asset needs a person (empty when it does not), as ``check --require-review``."""
    variant_cost: float = 0.0
    """The list price of one more variant (USD), shown before a reroll."""
    requests: Mapping[int, str] = field(default_factory=dict)
    """Each variant's request as the spec asks for it now (prompt and params), to tell a
    built image made from an older spec from a current one."""
    judged: int | None = None
    """The variant the quality gate delivers at the asset's path (its best after rerolls)
    where no person picked: shown as the judge's choice, never as an approval."""


@dataclass(frozen=True, slots=True)
class ReviewData:
    """The review side of the page: every planned asset, and what the provider charges."""

    assets: Mapping[str, AssetReview] = field(default_factory=dict)
    inputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Labels of each edit's input images (other jobs' ids, project files), by job id."""
    free: bool = False
    provider: str = ""


def request_text(prompt: str, params: Mapping[str, object]) -> str:
    """A request's prompt and parameters as one comparable string."""
    return json.dumps([prompt, dict(params)], sort_keys=True, default=str)


def review_data(
    plan: Plan,
    lock: Lock,
    entries: Sequence[ManifestEntry],
    *,
    provider: str = "",
    free: bool = False,
) -> ReviewData:
    """The review facts of every asset in ``plan``; ``entries`` (the manifest) give the
    keys of edits whose inputs were not known when the plan was made."""
    built = {e.path: e for e in entries}
    jobs = plan.by_id
    variants: dict[str, list[ApiJob]] = {}
    pins: dict[str, PinnedJob] = {}
    inputs: dict[str, tuple[str, ...]] = {}
    for job in plan.jobs:
        name = f"{job.collection}/{job.asset}"
        if isinstance(job, ApiJob):
            variants.setdefault(name, []).append(job)
            labels = [r.job or r.path or "" for r in job.inputs]
            if job.mask is not None:
                labels.append(f"mask {job.mask.job or job.mask.path or ''}")
            if labels:
                inputs[job.id] = tuple(labels)
        elif isinstance(job, PinnedJob):
            pins[name] = job
    assets: dict[str, AssetReview] = {}
    for name, jobs_of in variants.items():
        entry = lock.entry(name)
        pin = pins.get(name)
        judged = None
        if pin is not None and entry.pick is None:  # the judge's winner: no one approved it
            judged, pin = pin.picked, None
        changed = False
        if pin is not None:
            variant = jobs.get(pin.picked_job)
            key = variant.cache_key if variant is not None else None
            if key is None and variant is not None and variant.output_path in built:
                key = built[variant.output_path].cache_key
            changed = key != pin.approved_key
        picked = pin.picked if pin is not None else None  # as planned: watch plans none
        if picked is not None and picked > len(jobs_of):
            problem = (
                f"the lock names variant {picked}, but the spec has only {len(jobs_of)} "
                f"variants; assetpipe pick {name}#K or assetpipe unpick {name}"
            )
        elif picked is not None and changed:
            problem = "changed since approval: the spec now asks for another image"
        elif picked is None and len(jobs_of) > 1:
            problem = f"{len(jobs_of)} variants and none picked"
        else:
            problem = ""
        assets[name] = AssetReview(
            asset=name,
            variants=len(jobs_of),
            tags=tuple(dict.fromkeys(t for j in jobs_of for t in j.tags)),
            picked=picked,
            pinned=pin.approved if pin is not None else "",
            rejected=entry.rejected,
            changed=changed,
            problem=problem,
            variant_cost=jobs_of[-1].estimated_cost_usd,
            requests={j.variant: request_text(j.prompt, j.params) for j in jobs_of},
            judged=judged,
        )
    return ReviewData(assets=assets, inputs=inputs, free=free, provider=provider)
