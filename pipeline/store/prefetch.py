"""Asking a far shared cache about a plan's results at once, and copying its hits here.

A shared store may be far away (a bucket in another region: tens of milliseconds a round
trip), and a plan asks about hundreds of keys. Asked one at a time, that is seconds of
waiting on the link and nothing else; so :meth:`Prefetcher.prefetch` asks about a plan's
requests before they are looked up one by one, a bounded number at a time, and with
``fetch`` (a build) downloads the hits into the local store, as many bytes at once as
:data:`FETCH_BYTES` allows (:mod:`pipeline.store.inflight`): on one event loop when the
shared store reads as coroutines (:mod:`pipeline.store.downloads`), else in threads.
Those downloads go on in the background while the build starts restoring: the layered
store's ``get`` of a result waits for its own (:meth:`Prefetcher.wait_for`).

Every answer goes through the shared store's own reads, so what they verify (the record
made from its request, the bytes hashing to their name, the size caps) is verified here
too; every failure is a warning, said once, and a miss.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol, TypeVar

from pipeline.errors import PipelineError
from pipeline.hashing import CacheRequest
from pipeline.store.base import CacheRecord, ResultStore
from pipeline.store.downloads import Landed, LoopDownloads, reads_async
from pipeline.store.facts_exchange import FactsExchange
from pipeline.store.inflight import ByteBudget
from pipeline.store.local import LocalStore

T = TypeVar("T")
A = TypeVar("A")


class Ask(Protocol):
    """How the shared store is asked: ``call(arg)``, its failures a warning and None."""

    def __call__(self, call: Callable[[A], T], arg: A, /) -> T | None: ...


LOOKUPS_IN_FLIGHT = 128
"""Shared lookups asked at once by :meth:`Prefetcher.prefetch`. A lookup is two small
requests one after the other (the record, then the size of its image), bound by the
round trip, not by bandwidth: a plan of 400 jobs costs 7 round trips instead of 800
(measured at 20 ms each way, 400 lookups: 64 at once 1.5 s, 128 at once 1.0 s, 256 no
better: past that the server's own queue is the wait)."""
FETCHES_IN_FLIGHT = 128
"""Shared results downloaded at once with ``fetch`` (each its image and, with the team's
secret, its sealed inspection, asked together: twice as many requests). Memory is bounded
by :data:`FETCH_BYTES`, not by this count: a download waits, once its image's size is
known and before its body is read, until the images held leave room for it."""
LISTING_FROM = 32
"""Lookups from which :meth:`Prefetcher.prefetch` lists the shared images (a page of
1,000 names a request) instead of asking about each one's size: as many pages as the
lookups take rounds of :data:`LOOKUPS_IN_FLIGHT`, read while the records are, so a team
bucket too large to list in that time costs a plan a few round trips, not a page each."""
FETCH_BYTES = 80 * 1024 * 1024
"""Bytes of shared images held at once by the downloads of ``fetch`` (32 real ~2.5 MB
images, or every one of a plan's small ones); one image may go over it (see
:class:`~pipeline.store.inflight.ByteBudget`)."""
HANDED_BYTES = 16 * 1024 * 1024
"""Bytes of downloaded images kept in memory for the build's ``get`` (see
:meth:`Prefetcher.take`); past that, ``get`` reads them back from the local store.
With :data:`FETCH_BYTES`, what an assemble holds of images is bounded (six real ~2.5 MB
images waiting, or hundreds of small ones)."""


class Prefetcher:
    """What the shared tier answered about a plan's requests, and the copies of its hits
    into the local store. ``ask`` calls the shared store (its failures a warning and a
    miss), ``warn_once`` says a message once; ``facts``, with the team's secret, reads
    what inspecting each copied image found. Safe to share between threads."""

    def __init__(
        self,
        local: LocalStore,
        remote: ResultStore,
        facts: FactsExchange | None,
        ask: Ask,
        warn_once: Callable[[str], None],
    ):
        self.local = local
        self.remote = remote
        self.facts = facts
        self._ask = ask
        self._warn_once = warn_once
        self._lock = threading.Lock()
        self.known: dict[str, CacheRecord | None] = {}
        """What :meth:`prefetch` learnt of the shared tier, by key (None: a miss), for
        keys the local store did not hold then and have not been written since
        (:meth:`forget`); a shared hit it downloaded is in the local store instead."""
        self._budget = ByteBudget(FETCH_BYTES)
        self._downloads: ThreadPoolExecutor | None = None
        reads = reads_async(remote)
        self._on_loop = (
            None
            if reads is None
            else LoopDownloads(
                reads,
                self._keep,
                warn_once,
                facts=facts is not None,
                at_once=FETCHES_IN_FLIGHT,
                budget=FETCH_BYTES,
            )
        )
        """Where a store whose reads are coroutines downloads (see
        :mod:`pipeline.store.downloads`); other stores' downloads run in threads."""
        self._pending: dict[str, Future[None]] = {}
        """Downloads under way in the background, by key (see :meth:`prefetch`)."""
        self._reserving = _takes_reserve(remote)
        """Whether the shared store's reads say an image's size before downloading it."""
        self._handed: dict[str, tuple[CacheRecord, bytes]] = {}
        """Downloads copied into the local store, record and verified bytes, until the
        build takes them (:meth:`take`): within :data:`HANDED_BYTES`."""
        self._handed_bytes = 0

    def close(self) -> None:
        """Stop the downloads (on the loop, every one not kept yet; in threads, those not
        started, waiting for those under way) and drop the images no one took."""
        if self._on_loop is not None:
            self._on_loop.close()
        if self._downloads is not None:
            self._downloads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._handed.clear()
            self._handed_bytes = 0

    def wait_for(self, key: str) -> None:
        """Return once the background download of ``key`` (if any) is over."""
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None:
            wait([pending])

    def forget(self, key: str) -> None:
        """The local store holds ``key`` now: what was learnt of it no longer counts."""
        with self._lock:
            self.known.pop(key, None)
            self._drop_handed(key)

    def take(self, key: str) -> tuple[CacheRecord, bytes] | None:
        """The result of ``key`` as its background download left it (the record the local
        store now holds, and the bytes checked against their sha256 as they arrived),
        once: the build's ``get`` then neither reads the image back from the disk nor
        hashes it again. None when it was not kept (a local result, or past
        :data:`HANDED_BYTES`)."""
        with self._lock:
            return self._drop_handed(key)

    def _drop_handed(self, key: str) -> tuple[CacheRecord, bytes] | None:
        handed = self._handed.pop(key, None)
        if handed is not None:
            self._handed_bytes -= len(handed[1])
        return handed

    def _hand_over(self, key: str, record: CacheRecord, data: bytes) -> None:
        """Keep a download's result for :meth:`take`, when there is room and nothing was
        committed under its key meanwhile (:meth:`forget`)."""
        with self._lock:
            if self.known.pop(key, None) is None:
                return
            if self._handed_bytes + len(data) <= HANDED_BYTES:
                self._drop_handed(key)
                self._handed[key] = (record, data)
                self._handed_bytes += len(data)

    def prefetch(self, requests: Iterable[CacheRequest], *, fetch: bool = False) -> None:
        """Ask the shared tier about many requests at once, before they are looked up one
        at a time: each request not in the local store is looked up by
        :data:`LOOKUPS_IN_FLIGHT` workers, so a far bucket costs a plan a few round trips,
        not two a job (from :data:`LISTING_FROM` lookups, the images' sizes come from a
        listing read meanwhile, not from a request each). With ``fetch`` (a build), only
        the records are read before this returns; the hits' images are then downloaded
        into the local store in the background (see :meth:`_download_later`) while the
        build starts restoring, and ``get`` waits for the one it asks for. Every answer
        goes through the shared store's own reads, so what they verify (the record made
        from its request, the bytes hashing to their name, the size caps) is verified
        here too.

        What is learnt answers later lookups (and ``get`` of a miss) for the rest of this
        store's life: a result shared meanwhile by another machine is seen by the next
        command, and if this build pays for it too, the shared store keeps the first
        result and this machine adopts it (the layered store's ``commit``). Memory: one
        record per shared hit not downloaded yet, a key per miss, twice the workers'
        requests waiting at once, and the downloads' images (at most :data:`FETCH_BYTES`,
        and one more)."""
        todo = self._unknown(requests)
        if not todo:
            return
        if fetch and callable(getattr(self.remote, "record", None)):
            self._asked(self._record_one, todo, LOOKUPS_IN_FLIGHT)
            self._download_later([r for r in todo if self.known.get(r.key) is not None])
            return
        if fetch:
            self._asked(self._fetch_one, todo, FETCHES_IN_FLIGHT)
            return
        listing = self._listing(len(todo))
        try:
            self._asked(lambda r: self._lookup_one(r, listing), todo, LOOKUPS_IN_FLIGHT)
        finally:
            if listing is not None:
                listing.cancel()

    def _listing(self, lookups: int) -> Future[Mapping[str, int] | None] | None:
        """The shared images' sizes, listed in the background (see :data:`LISTING_FROM`),
        or None when not worth it or the shared store cannot list them."""
        sizes = getattr(self.remote, "blob_sizes", None)
        if lookups < LISTING_FROM or not callable(sizes):
            return None
        pages = -(-lookups // LOOKUPS_IN_FLIGHT)
        listing: Future[Mapping[str, int] | None] = Future()

        def run() -> None:
            if listing.set_running_or_notify_cancel():
                listing.set_result(self._ask(sizes, pages))

        threading.Thread(target=run, name="assetpipe-list", daemon=True).start()
        return listing

    def _asked(
        self, ask: Callable[[CacheRequest], None], todo: list[CacheRequest], at_once: int
    ) -> None:
        """``ask`` about every request of ``todo``, ``at_once`` at a time; returns when all
        are answered."""
        workers = min(len(todo), at_once)
        with ThreadPoolExecutor(workers, thread_name_prefix="assetpipe-shared") as pool:
            waiting: set[Future[None]] = set()
            for request in todo:
                if len(waiting) >= 2 * workers:
                    done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                waiting.add(pool.submit(ask, request))
            for future in waiting:
                future.result()

    def _unknown(self, requests: Iterable[CacheRequest]) -> list[CacheRequest]:
        """The requests, once each, that neither tier has answered yet."""
        todo: dict[str, CacheRequest] = {}
        for request in requests:
            key = request.key
            if key in todo or key in self.known:
                continue
            if self.local.lookup(request) is None:
                todo[key] = request
        return list(todo.values())

    def _record_one(self, request: CacheRequest) -> None:
        found = self._ask(self.remote.record, request)  # type: ignore[attr-defined]
        with self._lock:
            self.known[request.key] = found

    def _download_later(self, hits: list[CacheRequest]) -> None:
        """Download the images of these shared hits (their records known) into the local
        store in the background, :data:`FETCHES_IN_FLIGHT` at a time within
        :data:`FETCH_BYTES`; until one is done, ``lookup`` answers with its record and
        ``get`` waits for it. An image missing or corrupt makes its key a miss."""
        if not hits:
            return
        with self._lock:
            if self._on_loop is not None:
                records = [(r, record) for r in hits if (record := self.known.get(r.key))]
                self._pending.update(self._on_loop.start(records))
                return
            if self._downloads is None:
                self._downloads = ThreadPoolExecutor(
                    FETCHES_IN_FLIGHT, thread_name_prefix="assetpipe-fetch"
                )
            for request in hits:
                self._pending[request.key] = self._downloads.submit(self._fetch_known, request)

    def _fetch_known(self, request: CacheRequest) -> None:
        key = request.key
        record = self.known.get(key)
        if record is None:  # pragma: no cover - only hits are downloaded
            return
        try:
            with self._budget.holding() as reserve:
                self._copy_known(request, record, reserve)
        except Exception as exc:  # left for the build to meet on this job alone
            self._warn_once(f"cannot copy a shared cache entry ({type(exc).__name__}: {exc})")

    def _copy_known(
        self, request: CacheRequest, record: CacheRecord, reserve: Callable[[int], None]
    ) -> None:
        """Download a known shared record's images (verified by their sha256) and its
        sealed inspection, and keep them."""
        data = self._read_reserving(record.blob, reserve)
        original = None
        if data is not None and record.original:
            original = self._read_reserving(record.original, reserve)
        sealed = None
        if data is not None and self.facts is not None:
            sealed = self._ask(self.facts.remote.read_facts, record.blob)
        self._keep(request, record, Landed(data, original, sealed))

    def _keep(self, request: CacheRequest, record: CacheRecord, landed: Landed) -> None:
        """Copy a downloaded shared result into the local store, learn its inspection, and
        hand it to the build; a record whose delivered image could not be read becomes a
        miss."""
        key = request.key
        data, original = landed.data, landed.original
        if data is None:
            if not getattr(self.remote, "down", False):  # a lost store was said once
                self._warn_once(f"shared cache entry {key[:12]} has no usable image; ignoring it")
            with self._lock:
                self.known[key] = None
            return
        kept = self._committed(request, record, data, original)
        if kept is None:
            return
        if self.facts is not None:  # before the build may deliver it: see ``get``
            self.facts.learn_sealed(record.blob, landed.sealed)
        self._hand_over(key, kept, data)

    def _committed(
        self, request: CacheRequest, record: CacheRecord, data: bytes, original: bytes | None
    ) -> CacheRecord | None:
        """A shared result's verified bytes committed to the local store (not synced: a
        copy lost to a crash fails its sha256 and is downloaded again), and the record it
        keeps; None, with a warning, when the API's original image was lost or the local
        store cannot take it."""
        key = request.key
        if record.original and original is None:
            self._warn_once(
                f"shared cache entry {key[:12]} lost the API's original image; "
                "it is not copied to the local cache"
            )
            return None
        try:
            return self.local.commit(
                request, data, original, record.meta, durable=False, verified=record
            )
        except (OSError, PipelineError) as exc:
            self._warn_once(f"cannot copy shared cache entry {key[:12]} to the local cache: {exc}")
            return None

    def _read_reserving(self, sha: str, reserve: Callable[[int], None]) -> bytes | None:
        """A shared blob, ``reserve`` told its size first when the store can say it."""
        if self._reserving:
            read = self.remote.read_blob
            return self._ask(lambda name: read(name, reserve=reserve), sha)  # type: ignore[call-arg]
        return self._ask(self.remote.read_blob, sha)

    def _lookup_one(
        self, request: CacheRequest, listing: Future[Mapping[str, int] | None] | None = None
    ) -> None:
        if listing is None:
            found = self._ask(self.remote.lookup, request)
        else:
            ask = self.remote.lookup
            found = self._ask(lambda r: ask(r, listed=listing.result), request)  # type: ignore[call-arg]
        with self._lock:
            self.known[request.key] = found

    def _fetch_one(self, request: CacheRequest) -> None:
        try:
            with self._budget.holding() as reserve:
                hit, copied = self.copy(request, reserve)
        except Exception as exc:  # left for the build to meet on this job alone
            self._warn_once(f"cannot copy a shared cache entry ({type(exc).__name__}: {exc})")
            return
        if not copied:  # a miss, or a hit the local store could not take
            with self._lock:
                self.known[request.key] = None if hit is None else hit[0]

    def copy(
        self, request: CacheRequest, reserve: Callable[[int], None] | None
    ) -> tuple[tuple[CacheRecord, bytes] | None, bool]:
        """Copy the shared result of ``request`` into the local store: its record and
        verified bytes (None: a miss) and whether they were copied (see
        :meth:`_committed`); ``reserve`` is told each image's size before it is
        downloaded."""
        key = request.key
        if reserve is not None and self._reserving:
            shared = self._ask(lambda r: self.remote.get(r, reserve=reserve), request)  # type: ignore[call-arg]
        else:
            shared = self._ask(self.remote.get, request)
        if shared is None:
            return None, False
        record, data = shared
        original = None
        if record.original and reserve is not None:
            original = self._read_reserving(record.original, reserve)
        elif record.original:
            original = self._ask(self.remote.read_blob, record.original)
        kept = self._committed(request, record, data, original)
        if kept is None:
            return shared, False
        if self.facts is not None:
            self.facts.learn(record.blob)
        self.forget(key)
        return (kept, data), True


def _takes_reserve(store: ResultStore) -> bool:
    """Whether ``store``'s ``get`` and ``read_blob`` take ``reserve`` (an object store's
    do: see :meth:`pipeline.store.remote.ObjectStore.get`)."""
    try:
        return all(
            "reserve" in inspect.signature(method).parameters
            for method in (store.get, store.read_blob)
        )
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return False
