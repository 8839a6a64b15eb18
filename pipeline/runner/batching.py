"""The batch dispatcher: paid requests through the Batch API, at half the price.

It implements the same :class:`~pipeline.runner.dispatch.Dispatcher` as a direct call, so
the scheduler does not know the difference: each ``call`` waits for its line's answer.
Requests that arrive together (every job whose inputs are ready) form a *wave*; a wave is
split into batches of one endpoint and one model (:func:`chunk_lines`), each batch is
journaled before it is created (:mod:`pipeline.runner.journal`), polled with backoff, and
its output read as a stream, each answer handed to its waiting job, which commits it to the
cache at once. Edits whose inputs just arrived form the next wave. A retryable line failure
(429, 5xx, an expired batch) waits out its backoff and joins a later wave; a terminal one is
the job's failure.

Whatever happens, a paid line is never paid twice: a batch the journal names is collected,
never resubmitted, by this build or the next; a line no job of this plan asks for any more
is still kept in the cache; and when the results cannot be read (or ``--no-wait``), the
waiting jobs end ``pending`` rather than being sent again. The one exception is a batch of
an earlier build that the API answers 404 for: it does not exist, so nothing of it was
paid, and its journal entry is forgotten (with a warning) and its lines sent again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pipeline.errors import printable
from pipeline.hashing import CacheRequest
from pipeline.jobs import ApiJob, ImageRequest, ImageResult, Job, ProviderFailure
from pipeline.jobs.batch import (
    READ_DEADLINE_CODE,
    BatchBackend,
    BatchInfo,
    BatchLine,
    BatchNotFound,
    chunk_lines,
)
from pipeline.runner.budget import Pricing
from pipeline.runner.dispatch import NotStarted, OnResult, Pending, T
from pipeline.runner.journal import METADATA_KEY, Journal, JournalEntry, JournalLine
from pipeline.runner.paid import keep_paid_line
from pipeline.runner.polling import until_done
from pipeline.runner.retry import RetryPolicy
from pipeline.store import ResultStore

__all__ = ["BatchDispatcher", "BatchOptions"]


class _Resend:
    """The answer for a line of an earlier build's batch that the API does not know: the
    request was never paid for, so its job sends it again (not counted as an attempt)."""


_RESEND = _Resend()
Answer = ImageResult | ProviderFailure | Pending | NotStarted | _Resend


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How waves are formed and batches are watched."""

    wait: bool = True
    """False for ``--no-wait``: submit, then leave the batches to the next build."""
    max_lines: int = 1000
    """Lines per batch: smaller batches finish (and start paying off) sooner."""
    settle_s: float = 0.5
    """A wave is sent once no new request arrived for this long."""
    poll_s: float = 5.0
    max_poll_s: float = 60.0
    read_attempts: int = 4
    """Tries at reading a finished batch's files before leaving it to the next build."""


@dataclass(slots=True)
class _Slot:
    """One request waiting for its line's answer."""

    custom_id: str
    asked: CacheRequest
    job: ApiJob | None
    request: ImageRequest | None
    answer: asyncio.Future[Answer]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the waiting job has committed the answer, given up on it, or was cancelled."""
    committed: bool = False
    """Whether the waiting job committed the image (else the collector keeps it)."""

    @property
    def key(self) -> str:
        """The cache key of the request the line answers."""
        return self.asked.key


class BatchDispatcher:
    """Sends each wave of ready requests as batches and hands every answer to its job."""

    def __init__(
        self,
        backend: BatchBackend,
        journal: Journal,
        store: ResultStore,
        pricing: Pricing,
        retry: RetryPolicy,
        *,
        options: BatchOptions,
        stopped: Callable[[], bool],
        on_retry: Callable[[Job, ProviderFailure, float, int], None],
        note: Callable[[str], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        self.backend = backend
        self.journal = journal
        self.store = store
        self.pricing = pricing
        self.retry = retry
        self.options = options
        self.stopped = stopped
        self.on_retry = on_retry
        self.note = note
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._queue: list[_Slot] = []
        self._flusher: asyncio.Task[None] | None = None
        self._recovered: dict[str, _Slot] = {}
        """Lines of batches an earlier build created, by cache key, until a job claims one."""
        self._recovery: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._finishing: set[asyncio.Task[None]] = set()
        """Collectors past polling (reading results, keeping them, updating the journal):
        the build waits for these at its end instead of cutting them off."""
        self.batches: dict[str, BatchInfo] = {}
        """Every batch this build submitted or collected, as last seen (for the summary)."""

    # -- the Dispatcher interface -------------------------------------------------------------

    async def call(
        self, job: Job, asked: CacheRequest, request: ImageRequest, on_result: OnResult[T]
    ) -> T:
        """See :meth:`~pipeline.runner.dispatch.Dispatcher.call`."""
        if not isinstance(job, ApiJob):  # pragma: no cover - the scheduler sends API jobs only
            raise TypeError(f"{job.id} is not an API job")
        await self._recover_once()
        attempt = 0
        while True:
            attempt += 1
            slot = self._recovered.pop(asked.key, None)
            if slot is None:
                if self.stopped():
                    raise NotStarted
                slot = self._enqueue(job, asked, request)
            try:
                answer = await asyncio.shield(slot.answer)
                if isinstance(answer, _Resend):
                    attempt -= 1
                    continue
                if isinstance(answer, ImageResult):
                    committed = await on_result(answer, attempt)
                    slot.committed = True
                    return committed
                if isinstance(answer, Pending | NotStarted):
                    raise answer
                answer.attempts = attempt
                delay = (
                    None
                    if answer.code == "batch_cancelled"  # cancelled by someone: not resent
                    else self.retry.delay(answer, attempt, self.rng)
                )
                if delay is None:
                    raise answer
            finally:
                slot.done.set()
            self.on_retry(job, answer, delay, attempt)
            await self.sleep(delay)

    async def aclose(self) -> None:
        """Let the batches being read finish, stop watching the others (they go on at the
        API; the journal keeps them for the next build) and release the connections."""
        for task in [*self._tasks, *filter(None, (self._flusher, self._recovery))]:
            if task not in self._finishing:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.backend.aclose()

    # -- waves ----------------------------------------------------------------------------------

    def _enqueue(self, job: ApiJob, asked: CacheRequest, request: ImageRequest) -> _Slot:
        suffix = hashlib.sha256(job.id.encode()).hexdigest()[:12]
        slot = _Slot(f"{asked.key[:40]}.{suffix}", asked, job, request, _future())
        self._queue.append(slot)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_when_settled())
        return slot

    async def _flush_when_settled(self) -> None:
        """Wait until requests stop arriving (or a batch is full), then send the wave."""
        while True:
            seen = len(self._queue)
            await self.sleep(self.options.settle_s)
            if len(self._queue) == seen or len(self._queue) >= self.options.max_lines:
                break
        wave, self._queue = self._queue, []
        try:
            await self._send_wave(wave)
        except Exception as exc:  # a job must never wait for an answer that cannot come
            failure = ProviderFailure("invalid_request", f"the batch could not be sent: {exc}")
            for slot in wave:
                _answer(slot, failure)
        if self._queue:
            self._flusher = asyncio.create_task(self._flush_when_settled())

    async def _send_wave(self, wave: list[_Slot]) -> None:
        if self.stopped():
            for slot in wave:
                _answer(slot, NotStarted())
            return
        by_id = {slot.custom_id: slot for slot in wave}
        lines: list[BatchLine] = []
        for slot in wave:
            if slot.request is None:  # pragma: no cover - queued slots carry their request
                continue
            try:
                lines.append(await self.backend.prepare(slot.custom_id, slot.request))
            except ProviderFailure as failure:
                _answer(slot, failure)
        limits = self.backend.limits
        max_lines = min(limits.max_lines, self.options.max_lines)
        for chunk in chunk_lines(lines, max_lines=max_lines, max_bytes=limits.max_bytes):
            slots = {line.custom_id: by_id[line.custom_id] for line in chunk}
            await self._submit(chunk, slots)

    async def _submit(self, chunk: list[BatchLine], slots: dict[str, _Slot]) -> None:
        """Journal, create and start watching one batch."""
        journaled = tuple(
            _journal_line(s.custom_id, s.asked, s.job) for s in slots.values() if s.job is not None
        )
        entry = self.journal.new_entry(self.backend.name, chunk[0].endpoint, journaled)
        try:
            await asyncio.to_thread(self.journal.write, entry)  # before the batch can exist
        except OSError as exc:  # nothing was sent: say why, and pay for nothing
            failure = ProviderFailure(
                "invalid_request", f"cannot write the batch journal ({exc}); nothing was sent"
            )
            for slot in slots.values():
                _answer(slot, failure)
            return
        try:
            info = await self.backend.submit(chunk, {METADATA_KEY: entry.id})
        except ProviderFailure as failure:
            found = await self._find(entry)  # a create that timed out may have worked
            if found is None:
                await asyncio.to_thread(self.journal.remove, entry.id)
                for slot in slots.values():
                    _answer(slot, failure)
                return
            info = found
        try:
            entry = await asyncio.to_thread(
                self.journal.recorded, entry, info.id, info.input_file_id
            )
        except OSError:  # the batch exists and its journal entry finds it by metadata later
            for slot in slots.values():
                _answer(slot, Pending(info.id))
            return
        self.batches[info.id] = info
        self.note(
            f"batch {info.id}: {len(chunk)} {chunk[0].endpoint} {_requests(len(chunk))} sent "
            f"({chunk[0].model}); results usually arrive within hours, at most 24 h"
        )
        self._watch(entry, info, slots)

    # -- recovery -------------------------------------------------------------------------------

    async def _recover_once(self) -> None:
        if self._recovery is None:
            self._recovery = asyncio.create_task(self._recover())
        await asyncio.shield(self._recovery)

    async def _recover(self) -> None:
        """Pick up the batches an earlier build left open: each line becomes a slot a job of
        this plan can claim by its cache key instead of paying again."""
        for journaled in await asyncio.to_thread(self.journal.entries):
            if journaled.provider != self.backend.name:
                continue
            found = await self._find(journaled) if journaled.batch_id is None else None
            if journaled.batch_id is None and found is None:
                # Never created: its lines were not paid for, and go out again.
                await asyncio.to_thread(self.journal.remove, journaled.id)
                continue
            entry = journaled
            if found is not None:
                entry = await asyncio.to_thread(
                    self.journal.recorded, journaled, found.id, found.input_file_id
                )
            batch_id = entry.batch_id or ""
            slots = {}
            for line in entry.lines:
                slot = _Slot(line.custom_id, line.request, None, None, _future())
                slots[line.custom_id] = slot
                self._recovered.setdefault(line.key, slot)
            self.note(
                f"batch {printable(batch_id)}: collecting the {len(slots)} "
                f"{_requests(len(slots))} sent earlier"
            )
            self._watch(entry, BatchInfo(id=batch_id, status="in_progress"), slots, earlier=True)

    async def _find(self, entry: JournalEntry) -> BatchInfo | None:
        """The batch created for ``entry``, looked up by its metadata (None: never made)."""
        try:
            found = await self.backend.find_by_metadata(
                METADATA_KEY, entry.id, created_after=int(entry.created_at) - 300
            )
        except ProviderFailure:
            return None
        return found[0] if found else None

    # -- watching and collecting ------------------------------------------------------------------

    def _watch(
        self,
        entry: JournalEntry,
        info: BatchInfo,
        slots: dict[str, _Slot],
        *,
        earlier: bool = False,
    ) -> None:
        """Collect the batch in the background; ``earlier``: an earlier build created it."""
        task = asyncio.create_task(self._collect(entry, info, slots, earlier=earlier))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _collect(
        self, entry: JournalEntry, info: BatchInfo, slots: dict[str, _Slot], *, earlier: bool
    ) -> None:
        try:
            try:
                info = await self._until_done(info)
            except BatchNotFound:
                if earlier:
                    await self._forget(entry, info.id, slots)
                return
            if info.is_terminal:
                task = asyncio.current_task()
                if task is not None:
                    self._finishing.add(task)
            if info.is_terminal and await self._read(entry, info, slots):
                await asyncio.gather(*(s.done.wait() for s in slots.values() if s.job))
                await self._keep_uncommitted(entry, slots)
                await asyncio.to_thread(self.journal.remove, entry.id)
                self.note(
                    f"batch {info.id} {info.status}: {info.counts.completed} done, "
                    f"{info.counts.failed} failed"
                )
        finally:  # whatever is left waits for the next build; nothing is sent again
            for slot in slots.values():
                _answer(slot, Pending(info.id))

    async def _forget(self, entry: JournalEntry, batch_id: str, slots: dict[str, _Slot]) -> None:
        """Drop the journal entry of an earlier build's batch the API answered 404 for, and
        have its lines sent again: it does not exist, so none of them was paid for.

        Only an earlier build's batch: one this build just created cannot be unknown, and
        resending it on a wrong 404 could pay for it over and over within one build."""
        await asyncio.to_thread(self.journal.remove, entry.id)
        self.note(
            f"warning: batch {printable(batch_id)} is unknown to the Batch API (404); its "
            f"journal entry is forgotten and its {len(slots)} requests will be sent again"
        )
        for slot in slots.values():
            if self._recovered.get(slot.key) is slot:
                del self._recovered[slot.key]  # a job that comes later sends it at once
            _answer(slot, _RESEND)

    async def _until_done(self, info: BatchInfo) -> BatchInfo:
        """Poll with backoff until the batch is over (once, without waiting, for
        ``--no-wait``); raises :class:`BatchNotFound` when the API has no such batch."""
        return await until_done(
            info,
            self.backend.retrieve,
            self.sleep,
            self.options,
            seen=lambda seen: self.batches.__setitem__(seen.id, seen),
        )

    async def _read(self, entry: JournalEntry, info: BatchInfo, slots: dict[str, _Slot]) -> bool:
        """Hand each answered line to its slot (or keep it in the cache when no job claimed
        it); whether every line was answered."""
        lines = {line.custom_id: line for line in entry.lines}
        expected = [line.custom_id for line in entry.lines]
        formats = {line.custom_id: line.format for line in entry.lines}
        for attempt in range(1, self.options.read_attempts + 1):
            try:
                results = self.backend.results(info, expected, formats=formats)
                async for custom_id, raw in results:
                    slot = slots.get(custom_id)
                    if slot is None or slot.answer.done():
                        continue
                    answer = raw
                    if isinstance(raw, ImageResult):
                        answer = dataclasses.replace(raw, batch_id=info.id)
                        if slot.job is None:  # an earlier build's line: keep it now
                            await asyncio.to_thread(self._keep, lines[custom_id], answer)
                    _answer(slot, answer)
            except ProviderFailure as failure:
                if (
                    not failure.retryable
                    or attempt == self.options.read_attempts
                    or failure.code == READ_DEADLINE_CODE  # another try would take as long
                ):
                    self.note(
                        f"batch {info.id}: results could not be read ({failure.message}); "
                        "the next build --batch tries again"
                    )
                    return False
                await self.sleep(self.retry.delay(failure, attempt, self.rng) or 1.0)
            else:
                return True
        return False  # pragma: no cover - the loop returns

    async def _keep_uncommitted(self, entry: JournalEntry, slots: dict[str, _Slot]) -> None:
        """Keep every image whose job did not commit it (interrupted, or failed after the
        answer came): the journal entry is about to go, and the image was paid for."""
        for line in entry.lines:
            slot = slots.get(line.custom_id)
            if slot is None or slot.job is None or slot.committed or not slot.answer.done():
                continue
            answer = slot.answer.result()
            if isinstance(answer, ImageResult):
                await asyncio.to_thread(self._keep, line, answer)

    def _keep(self, line: JournalLine, result: ImageResult) -> None:
        keep_paid_line(self.store, self.pricing, line, result)


def _future() -> asyncio.Future[Answer]:
    return asyncio.get_running_loop().create_future()


def _answer(slot: _Slot, answer: Answer) -> None:
    if not slot.answer.done():
        slot.answer.set_result(answer)


def _journal_line(custom_id: str, asked: CacheRequest, job: ApiJob) -> JournalLine:
    compression = job.params.get("output_compression")
    return JournalLine(
        custom_id=custom_id,
        request=asked,
        job=job.id,
        model=job.model,
        size=job.size,
        requested=job.requested_size,
        format=job.format,
        compression=int(compression) if compression else None,
        estimate=job.estimated_cost_usd,
    )


def _requests(n: int) -> str:
    """``request`` or ``requests``, agreeing with ``n`` in the notes a build prints."""
    return "request" if n == 1 else "requests"
