"""A build's shared hits downloaded on one event loop, each kept where it lands.

A build that finds its results in a far bucket downloads hundreds of images at once,
each a wait on the link. As threads, a hundred of them wake for the interpreter as their
answers arrive, and the build's restores (copying the same images into ``output/``) get a
small share of it: they fall behind and finish after the last download. obstore's reads
are futures of its own runtime, so :class:`LoopDownloads` awaits them on one event loop
in a thread of its own: the answers land there one after another, each is kept (written
to the local store by the caller's ``keep``) where it lands, and the restores run beside
that one thread instead of a hundred.

A result's image and its sealed inspection are asked for at once (one round trip, not
two); memory is bounded by a :class:`~pipeline.store.inflight.LoopBudget` of bytes, and
requests by ``at_once``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import NamedTuple, Protocol, cast

from pipeline.hashing import CacheRequest
from pipeline.store.base import CacheRecord
from pipeline.store.inflight import AsyncReserve, LoopBudget


class AsyncReads(Protocol):
    """A shared store's reads as coroutines (:class:`~pipeline.store.remote.ObjectStore`'s),
    which never raise: a failure is None (and the store's to say)."""

    async def read_blob_async(
        self, sha: str, *, reserve: AsyncReserve | None = None
    ) -> bytes | None: ...

    async def read_facts_async(self, sha: str) -> bytes | None: ...


def reads_async(store: object) -> AsyncReads | None:
    """``store`` when it reads as coroutines, else None (its reads block: downloaded in
    threads)."""
    reads = ("read_blob_async", "read_facts_async")
    if all(inspect.iscoroutinefunction(getattr(store, name, None)) for name in reads):
        return cast(AsyncReads, store)
    return None


class Landed(NamedTuple):
    """What a shared result's download brought."""

    data: bytes | None
    """The delivered image, verified; None when missing or unusable."""
    original: bytes | None
    """The API's own image, when the record names one and it could be read."""
    sealed: bytes | None
    """The sealed inspection of ``data`` (unverified), when asked for and there."""


Keep = Callable[[CacheRequest, CacheRecord, Landed], None]
"""Keeps a download (writes it to the local store); runs on the downloads' loop."""


class LoopDownloads:
    """Downloads of shared hits awaited on one event loop in a thread of its own
    (``assetpipe-fetch``, started on first use), ``at_once`` requests at a time within
    ``budget`` bytes; each landed result is handed to ``keep`` on that thread. ``facts``:
    whether each image's sealed inspection is asked for too."""

    def __init__(
        self,
        remote: AsyncReads,
        keep: Keep,
        warn_once: Callable[[str], None],
        *,
        facts: bool,
        at_once: int,
        budget: int,
    ) -> None:
        self.remote = remote
        self._keep = keep
        self._warn_once = warn_once
        self._facts = facts
        self._at_once = at_once
        self._limit = budget
        self.budget = LoopBudget(budget)
        self._requests = asyncio.Semaphore(at_once)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        """Downloads not over yet (touched on the loop alone)."""

    def start(self, hits: list[tuple[CacheRequest, CacheRecord]]) -> dict[str, Future[None]]:
        """Download ``hits`` (first asked first); a future by key, done once that download
        is kept or given up (a warning), cancelled when :meth:`close` stops it first."""
        landed: dict[str, Future[None]] = {request.key: Future() for request, _ in hits}
        with self._lock:
            if self._loop is None:  # a loop's own budget and bounds: they wait on it
                self.budget = LoopBudget(self._limit)
                self._requests = asyncio.Semaphore(self._at_once)
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="assetpipe-fetch", daemon=True
                )
                self._thread.start()
            self._loop.call_soon_threadsafe(self._schedule, hits, landed)
        return landed

    def close(self) -> None:
        """Stop every download not kept yet (nothing half-kept: ``keep`` runs whole) and
        the loop's thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._cancel_all(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _schedule(
        self, hits: list[tuple[CacheRequest, CacheRecord]], landed: dict[str, Future[None]]
    ) -> None:
        loop = asyncio.get_running_loop()
        for request, record in hits:
            task = loop.create_task(self._download(request, record))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._settle, landed[request.key]))

    def _settle(self, landed: Future[None], task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            landed.cancel()
        elif (error := task.exception()) is not None:  # pragma: no cover - kept as a warning
            landed.set_exception(error)
        else:
            landed.set_result(None)

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _download(self, request: CacheRequest, record: CacheRecord) -> None:
        try:
            async with self.budget.holding() as reserve, self._requests:
                self._keep(request, record, await self._read(record, reserve))
        except Exception as exc:  # left for the build to meet on this job alone
            self._warn_once(f"cannot copy a shared cache entry ({type(exc).__name__}: {exc})")

    async def _read(self, record: CacheRecord, reserve: AsyncReserve) -> Landed:
        """The record's images (the delivered one, then the API's, reserved in turn) and,
        asked at the same time, its sealed inspection."""
        sealed = (
            asyncio.create_task(self.remote.read_facts_async(record.blob)) if self._facts else None
        )
        try:
            data = await self.remote.read_blob_async(record.blob, reserve=reserve)
            original = None
            if data is not None and record.original:
                original = await self.remote.read_blob_async(record.original, reserve=reserve)
            if data is None or sealed is None:
                return Landed(data, original, None)
            return Landed(data, original, await sealed)
        finally:
            if sealed is not None and not sealed.done():
                sealed.cancel()
