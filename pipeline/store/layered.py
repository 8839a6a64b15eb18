"""The result store of a team: this machine's local store over the shared one.

Reads ask the local store first (no network, no cost), then the shared one; a shared hit
is copied into the local store as it is read, so this machine never downloads it again.
``lookup`` (what ``plan`` and freshness ask) only checks that the shared bytes are there,
so planning a build downloads no images.

Writes go to the local store first: a paid result is on this machine's disk before
anything leaves it, so no remote failure can lose it. Then, in ``read-write`` mode, to the
shared store, which keeps the first result committed under a key. When another machine
got there first, this store adopts that machine's record and bytes locally and returns
its record, so every machine delivers the same pixels (the caller delivers the returned
record's blob). In ``read-only`` mode (laptops, untrusted pull requests) nothing is ever
written to the shared store.

Every shared-store failure is a warning, said once, and the local answer stands: a down or
forbidding remote makes a build slower or dearer, never red.

A shared store may be far away (a bucket in another region: tens of milliseconds a round
trip), and a plan asks about hundreds of keys. Asked one at a time, that is seconds of
waiting on the link and nothing else; so :meth:`LayeredStore.prefetch` asks about a plan's
requests before they are looked up one by one, a bounded number at a time, and with
``fetch`` (a build) downloads the hits into the local store as it goes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.errors import PipelineError
from pipeline.hashing import CacheRequest
from pipeline.store.base import (
    REMOTE_MODES,
    CacheRecord,
    CacheStats,
    CountedStore,
    RemoteMode,
    RemoteUnavailable,
    ResultStore,
)
from pipeline.store.local import LocalStore

log = logging.getLogger("assetpipe.cache")
T = TypeVar("T")
A = TypeVar("A")

LOOKUPS_IN_FLIGHT = 64
"""Shared lookups asked at once by :meth:`LayeredStore.prefetch`. A lookup is two small
requests one after the other (the record, then the size of its image), bound by the
round trip, not by bandwidth: a plan of 400 jobs costs 13 round trips instead of 800
(measured at 100 ms each way: 32 at once left 5 s of waiting, 64 halve it)."""
FETCHES_IN_FLIGHT = 32
"""Shared results downloaded at once with ``fetch``: each worker holds at most one image
(a real one is ~2.5 MB, so ~80 MB at most), which bounds the memory a download takes."""


@dataclass(frozen=True, slots=True)
class TierStats:
    """One tier's line in ``assetpipe cache stats``."""

    tier: str
    """``local`` or ``shared``."""
    where: str
    """The cache folder, or the shared cache's URL."""
    mode: RemoteMode
    stats: CacheStats | None
    """None when the tier could not be counted (``problem`` says why)."""
    problem: str | None = None


class LayeredStore:
    """A :class:`ResultStore` reading local-then-shared and writing local-then-shared.

    ``remote`` is any ResultStore, built by the caller (in a build,
    :class:`~pipeline.store.remote.ObjectStore`, chosen by its URL's scheme in
    ``pipeline.api.stores``); its failures are warnings, never exceptions. Safe to share
    between worker threads as far as both tiers are.
    """

    def __init__(self, local: LocalStore, remote: ResultStore, mode: RemoteMode = "read-write"):
        if mode not in REMOTE_MODES:
            raise ValueError(f"remote cache mode must be one of {REMOTE_MODES}, not {mode!r}")
        self.local = local
        self.remote = remote
        self.mode: RemoteMode = mode
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self._known: dict[str, CacheRecord | None] = {}
        """What :meth:`prefetch` learnt of the shared tier, by key (None: a miss); a
        shared hit it downloaded is in the local store instead."""

    def __enter__(self) -> LayeredStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close both tiers."""
        try:
            self.remote.close()
        finally:
            self.local.close()

    def prepare(self) -> None:
        """Make the local tier writable before a build's first paid call (the shared tier
        needs nothing: it is a convenience, checked on first use)."""
        self.local.prepare()

    def _warn_once(self, message: str) -> None:
        with self._lock:
            if message in self._warned:
                return
            self._warned.add(message)
        log.warning("%s", message)

    def _ask(self, call: Callable[[A], T], arg: A) -> T | None:
        """A shared-store read; a failure is a miss with a warning."""
        try:
            return call(arg)
        except Exception as exc:
            self._warn_once(f"the shared cache failed ({type(exc).__name__}: {exc}); ignoring it")
            return None

    def health(self) -> str | None:
        """Why the shared tier cannot be relied on to be read (None: it can, or it cannot
        say); see :meth:`pipeline.store.remote.ObjectStore.health`."""
        check = getattr(self.remote, "health", None)
        if not callable(check):
            return None
        try:
            problem = check()
        except Exception as exc:
            return f"the shared cache failed ({type(exc).__name__}: {exc})"
        return problem if isinstance(problem, str) else None

    # -- reads ------------------------------------------------------------------------------

    def lookup(self, request: CacheRequest) -> CacheRecord | None:
        """The local record for ``request``, else the shared one (its bytes not
        downloaded), as :meth:`prefetch` found it when it asked."""
        found = self.local.lookup(request)
        if found is not None:
            return found
        key = request.key
        if key in self._known:
            return self._known[key]
        return self._ask(self.remote.lookup, request)

    def prefetch(self, requests: Iterable[CacheRequest], *, fetch: bool = False) -> None:
        """Ask the shared tier about many requests at once, before they are looked up one
        at a time: each request not in the local store is looked up (``fetch``: read and
        copied into the local store) by :data:`LOOKUPS_IN_FLIGHT` workers
        (:data:`FETCHES_IN_FLIGHT` with ``fetch``), so a far bucket costs a plan a few
        round trips, not two a job. Every answer goes through the shared store's own
        reads, so what they verify (the record made from its request, the bytes hashing
        to their name) is verified here too.

        What is learnt answers later lookups (and ``get`` of a miss) for the rest of this
        store's life: a result shared meanwhile by another machine is seen by the next
        command, and if this build pays for it too, the shared store keeps the first
        result and this machine adopts it (see :meth:`commit`). Memory: one record per
        shared hit not downloaded (none with ``fetch``), a key per miss, and at most
        twice the workers' requests waiting at once."""
        todo = self._unknown(requests)
        if not todo:
            return
        ask = self._fetch_one if fetch else self._lookup_one
        workers = FETCHES_IN_FLIGHT if fetch else LOOKUPS_IN_FLIGHT
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
            if key in todo or key in self._known:
                continue
            if self.local.lookup(request) is None:
                todo[key] = request
        return list(todo.values())

    def _lookup_one(self, request: CacheRequest) -> None:
        found = self._ask(self.remote.lookup, request)
        with self._lock:
            self._known[request.key] = found

    def _fetch_one(self, request: CacheRequest) -> None:
        try:
            hit = self.get(request)
        except Exception as exc:  # left for the build to meet on this job alone
            self._warn_once(f"cannot copy a shared cache entry ({type(exc).__name__}: {exc})")
            return
        if hit is None or self.local.lookup(request) is None:  # a miss, or not copied
            with self._lock:
                self._known[request.key] = None if hit is None else hit[0]

    def get(self, request: CacheRequest) -> tuple[CacheRecord, bytes] | None:
        """The record and verified bytes for ``request``, local first; a shared hit is
        copied into the local store (when the API's original bytes can be read too)."""
        key = request.key
        hit = self.local.get(request)
        if hit is not None or (key in self._known and self._known[key] is None):
            return hit
        shared = self._ask(self.remote.get, request)
        if shared is None:
            return None
        record, data = shared
        original = self._ask(self.remote.read_blob, record.original) if record.original else None
        if record.original and original is None:
            self._warn_once(
                f"shared cache entry {key[:12]} lost the API's original image; "
                "it is not copied to the local cache"
            )
            return shared
        try:
            return self.local.commit(request, data, original, record.meta), data
        except (OSError, PipelineError) as exc:
            self._warn_once(f"cannot copy shared cache entry {key[:12]} to the local cache: {exc}")
            return shared

    def read_blob(self, sha: str) -> bytes | None:
        """The bytes named ``sha``, local first; shared bytes are copied locally."""
        data = self.local.read_blob(sha)
        if data is not None:
            return data
        data = self._ask(self.remote.read_blob, sha)
        if data is not None:
            try:
                self.local.put_blob(data)
            except (OSError, PipelineError) as exc:
                self._warn_once(f"cannot copy shared image {sha[:12]} to the local cache: {exc}")
        return data

    # -- writes -----------------------------------------------------------------------------

    def commit(
        self,
        request: CacheRequest,
        delivered: bytes,
        original: bytes | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CacheRecord:
        """Keep a result locally, then share it (read-write mode). Returns the record now
        stored under the request's key: another machine's when it shared one first, then
        adopted locally with its bytes. A shared-store failure is a warning: the local
        result is kept and returned."""
        key = request.key
        record = self.local.commit(request, delivered, original, meta)
        if self.mode != "read-write":
            return record
        try:
            shared = self.remote.commit(request, delivered, original, meta)
        except RemoteUnavailable as exc:
            if not exc.logged:
                self._warn_once(str(exc))
            return record
        except Exception as exc:
            self._warn_once(
                f"the shared cache failed to take {key[:12]} ({type(exc).__name__}: {exc}); "
                "it is kept in the local cache"
            )
            return record
        if shared == record:
            return record
        if (shared.blob, shared.original) == (record.blob, record.original):
            return self.local.commit(request, delivered, original, shared.meta)
        return self._adopt(request, record)

    def _adopt(self, request: CacheRequest, ours: CacheRecord) -> CacheRecord:
        """Replace our local result for ``request`` by the one the shared store kept; ours
        stays when the winner's bytes cannot be read back (with a warning)."""
        key = request.key
        hit = self._ask(self.remote.get, request)
        winner = hit[0] if hit is not None else None
        original = None
        if winner is not None and winner.original is not None:
            original = self._ask(self.remote.read_blob, winner.original)
        if hit is None or winner is None or (winner.original and original is None):
            self._warn_once(
                f"another machine's result for {key[:12]} cannot be read from the shared "
                "cache; this machine keeps its own"
            )
            return ours
        log.info("cache entry %s: adopted the result another machine shared first", key[:12])
        return self.local.commit(request, hit[1], original, winner.meta)

    # -- maintenance ------------------------------------------------------------------------

    def tiers(self) -> tuple[TierStats, TierStats]:
        """Both tiers for ``assetpipe cache stats``; a shared tier that cannot be counted
        has no stats and says why."""
        local = TierStats("local", str(self.local.folder), "read-write", self.local.stats())
        where = str(self.remote)
        if not isinstance(self.remote, CountedStore):
            return local, TierStats("shared", where, self.mode, None, "it cannot be counted")
        try:
            return local, TierStats("shared", where, self.mode, self.remote.stats())
        except Exception as exc:
            return local, TierStats("shared", where, self.mode, None, str(exc))


def open_layered(
    local: LocalStore, remote: ResultStore, mode: RemoteMode = "read-write"
) -> LayeredStore:
    """``local`` over the shared store ``remote`` in ``mode``; the remote is given, never
    chosen here (which store serves a URL is decided in ``pipeline.api.stores``)."""
    return LayeredStore(local, remote, mode)
