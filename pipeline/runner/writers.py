"""Where a build's files are written and inspected: the worker threads and their permits.

Writing a delivered file means decoding, checking, hashing and thumbnailing it: CPU work
that must neither block the event loop (it sends the paid requests) nor pile images up
in memory. :class:`Writers` owns the threads that do it and the permits that bound it;
:class:`~pipeline.runner.delivery.Delivery` is what each one does. Split from the maker
(:mod:`pipeline.runner.making`), which decides *what* a job needs, so each reads on its own.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from pipeline.jobs import Job
from pipeline.postprocess import Sample
from pipeline.runner.delivery import Delivery, OriginalFacts
from pipeline.runner.guards import with_notes, writing
from pipeline.runner.outcome import Outcome, Status
from pipeline.store import Inspection

LOCAL_WORK = 8
"""Results written and inspected at once (waiting for, or in, the local pool): enough to
keep the pool busy, few enough that 2.5 MB images do not pile up in memory (a paid image
waiting for its turn is not held: see ``Maker._deliver_paid``)."""

T = TypeVar("T")


def local_workers() -> int:
    """Threads that write and inspect files: one per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 2


class Writers:
    """The threads that write and inspect a build's files, and the permits that bound them."""

    def __init__(self, delivery: Delivery, concurrency: int):
        self.delivery = delivery
        self.permits = asyncio.Semaphore(min(concurrency, LOCAL_WORK))
        """Files being written and inspected at once (API results, cache copies, renditions,
        sheets): bounds the images held in memory whatever the API or the cache delivers."""
        self.pool = ThreadPoolExecutor(local_workers(), thread_name_prefix="assetpipe-local")
        """Where files are written and inspected: CPU-bound work, one thread per core, apart
        from the default executor's threads that wait on the network and on fsync."""
        self.copier = ThreadPoolExecutor(1, thread_name_prefix="assetpipe-copy")
        """Where files are copied from the cache with the memo's inspection: mostly system
        calls, which one thread makes faster than several fighting over the interpreter
        (a restore of 400 files spends a third less CPU)."""

    async def deliver(
        self,
        job: Job,
        status: Status,
        key: str,
        data: bytes,
        original: bytes | OriginalFacts | None,
        inputs: list[str],
        *,
        inherited: Sequence[Mapping[str, Any]] = (),
        atlas: bytes | None = None,
        sha256: str | None = None,
        sample: Sample | None = None,
        **fields: Any,
    ) -> Outcome:
        """Write a delivered file (and a sheet's atlas), inspect it, and say what happened.

        ``inherited`` is what a rendition takes from its source's checks. ``sha256`` (of
        ``data``, verified) and ``sample`` (its pixels, decoded) are what the caller
        already knows, so nothing is hashed or decoded twice."""
        store = functools.partial(
            self.store,
            job,
            status,
            key,
            data,
            original,
            inputs,
            inherited=inherited,
            atlas=atlas,
            sha256=sha256,
            sample=sample,
            fields=fields,
        )
        return await self.local(store)

    def store(
        self,
        job: Job,
        status: Status,
        key: str,
        data: bytes,
        original: bytes | OriginalFacts | None,
        inputs: list[str],
        *,
        inherited: Sequence[Mapping[str, Any]] = (),
        atlas: bytes | None,
        sha256: str | None,
        sample: Sample | None = None,
        known: Inspection | None = None,
        fields: Mapping[str, Any],
        notes: list[str] | None = None,
    ) -> Outcome:
        """:meth:`deliver`'s work, in a worker thread; ``notes`` are warnings about the
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

    async def local(self, work: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound local work (decode, inspect, write) in the pool sized to the cores."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, work, *args)

    async def restore(
        self, work: Callable[..., T | Callable[[], T] | None], *args: Any
    ) -> T | None:
        """Run a copy from the cache in the copying thread; when it leaves work to do (a
        callable: the inspection the memo does not know), that goes straight on to the
        pool sized to the cores. The event loop is woken once, with the result, instead of
        once to hand the inspection over and once more when it is done: a restore of
        hundreds of files would otherwise wait on the loop (busy with every other job)
        between its two halves, and pay a wake-up more each."""
        result: Future[T | None] = Future()

        def settle(inspected: Future[T]) -> None:
            if inspected.cancelled():  # the pool was shut down before it ran
                result.set_exception(CancelledError())
            elif (error := inspected.exception()) is not None:
                result.set_exception(error)
            else:
                result.set_result(inspected.result())

        def copy_then_inspect() -> None:
            if not result.set_running_or_notify_cancel():
                return  # the build stopped waiting: nothing to do
            try:
                found = work(*args)
                if callable(found):
                    self.pool.submit(found).add_done_callback(settle)
                    return
            except BaseException as exc:
                result.set_exception(exc)
                return
            result.set_result(found)

        started = self.copier.submit(copy_then_inspect)
        started.add_done_callback(lambda copying: copying.cancelled() and result.cancel())
        return await asyncio.wrap_future(result)

    def close(self) -> None:
        """Wait for the local work under way (files being written) and stop the threads."""
        self.copier.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)
