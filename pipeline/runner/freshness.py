"""What each job of a plan needs: nothing, a copy from the cache, or a new call.

A job is *up to date* when its file exists unchanged and the manifest records the same
cache key; *cached* when the key is in the cache; otherwise it must be made. Keys of
edits and renditions depend on the bytes of their inputs, which are known when those
inputs are up to date (the manifest's sha256) or cached (the record's blob) — so a plan
can tell, before any call, exactly which jobs a build will pay for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pipeline.hashing import CacheRequest
from pipeline.jobs import (
    Job,
    Plan,
    api_request,
    pick_request,
    rendition_request,
    sheet_request,
)
from pipeline.output import Manifest, ManifestEntry, OutputTree
from pipeline.store import ResultStore

Status = Literal["up-to-date", "cached", "generate", "render", "pending"]
Approval = Literal["current", "changed"]


@dataclass(frozen=True, slots=True)
class JobState:
    """A job's status before a build, with its key and delivered sha256 when known."""

    status: Status
    cache_key: str | None
    sha256: str | None
    reason: str
    checks: tuple[Mapping[str, Any], ...] | None = None
    """The quality checks the manifest recorded for an up-to-date file."""
    approval: Approval | None = None
    """For a picked asset's own image: whether the picked variant's request is still the
    one the spec asks for (``current``) or the spec changed since (``changed``)."""


def job_request(job: Job, shas: Mapping[str, str | None]) -> CacheRequest | None:
    """What ``job``'s result is made from, given its inputs' delivered sha256 (None while
    one is unknown). Always computed from the job's own fields, never taken from a key a
    stored plan carries: the key a result is filed under is the hash of what is sent."""
    if job.kind == "pick":
        return pick_request(job.approved)
    if job.kind == "rendition":
        src = shas.get(job.parent)
        return rendition_request(src, job.op) if src else None
    if job.kind == "sheet":
        frame_shas = [shas.get(d) for d in job.depends_on]
        if not all(frame_shas):
            return None
        return sheet_request(job.params, list(zip(job.frames, map(str, frame_shas), strict=True)))
    inputs: list[str] = []
    for ref in job.inputs:
        sha = ref.sha256 if ref.job is None else shas.get(ref.job)
        if not sha:
            return None
        inputs.append(sha)
    mask_sha = None
    if job.mask is not None:
        mask_sha = job.mask.sha256 if job.mask.job is None else shas.get(job.mask.job)
        if not mask_sha:
            return None
    return api_request(job, inputs, mask_sha)


def job_key(job: Job, shas: Mapping[str, str | None]) -> str | None:
    """The cache key of ``job`` given its inputs' delivered sha256 (None if one is unknown)."""
    request = job_request(job, shas)
    return request.key if request is not None else None


def what_changed(job: Job, entry: ManifestEntry, shas: Mapping[str, str | None]) -> str:
    """Why a job whose file the manifest records must be made again, in the words a user
    thinks in: the prompt, a parameter, an input image, the model or the provider."""
    if job.kind in ("generate", "edit"):
        changes = []
        if entry.prompt != job.prompt:
            changes.append("prompt")
        params = sorted(
            name
            for name in {*entry.params, *job.params}
            if entry.params.get(name) != job.params.get(name)
        )
        if params:
            changes.append("parameter " + ", ".join(params))
        if entry.model != job.model:
            changes.append("model")
        if entry.provider != job.provider:
            changes.append("provider")
        now = [
            (ref.sha256 if ref.job is None else shas.get(ref.job)) or ""
            for ref in (*job.inputs, *((job.mask,) if job.mask is not None else ()))
        ]
        if job.kind == "edit" and list(entry.inputs) != now:
            changes.append("input image")
        if changes:
            return " and ".join(changes) + " changed"
        return "the request changed (variant or endpoint)"
    if job.kind == "rendition":
        return "its source image or settings changed"
    if job.kind == "sheet":
        return "a frame or its settings changed"
    return "the approved image changed"


def assess(
    plan: Plan,
    manifest: Manifest,
    cache: ResultStore | None,
    tree: OutputTree,
    pending: Mapping[str, str] | None = None,
) -> dict[str, JobState]:
    """The state of every job, in plan order (inputs are assessed before dependents).

    ``pending`` maps the cache keys of requests in open batches to their batch: such a
    job is ``pending`` (paid or about to be; the next ``build --batch`` collects it)."""
    pending = pending or {}
    states: dict[str, JobState] = {}
    shas: dict[str, str | None] = {}
    for job in plan.jobs:
        request = job_request(job, shas)
        key = request.key if request is not None else None
        entry: ManifestEntry | None = manifest.entries.get(job.output_path)
        make: Status = "generate" if job.is_api else "render"
        if key is None:
            state = JobState(make, None, None, "its inputs will change")
        elif entry and entry.cache_key == key and tree.matches(entry):
            state = JobState("up-to-date", key, entry.sha256, "unchanged", entry.checks)
        else:
            record = cache.lookup(request) if cache is not None and request else None
            if record is not None:
                state = JobState("cached", key, record.blob, "in the cache")
            elif key in pending and job.is_api:
                state = JobState("pending", key, None, f"in the open batch {pending[key]}")
            elif entry and entry.cache_key == key:
                state = JobState(make, key, None, "file changed or missing; not cached")
            elif entry:
                state = JobState(make, key, None, what_changed(job, entry, shas))
            else:
                state = JobState(make, key, None, "new")
        if job.kind == "pick":  # its bytes are known before it runs: the approved ones
            variant = states.get(job.picked_job)
            current = variant is not None and variant.cache_key == job.approved_key
            state = replace(
                state, sha256=job.approved, approval="current" if current else "changed"
            )
        states[job.id] = state
        shas[job.id] = state.sha256
    return states
