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

A shared store may be far away, and a plan asks about hundreds of keys:
:meth:`LayeredStore.prefetch` asks about them all at once first, and a build downloads the
hits in the background while it starts restoring (:mod:`pipeline.store.prefetch`);
``get`` of a result waits for its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
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
    SaidOnce,
)
from pipeline.store.facts_exchange import FactsExchange
from pipeline.store.local import LocalStore
from pipeline.store.prefetch import Prefetcher
from pipeline.store.sealed_facts import TeamSeal

log = logging.getLogger("assetpipe.cache")
T = TypeVar("T")
A = TypeVar("A")


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

    def __init__(
        self,
        local: LocalStore,
        remote: ResultStore,
        mode: RemoteMode = "read-write",
        *,
        seal: TeamSeal | None = None,
    ):
        if mode not in REMOTE_MODES:
            raise ValueError(f"remote cache mode must be one of {REMOTE_MODES}, not {mode!r}")
        self.local = local
        self.remote = remote
        self.mode: RemoteMode = mode
        self._said = SaidOnce(log)
        self.facts: FactsExchange | None = None
        """With the team's secret, what inspecting shared images found: read into the
        local memo as they are copied, and this machine's shared (read-write mode)."""
        if seal is not None and callable(getattr(remote, "read_facts", None)):
            self.facts = FactsExchange(
                remote,  # type: ignore[arg-type]
                local.memo,
                seal,
                self._ask,
                self._warn_once,
            )
        self.prefetched = Prefetcher(local, remote, self.facts, self._ask, self._warn_once)
        """What the shared tier answered about a plan's requests, and its hits' copies."""

    def __enter__(self) -> LayeredStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the downloads not started yet, wait for those under way, close both tiers."""
        self.prefetched.close()
        if self.facts is not None:
            self.facts.close()
        try:
            self.remote.close()
        finally:
            self.local.close()

    def prepare(self) -> None:
        """Make the local tier writable before a build's first paid call (the shared tier
        needs nothing: it is a convenience, checked on first use)."""
        self.local.prepare()

    def _warn_once(self, message: str) -> None:
        self._said.warn(message)

    def _ask(self, call: Callable[[A], T], arg: A) -> T | None:
        """A shared-store read; a failure is a miss with a warning."""
        try:
            return call(arg)
        except Exception as exc:
            self._warn_once(f"the shared cache failed ({type(exc).__name__}: {exc}); ignoring it")
            return None

    def when_lost(self, call: Callable[[str], None]) -> None:
        """Have ``call`` told, once, what went wrong when the shared tier is lost to the
        build (see :meth:`pipeline.store.remote.ObjectStore.when_lost`; a shared store
        that cannot say never tells)."""
        tell = getattr(self.remote, "when_lost", None)
        if callable(tell):
            tell(call)

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
        downloaded), as :meth:`prefetch` found it when it asked (then the local store,
        which did not hold it and has not been written since, is not asked again)."""
        key = request.key
        known = self.prefetched.known
        if key in known:
            return known[key]
        found = self.local.lookup(request)
        if found is not None:
            return found
        return self._ask(self.remote.lookup, request)

    def prefetch(self, requests: Iterable[CacheRequest], *, fetch: bool = False) -> None:
        """Ask the shared tier about many requests at once, before they are looked up one
        at a time; with ``fetch`` (a build), download its hits into the local store in
        the background (see :meth:`pipeline.store.prefetch.Prefetcher.prefetch`)."""
        self.prefetched.prefetch(requests, fetch=fetch)

    def get(self, request: CacheRequest) -> tuple[CacheRecord, bytes] | None:
        """The record and verified bytes for ``request``, local first; a shared hit is
        copied into the local store (when the API's original bytes can be read too)."""
        key = request.key
        self.prefetched.wait_for(key)  # its download may be under way
        handed = self.prefetched.take(key)
        if handed is not None:
            return handed
        hit = self.local.get(request)
        known = self.prefetched.known
        if hit is not None or (key in known and known[key] is None):
            return hit
        return self.prefetched.copy(request, None)[0]

    def _wrote(self, key: str) -> None:
        """The local store holds ``key`` now: what prefetch learnt of it no longer counts."""
        self.prefetched.forget(key)

    def read_blob(self, sha: str) -> bytes | None:
        """The bytes named ``sha``, local first; shared bytes are copied locally."""
        data = self.local.read_blob(sha)
        if data is not None:
            return data
        data = self._ask(self.remote.read_blob, sha)
        if data is not None:
            try:
                self.local.put_blob(data, durable=False)
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
        self._wrote(key)
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
    local: LocalStore,
    remote: ResultStore,
    mode: RemoteMode = "read-write",
    *,
    seal: TeamSeal | None = None,
) -> LayeredStore:
    """``local`` over the shared store ``remote`` in ``mode``; the remote is given, never
    chosen here (which store serves a URL is decided in ``pipeline.api.stores``). With the
    team's ``seal``, inspections travel with the images (see :attr:`LayeredStore.facts`),
    and in ``read-write`` mode the local memo shares this machine's."""
    layered = LayeredStore(local, remote, mode, seal=seal)
    if layered.facts is not None and mode == "read-write":
        local.memo.share_with(layered.facts.share)
    return layered
