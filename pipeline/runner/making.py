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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline import ops, postprocess
from pipeline.hashing import CacheRequest
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
from pipeline.runner.delivery import Delivery, make_sheet
from pipeline.runner.deps import RunConfig, RunDeps
from pipeline.runner.dispatch import NotStarted, Pending
from pipeline.runner.freshness import JobState, job_request, recorded_key
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
from pipeline.runner.operating import Operating, operated_file, restore_operated
from pipeline.runner.outcome import Outcome
from pipeline.runner.paid import ADOPTED_NOTE, Kept, deliverable, kept, paid_meta
from pipeline.runner.restoring import SMALLER_NOTE, Restored, cached_delivery
from pipeline.runner.signing import Signed
from pipeline.runner.writers import Writers


def refused_transparency(failure: ProviderFailure) -> bool:
    """Whether ``failure`` is the API refusing ``background: transparent`` (a 400 that
    names the parameter), which the chroma route answers once."""
    return failure.kind == "invalid_request" and failure.details.get("param") == "background"


@dataclass(slots=True)
class Arrived:
    """A committed paid image on its way to its file. Its bytes are let go while it waits
    for a writer (they are in the cache, and read back when its turn comes)."""

    data: bytes | None
    """The delivered bytes (None while let go)."""
    original: bytes | None
    """The API's own bytes, when kept (see ``Kept.original``)."""

    def let_go(self) -> None:
        """Hold no bytes while waiting."""
        self.data = self.original = None


Paid = tuple[Arrived, dict[str, Any], list[str]]
"""A paid call's committed image, the outcome fields describing it, and its warnings."""


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
            signing=config.signing,
        )
        self.writers = Writers(self.delivery, config.concurrency)
        self.sunk: dict[str, float] = {}
        self.signed = Signed(config.signing, deps.store, self.inputs, outcomes, self._cache_commit)
        """Signs re-encoded files with the team's C2PA credentials (when configured)."""
        """What jobs that failed after their image arrived (and was paid for) cost."""

    @property
    def stop_reason(self) -> str | None:
        """Why no new paid work starts (None while it does)."""
        return self.deps.stop.reason

    async def make(self, job: Job) -> Outcome:
        """Make ``job`` (its inputs finished and ok): up to date, from the cache, the
        approved image, a local render, or a paid call."""
        if isinstance(job, ApiJob) and job.fallback is not None and self._fell_back(job):
            return await self.make(job.on_chroma())
        shas = {d: self.outcomes[d].sha256 for d in job.depends_on if d in self.outcomes}
        asked = job_request(job, shas)
        if asked is None:  # pragma: no cover - every input is finished and ok by now
            raise RuntimeError(f"{job.id}: inputs have no content hash")
        key = recorded_key(job, asked, self.signed.fingerprint)
        inputs = input_shas(job, shas)
        if not self.config.force or not job.is_api:
            entry = self.manifest.entries.get(job.output_path)
            if (
                entry
                and entry.cache_key == key
                and await asyncio.to_thread(self.output.matches, entry)
            ):
                return self.up_to_date(job, JobState("up-to-date", key, entry.sha256, ""), entry)
            async with self.writers.permits:
                inherited = self._inherited(job)
                # Inspected in the pool when the memo does not know it all.
                restored = await self.writers.restore(self._restore, job, asked, inputs, inherited)
                if restored is not None:
                    return restored
        if job.kind == "pick":  # free: the approved bytes, copied
            async with self.writers.permits:
                data = await asyncio.to_thread(self.inputs.approved, job)
                return await self.writers.deliver(job, "cached", key, data, None, inputs)
        if self.stop_reason is not None:
            return self._not_started(job, key, inputs)
        batch = self.deps.pending.get(asked.key) if job.is_api and not self.config.force else None
        if batch is not None:  # paid for in an open batch: collect it, do not pay again
            return Outcome.pending(job, key, batch)
        if job.kind == "rendition":
            async with self.writers.permits:
                return await self._render(job, asked, shas)
        if job.kind == "sheet":
            async with self.writers.permits:
                return await self._sheet(job, asked, inputs)
        try:
            return await self._call(job, asked, inputs)
        except ProviderFailure as exc:
            if job.fallback is None or not refused_transparency(exc):
                raise
        self.reporter.note(
            f"warning: {job.id}: the API refused background: transparent; asking for a flat "
            f"{job.fallback.key} background instead, keyed out here"
        )
        return await self.make(job.on_chroma())

    def _fell_back(self, job: ApiJob) -> bool:
        """Whether the job's file was made by its chroma fallback (the API refused its
        transparent request before): then that request is asked for at once, instead of
        a refusal per build."""
        entry = self.manifest.entries.get(job.output_path)
        route = entry.transparency if entry is not None else None
        return (
            route is not None and job.fallback is not None and route.get("key") == job.fallback.key
        )

    def _restore(
        self, job: Job, asked: CacheRequest, inputs: list[str], inherited: list[Mapping[str, Any]]
    ) -> Outcome | Callable[[], Outcome] | None:
        """Copy a cached result into the output tree (no call, no cost this build): the
        verified bytes are written and their inspection is read from the memo. None when
        the key is not cached; the work still to do when the memo does not know all of the
        inspection (decoding is for the pool sized to the cores, not the copying thread)."""
        hit = self.cache.get(asked)
        if hit is None:
            return None
        record, data = hit
        key = recorded_key(job, asked, self.signed.fingerprint)
        meta = record.meta or {}
        notes = cached_notes(meta.get("notes"))
        if isinstance(job, ApiJob):
            found = cached_delivery(
                job, record, data, notes, self.cache, self.delivery.memo, self._keep_delivery
            )
            if found is None:
                self.reporter.note(f"warning: {job.id}: {SMALLER_NOTE}")
                return None
            restored = found
            if job.ops:
                restored = restore_operated(job, record, found, self._operating)
        else:
            restored = Restored(None, data, record.blob, self.delivery.memo.inspection(record.blob))
        restored = self.signed.restored(job, record, restored, self.delivery.memo)
        atlas = meta.get("atlas")
        store = functools.partial(
            self.writers.store,
            job,
            "cached",
            key,
            restored.data,
            restored.original,
            inputs,
            inherited=inherited,
            atlas=atlas.encode() if isinstance(atlas, str) else None,
            sha256=restored.sha256,
            known=restored.known,
            fields=cached_fields(meta),
            notes=notes,
        )
        return store() if self.delivery.knows(job, restored.known) else store

    async def _sheet(self, job: SheetJob, asked: CacheRequest, inputs: list[str]) -> Outcome:
        sheet, atlas = await self.writers.local(make_sheet, self.inputs, job, self._inputs_of(job))
        made = await asyncio.to_thread(
            self._cache_commit, asked, sheet, None, {"kind": "sheet", "atlas": atlas.decode()}
        )
        if made.adopted and isinstance(made.meta.get("atlas"), str):
            atlas = str(made.meta["atlas"]).encode()
        data = await self.writers.local(self.signed.sheet, job, made.data)
        key = recorded_key(job, asked, self.signed.fingerprint)
        return await self.writers.deliver(job, "generated", key, data, None, inputs, atlas=atlas)

    async def _render(
        self, job: RenditionJob, asked: CacheRequest, shas: Mapping[str, str | None]
    ) -> Outcome:
        parent = self.outcomes[job.parent]
        source = await asyncio.to_thread(self.inputs.delivered, parent.job, parent.sha256)
        data = await self.writers.local(
            postprocess.render_rendition, source, job.op, self.delivery.memo
        )
        made = await asyncio.to_thread(self._cache_commit, asked, data, None, {"kind": "rendition"})
        inputs = [shas[job.parent] or ""]
        inherited = self._inherited(job)
        signed = await self.writers.local(self.signed.rendition, job, made.data, source)
        key = recorded_key(job, asked, self.signed.fingerprint)
        return await self.writers.deliver(
            job, "generated", key, signed, None, inputs, inherited=inherited
        )

    async def _call(self, job: ApiJob, asked: CacheRequest, inputs: list[str]) -> Outcome:
        key = asked.key
        reservation = self.budget.reserve(self.deps.pricing.estimate(job))
        if reservation is None:
            error = {"type": "budget", "message": self.budget.refusal()}
            return Outcome(job, "skipped", cache_key=key, inputs=inputs, error=error)

        async def paid(result: ImageResult, attempt: int) -> Paid:
            # Paid for: from here it counts as spent, not in flight. The dispatcher holds
            # the request's place until the image is in the cache, so a crash loses at most
            # the requests in flight; the place is free as soon as the image is committed.
            cost = self.deps.pricing.actual(job, result.usage)
            reservation.settle(cost)
            return await self._commit(job, asked, result, attempt, cost)

        try:
            request = await asyncio.to_thread(self.inputs.request, job, self._inputs_of(job))
            arrived, fields, notes = await self.deps.dispatcher.call(job, asked, request, paid)
        except NotStarted:
            return self._not_started(job, key, inputs)
        except Pending as pending:
            return Outcome.pending(job, key, pending.batch_id)
        finally:
            reservation.release()
        outcome = await self._deliver_paid(job, asked, inputs, arrived, fields)
        for note in notes:
            self.reporter.note(f"warning: {job.id}: {note}")
        return with_notes(outcome, notes)

    async def _deliver_paid(
        self,
        job: ApiJob,
        asked: CacheRequest,
        inputs: list[str],
        arrived: Arrived,
        fields: dict[str, Any],
    ) -> Outcome:
        """Write and inspect a committed paid image once a writer is free.

        Its request's place is already free for the next request. An image that has to
        wait for a writer is not held in memory meanwhile: it is in the cache, and is read
        back when its turn comes, so however fast the API answers, memory holds the
        writers' images, not a queue of them. An image committed undecoded (see
        ``RunDeps.forget``) that cannot be decoded fails as a ``bad_response`` and is taken
        back out of the cache, as if it had never been committed."""
        key = recorded_key(job, asked, self.signed.fingerprint)
        undecoded = fields.pop("undecoded")
        if self.writers.permits.locked():
            arrived.let_go()
        async with self.writers.permits:
            if arrived.data is None:
                data, original = await asyncio.to_thread(self._read_back, asked, fields["sha256"])
            else:
                data, original = arrived.data, arrived.original
            try:
                if job.ops:
                    data, fields["sha256"] = await self.writers.local(
                        operated_file, job, original or data, None, self._operating
                    )
                    fields["sample"] = None
                if self.signed.fingerprint is not None:
                    data, fields["sha256"] = await self.writers.local(
                        self.signed.paid, job, data, original, fields["sha256"]
                    )
                return await self.writers.deliver(
                    job, "generated", key, data, original, inputs, **fields
                )
            except ops.OpError:  # the image is paid for: its cost stays counted
                self.sunk[job.id] = fields["cost_usd"]
                raise
            except postprocess.ImageDecodeError as exc:
                if not undecoded or self.deps.forget is None:
                    raise
                await asyncio.to_thread(self.deps.forget, key)
                raise self._bad_response(
                    job, exc, fields["request_id"], fields["attempts"], fields["cost_usd"]
                ) from None

    def _read_back(self, asked: CacheRequest, sha: str) -> tuple[bytes, bytes | None]:
        """A committed result's delivered bytes and the API's own, from the cache."""
        hit = self.cache.get(asked)
        if hit is None or hit[0].blob != sha:
            raise OSError(f"the cache lost the image of {asked} before its file was written")
        record, data = hit
        return data, self.cache.read_blob(record.original) if record.original else data

    def _bad_response(
        self, job: ApiJob, exc: Exception, request_id: str | None, attempt: int, cost: float
    ) -> ProviderFailure:
        """The failure of a paid image that cannot be delivered; its cost stays counted."""
        self.sunk[job.id] = cost
        failure = ProviderFailure(
            "bad_response",
            f"the API answered with an image that cannot be delivered: {exc}",
            request_id=request_id,
        )
        failure.attempts = attempt
        return failure

    async def _commit(
        self, job: ApiJob, asked: CacheRequest, result: ImageResult, attempt: int, cost: float
    ) -> Paid:
        """Count the spend, check the image, crop to the exact size and commit to the cache;
        returns the delivered bytes, the outcome fields that describe the call, and the
        warnings about the answer. An image that must not be delivered raises a
        ``bad_response`` :class:`ProviderFailure` (its cost stays counted, and it is not
        retried: asking again would pay again); a failed cache write stops the build
        before the caller's slot is free for another paid request."""
        notes = list(result.notes)[:MAX_NOTES]
        meta = paid_meta(job, result, cost, notes)

        decode = self.deps.forget is None

        def deliver_and_commit() -> tuple[Kept, Sample | None]:
            delivered, sample = deliverable(job, result.data, notes, decode=decode)
            made = self._cache_commit(asked, delivered, result.data, meta)
            return made, None if made.adopted else sample

        try:
            made, sample = await asyncio.to_thread(deliver_and_commit)
        except UnusableImage as exc:
            raise self._bad_response(job, exc, result.request_id, attempt, cost) from None
        except LocalWriteError as exc:
            self.sunk[job.id] = cost
            self.stop_writing(exc)
            raise
        if made.adopted:
            self.reporter.note(f"{job.id}: {ADOPTED_NOTE}")
        fields = {
            "sha256": made.sha256,
            "sample": sample,
            "undecoded": not decode and sample is None and made.data is made.original,
            "attempts": attempt,
            "usage": meta["usage"],
            "cost_usd": cost,
            "spent_usd": cost,
            "request_id": result.request_id,
            "returned_size": result.size,
            "batch_id": result.batch_id,
        }
        return Arrived(made.data, made.original), fields, notes

    @property
    def _operating(self) -> Operating:
        return Operating(self.cache, self.delivery.memo, self._keep_delivery)

    def _keep_delivery(self, asked: CacheRequest, delivered: bytes) -> bytes:
        """Commit a cached request's delivery at another size; returns what to deliver."""
        return self._cache_commit(asked, delivered, None, {"kind": "delivery"}).data

    def _cache_commit(
        self, asked: CacheRequest, delivered: bytes, original: bytes | None, meta: Mapping[str, Any]
    ) -> Kept:
        """Commit a result of ``asked``; returns what to deliver: ours, or the result
        another machine shared first under its key (see :func:`~pipeline.runner.paid.kept`)."""
        with writing("the cache"):
            record = self.cache.commit(asked, delivered, original, meta)
        return kept(self.cache, record, delivered, original, meta)

    def close(self) -> None:
        """Wait for the files being written and stop the writers' threads."""
        self.writers.close()

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
