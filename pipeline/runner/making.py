"""Making one job whose inputs are ready: the part of a build that touches bytes and money.

The scheduler (:mod:`pipeline.runner.engine`) decides when a job runs; :class:`Maker`
decides how: take its file as it is (up to date), copy it from the cache, deliver an
approved image, render a rendition or a sheet, or pay for it through the dispatcher and
commit the result before anything else can fail. Split from the scheduler so each reads
on its own and stays small.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pipeline import postprocess
from pipeline.jobs import (
    ApiJob,
    ImageResult,
    Job,
    Plan,
    ProviderFailure,
    RenditionJob,
    SheetJob,
)
from pipeline.output import ManifestEntry
from pipeline.postprocess import Sample
from pipeline.runner.budget import Budget
from pipeline.runner.delivery import Delivery, OriginalFacts, make_sheet
from pipeline.runner.deps import RunConfig, RunDeps
from pipeline.runner.dispatch import NotStarted, Pending
from pipeline.runner.freshness import JobState, job_key
from pipeline.runner.guards import (
    MAX_NOTES,
    LocalWriteError,
    UnusableImage,
    cached_fields,
    cached_notes,
    with_notes,
    writing,
)
from pipeline.runner.inputs import InputReader, input_shas
from pipeline.runner.outcome import Outcome, Status
from pipeline.runner.paid import ADOPTED_NOTE, Kept, deliverable, kept, paid_meta
from pipeline.runner.restoring import Restored, cached_delivery
from pipeline.store import Inspection

Paid = tuple[bytes, dict[str, Any], list[str]]
"""A paid call's delivered bytes, the outcome fields describing it, and its warnings."""


LOCAL_WORK = 8
"""Results written and inspected at once (waiting for, or in, the local pool): enough to
keep the pool busy, few enough that 2.5 MB images do not pile up in memory."""

T = TypeVar("T")


def local_workers() -> int:
    """Threads that write and inspect files: one per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 2


class Maker:
    """Makes the jobs of one build, one at a time each, many at once overall."""

    def __init__(
        self,
        plan: Plan,
        deps: RunDeps,
        config: RunConfig,
        outcomes: Mapping[str, Outcome],
        budget: Budget,
        stop_writing: Callable[[LocalWriteError], None],
    ):
        self.deps = deps
        self.config = config
        self.outcomes = outcomes
        """The finished jobs (the scheduler's, read only here)."""
        self.budget = budget
        self.stop_writing = stop_writing
        self.cache = deps.store
        self.output = deps.output
        self.manifest = deps.manifest
        self.reporter = deps.reporter
        self.inputs = InputReader(deps.store, deps.output, deps.project_root)
        self.delivery = Delivery(
            deps.output,
            {job.id: job for job in plan.jobs},
            config.embed_metadata,
            config.placeholders,
            deps.memo,
        )
        # Files being written and inspected at once (API results, cache copies, renditions,
        # sheets): bounds the images held in memory whatever the API or the cache delivers.
        self.local_work = asyncio.Semaphore(min(config.concurrency, LOCAL_WORK))
        self.pool = ThreadPoolExecutor(local_workers(), thread_name_prefix="assetpipe-local")
        """Where files are written and inspected: CPU-bound work, one thread per core, apart
        from the default executor's threads that wait on the network and on fsync."""
        self.copier = ThreadPoolExecutor(1, thread_name_prefix="assetpipe-copy")
        """Where files are copied from the cache with the memo's inspection: mostly system
        calls, which one thread makes faster than several fighting over the interpreter
        (a restore of 400 files spends a third less CPU)."""
        self.sunk: dict[str, float] = {}
        """What jobs that failed after their image arrived (and was paid for) cost."""

    @property
    def stop_reason(self) -> str | None:
        """Why no new paid work starts (None while it does)."""
        return self.deps.stop.reason

    async def make(self, job: Job) -> Outcome:
        """Make ``job`` (its inputs finished and ok): up to date, from the cache, the
        approved image, a local render, or a paid call."""
        shas = {d: self.outcomes[d].sha256 for d in job.depends_on if d in self.outcomes}
        key = job_key(job, shas)
        if key is None:  # pragma: no cover - every input is finished and ok by now
            raise RuntimeError(f"{job.id}: inputs have no content hash")
        inputs = input_shas(job, shas)
        if not self.config.force or not job.is_api:
            entry = self.manifest.entries.get(job.output_path)
            if (
                entry
                and entry.cache_key == key
                and await asyncio.to_thread(self.output.matches, entry)
            ):
                return self.up_to_date(job, JobState("up-to-date", key, entry.sha256, ""), entry)
            async with self.local_work:
                inherited = self._inherited(job)
                restored = await self._copy(self._restore, job, key, inputs, inherited)
                if isinstance(restored, Outcome):
                    return restored
                if restored is not None:  # the memo does not know it all: inspect it
                    return await self._local(restored)
        if job.kind == "pick":  # free: the approved bytes, copied
            async with self.local_work:
                data = await asyncio.to_thread(self.inputs.approved, job)
                return await self._deliver(job, "cached", key, data, None, inputs)
        if self.stop_reason is not None:
            return self._not_started(job, key, inputs)
        batch = self.deps.pending.get(key) if job.is_api and not self.config.force else None
        if batch is not None:  # paid for in an open batch: collect it, do not pay again
            return Outcome.pending(job, key, batch)
        if job.kind == "rendition":
            async with self.local_work:
                return await self._render(job, key, shas)
        if job.kind == "sheet":
            async with self.local_work:
                return await self._sheet(job, key, inputs)
        return await self._call(job, key, inputs)

    def _restore(
        self, job: Job, key: str, inputs: list[str], inherited: list[Mapping[str, Any]]
    ) -> Outcome | Callable[[], Outcome] | None:
        """Copy a cached result into the output tree (no call, no cost this build): the
        verified bytes are written and their inspection is read from the memo. None when
        the key is not cached; the work still to do when the memo does not know all of the
        inspection (decoding is for the pool sized to the cores, not the copying thread)."""
        hit = self.cache.get(key)
        if hit is None:
            return None
        record, data = hit
        meta = record.meta or {}
        notes = cached_notes(meta.get("notes"))
        if isinstance(job, ApiJob):
            restored = cached_delivery(
                job, record, data, notes, self.cache, self.delivery.memo, self._keep_delivery
            )
        else:
            restored = Restored(None, data, record.blob, self.delivery.memo.inspection(record.blob))
        atlas = meta.get("atlas")
        store = functools.partial(
            self._store,
            job,
            "cached",
            key,
            restored.data,
            restored.original,
            inputs,
            inherited,
            atlas=atlas.encode() if isinstance(atlas, str) else None,
            sha256=restored.sha256,
            known=restored.known,
            fields=cached_fields(meta),
            notes=notes,
        )
        return store() if self.delivery.knows(job, restored.known) else store

    async def _sheet(self, job: SheetJob, key: str, inputs: list[str]) -> Outcome:
        sheet, atlas = await self._local(make_sheet, self.inputs, job, self._inputs_of(job))
        made = await asyncio.to_thread(
            self._cache_commit, key, sheet, None, {"kind": "sheet", "atlas": atlas.decode()}
        )
        if made.adopted and isinstance(made.meta.get("atlas"), str):
            atlas = str(made.meta["atlas"]).encode()
        return await self._deliver(job, "generated", key, made.data, None, inputs, atlas=atlas)

    async def _render(self, job: RenditionJob, key: str, shas: Mapping[str, str | None]) -> Outcome:
        parent = self.outcomes[job.parent]
        source = await asyncio.to_thread(self.inputs.delivered, parent.job, parent.sha256)
        data = await self._local(postprocess.render_rendition, source, job.op)
        made = await asyncio.to_thread(self._cache_commit, key, data, None, {"kind": "rendition"})
        return await self._deliver(job, "generated", key, made.data, None, [shas[job.parent] or ""])

    async def _call(self, job: ApiJob, key: str, inputs: list[str]) -> Outcome:
        reservation = self.budget.reserve(self.deps.pricing.estimate(job))
        if reservation is None:
            error = {"type": "budget", "message": self.budget.refusal()}
            return Outcome(job, "skipped", cache_key=key, inputs=inputs, error=error)

        async def paid(
            result: ImageResult, attempt: int
        ) -> tuple[bytes, dict[str, Any], list[str]]:
            # Paid for: from here it counts as spent, not in flight. The dispatcher holds
            # the request's place until the image is in the cache, so a crash loses at most
            # `concurrency` paid images, never one that already arrived while a new
            # request took its place.
            cost = self.deps.pricing.actual(job, result.usage)
            reservation.settle(cost)
            committed = await self._commit(job, key, result, attempt, cost)
            # Back-pressure: the place is given up only once a delivery permit is held, so
            # results never pile up faster than they are written.
            await self.local_work.acquire()
            return committed

        try:
            request = await asyncio.to_thread(self.inputs.request, job, self._inputs_of(job))
            delivered, fields, notes = await self.deps.dispatcher.call(job, key, request, paid)
        except NotStarted:
            return self._not_started(job, key, inputs)
        except Pending as pending:
            return Outcome.pending(job, key, pending.batch_id)
        finally:
            reservation.release()
        # Cached and paid for: the place is free for the next request while the file is
        # written and inspected.
        try:
            original = fields.pop("data")
            outcome = await self._deliver(
                job, "generated", key, delivered, original, inputs, **fields
            )
        finally:
            self.local_work.release()
        for note in notes:
            self.reporter.note(f"warning: {job.id}: {note}")
        return with_notes(outcome, notes)

    async def _commit(
        self, job: ApiJob, key: str, result: ImageResult, attempt: int, cost: float
    ) -> Paid:
        """Count the spend, check the image, crop to the exact size and commit to the cache;
        returns the delivered bytes, the outcome fields that describe the call, and the
        warnings about the answer. An image that must not be delivered raises a
        ``bad_response`` :class:`ProviderFailure` (its cost stays counted, and it is not
        retried: asking again would pay again); a failed cache write stops the build
        before the caller's slot is free for another paid request."""
        notes = list(result.notes)[:MAX_NOTES]
        meta = paid_meta(job, result, cost, notes)

        def deliver_and_commit() -> tuple[Kept, Sample | None]:
            delivered, sample = deliverable(job, result.data, notes)
            made = self._cache_commit(key, delivered, result.data, meta)
            return made, None if made.adopted else sample

        try:
            made, sample = await asyncio.to_thread(deliver_and_commit)
        except UnusableImage as exc:
            self.sunk[job.id] = cost
            failure = ProviderFailure(
                "bad_response",
                f"the API answered with an image that cannot be delivered: {exc}",
                request_id=result.request_id,
            )
            failure.attempts = attempt
            raise failure from None
        except LocalWriteError as exc:
            self.sunk[job.id] = cost
            self.stop_writing(exc)
            raise
        if made.adopted:
            self.reporter.note(f"{job.id}: {ADOPTED_NOTE}")
        fields = {
            "data": made.original,
            "sha256": made.sha256,
            "sample": sample,
            "attempts": attempt,
            "usage": meta["usage"],
            "cost_usd": cost,
            "spent_usd": cost,
            "request_id": result.request_id,
            "returned_size": result.size,
            "batch_id": result.batch_id,
        }
        return made.data, fields, notes

    def _keep_delivery(self, key: str, delivered: bytes) -> bytes:
        """Commit a cached request's delivery at another size; returns what to deliver."""
        return self._cache_commit(key, delivered, None, {"kind": "delivery"}).data

    def _cache_commit(
        self, key: str, delivered: bytes, original: bytes | None, meta: Mapping[str, Any]
    ) -> Kept:
        """Commit a result; returns what to deliver: ours, or the result another machine
        shared first under ``key`` (see :func:`~pipeline.runner.paid.kept`)."""
        with writing("the cache"):
            record = self.cache.commit(key, delivered, original, meta)
        return kept(self.cache, record, delivered, original, meta)

    async def _deliver(
        self,
        job: Job,
        status: Status,
        key: str,
        data: bytes,
        original: bytes | OriginalFacts | None,
        inputs: list[str],
        *,
        atlas: bytes | None = None,
        sha256: str | None = None,
        sample: Sample | None = None,
        **fields: Any,
    ) -> Outcome:
        """Write a delivered file (and a sheet's atlas), inspect it, and say what happened.

        ``sha256`` (of ``data``, verified) and ``sample`` (its pixels, decoded) are what
        the caller already knows, so nothing is hashed or decoded twice."""
        store = functools.partial(
            self._store,
            job,
            status,
            key,
            data,
            original,
            inputs,
            self._inherited(job),
            atlas=atlas,
            sha256=sha256,
            sample=sample,
            fields=fields,
        )
        return await self._local(store)

    async def _local(self, work: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound local work (decode, inspect, write) in the pool sized to the cores."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, work, *args)

    async def _copy(self, work: Callable[..., T], *args: Any) -> T:
        """Run a copy from the cache (reads, writes, the memo) in the copying thread."""
        return await asyncio.get_running_loop().run_in_executor(self.copier, work, *args)

    def close(self) -> None:
        """Wait for the local work under way (files being written) and stop the threads."""
        self.copier.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _store(
        self,
        job: Job,
        status: Status,
        key: str,
        data: bytes,
        original: bytes | OriginalFacts | None,
        inputs: list[str],
        inherited: list[Mapping[str, Any]],
        *,
        atlas: bytes | None,
        sha256: str | None,
        sample: Sample | None = None,
        known: Inspection | None = None,
        fields: Mapping[str, Any],
        notes: list[str] | None = None,
    ) -> Outcome:
        """:meth:`_deliver`'s work, in a worker thread; ``notes`` are warnings about the
        API's answer the outcome records."""
        with writing(f"{job.output_path} in the output folder"):
            stored = self.delivery.store(
                job,
                key,
                data,
                original,
                atlas,
                inherited,
                sha256=sha256,
                sample=sample,
                known=known,
            )
        return with_notes(stored.outcome(job, status, key, inputs, **fields), notes or [])

    def _inherited(self, job: Job) -> list[Mapping[str, Any]]:
        """What a rendition inherits from its source's checks (nothing for other kinds)."""
        parent = self.outcomes.get(job.parent) if job.kind == "rendition" else None
        return list(parent.checks or []) if parent is not None else []

    def _inputs_of(self, job: Job) -> dict[str, Outcome]:
        """The finished outcomes a job reads, copied for a worker thread (not all of them:
        copying every outcome for every job is quadratic in a 10,000-job build)."""
        return {dep: self.outcomes[dep] for dep in job.depends_on}

    def _not_started(self, job: Job, key: str, inputs: list[str]) -> Outcome:
        message = self.stop_reason or "not started"
        error = {"type": "not_started", "message": message}
        return Outcome(job, "skipped", cache_key=key, inputs=inputs, error=error)

    def up_to_date(self, job: Job, state: JobState, entry: ManifestEntry | None = None) -> Outcome:
        """An up-to-date job, as the manifest recorded it."""
        recorded = entry or self.manifest.entries.get(job.output_path)
        return Outcome.from_entry(job, state.cache_key, state.sha256, recorded)
