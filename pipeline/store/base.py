"""What the runner asks of a result store, and the records every store exchanges.

The runner, freshness and the input reader depend on :class:`ResultStore` alone, never on
a concrete store: the local disk store is one implementation, the layered store (local
over the shared S3 cache, :mod:`pipeline.store.layered`) another,
behind the same protocol. So the protocol speaks only in keys, sha256 names and bytes. A
remote store has no file paths, and nothing outside a store may need one
(``LocalStore.blob_path`` and ``put_blob`` stay on the local store, for its own
maintenance and its tests).

A store's contents are untrusted input wherever they come from (a shared drive, a CI
artifact, a bucket): every store builds its records through :func:`parse_record`, so a
blob name is always a sha256 and never a path, metadata has the types the runner reads
back, and the request a record was made from hashes to the key it is stored under.

No store takes a bare key. It is given the request (:class:`~pipeline.hashing.CacheRequest`)
and files the result under the key computed from it, keeping the request in the record:
a key that came from a file (a stored plan, a journal line, another machine) can never
put a result under a request it was not made from, and a record planted under another
request's key is a miss.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pipeline.errors import EXIT_USAGE, PipelineError
from pipeline.hashing import CacheRequest, content_key

_BLOB_NAME = re.compile(r"[0-9a-f]{64}")
MAX_META_CHARS = 16 * 1024 * 1024
"""A record's JSON metadata is a few hundred bytes (a sheet's atlas a few kB); more is planted."""
_NUMBER = (int, float)
_META_TYPES: Mapping[str, tuple[type, ...]] = {
    "usage": (dict, type(None)),
    "cost_usd": _NUMBER,
    "request_id": (str, type(None)),
    "returned_size": (str, type(None)),
    "model": (str,),
    "kind": (str,),
    "atlas": (str,),
    "request": (dict,),
}
"""The metadata the runner reads back, and the types it relies on."""


class SaidOnce:
    """Warnings said once each, however often they are met (a build meets a damaged entry
    or a failing store once a job): what every store keeps. Safe to share between threads."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._said: set[str] = set()

    def first(self, message: str) -> bool:
        """Whether ``message`` is met for the first time (it counts as said from now)."""
        with self._lock:
            if message in self._said:
                return False
            self._said.add(message)
            return True

    def warn(self, message: str) -> None:
        """Log ``message`` as a warning, unless it was said already."""
        if self.first(message):
            self._log.warning("%s", message)


def is_blob_name(name: object) -> bool:
    """Whether ``name`` can name a blob: exactly 64 lowercase hex digits (a sha256)."""
    return isinstance(name, str) and _BLOB_NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """What a store keeps for one key.

    Blob names are checked on construction (ValueError otherwise): whatever store a
    record comes from, the names in it are sha256 digests, never paths.
    """

    blob: str
    """sha256 of the delivered bytes (what goes to ``output/``)."""
    original: str | None = None
    """sha256 of the bytes exactly as the API returned them, when they differ."""
    meta: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not is_blob_name(self.blob):
            raise ValueError(f"not a blob name: {self.blob!r}")
        if self.original is not None and not is_blob_name(self.original):
            raise ValueError(f"not a blob name: {self.original!r}")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What ``assetpipe cache stats`` shows."""

    entries: int
    blobs: int
    bytes: int


def meta_ok(meta: object) -> bool:
    """Whether ``meta`` is a JSON object whose known fields have the types the runner reads."""
    if not isinstance(meta, dict):
        return False
    for name, types in _META_TYPES.items():
        if name in meta:
            value = meta[name]
            if isinstance(value, bool) or not isinstance(value, types):
                return False
    return True


def with_request(request: CacheRequest, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """The metadata a store keeps for a result of ``request``: the caller's, plus the
    request itself (which the key is computed from, on every read)."""
    return {**(meta or {}), "request": dict(request.payload)}


def encode_meta(key: str, meta: Mapping[str, Any]) -> str:
    """The JSON text a store keeps for ``meta``; ValueError for metadata that
    :func:`parse_record` would refuse (what a store writes, it must read back)."""
    text = json.dumps(meta, ensure_ascii=False, sort_keys=True)
    if not meta_ok(meta) or len(text) > MAX_META_CHARS or not _made_from(meta, key):
        raise ValueError(f"cache metadata of {key[:12]} is not what a record may hold")
    return text


def _made_from(meta: Mapping[str, Any], key: str) -> bool:
    """Whether the request kept in ``meta`` hashes to ``key``."""
    request = meta.get("request")
    try:
        return isinstance(request, dict) and content_key(request) == key
    except (TypeError, ValueError, RecursionError):
        return False


def parse_record(key: str, blob: object, original: object, meta: object) -> CacheRecord | None:
    """A record from its three stored fields (two blob names and the metadata's JSON
    text), or None when any of them is malformed or the request it keeps does not hash
    to ``key`` (a record copied or planted under another request's key)."""
    if not is_blob_name(blob) or not (original is None or is_blob_name(original)):
        return None
    if not isinstance(meta, str) or len(meta) > MAX_META_CHARS:
        return None
    try:
        parsed = json.loads(meta)
    except (ValueError, RecursionError):
        return None
    if not meta_ok(parsed) or not _made_from(parsed, key):
        return None
    return CacheRecord(
        blob=str(blob), original=None if original is None else str(original), meta=parsed
    )


@runtime_checkable
class ResultStore(Protocol):
    """A content-addressed memo of paid results: cache key -> record -> blobs.

    All the runner needs: look a key up, read verified bytes by sha256, and commit a result
    the moment it arrives. Implementations are called from worker threads and must be
    thread-safe. A damaged or missing entry is a miss (None) with a warning, never a crash;
    returned bytes always hash to the name they were asked for.
    """

    def lookup(self, request: CacheRequest) -> CacheRecord | None:
        """The record for ``request`` when it is well-formed, was made from that request,
        and its delivered bytes are there."""
        ...

    def get(self, request: CacheRequest) -> tuple[CacheRecord, bytes] | None:
        """The record and the delivered bytes for ``request``, verified; None on a miss."""
        ...

    def read_blob(self, sha: str) -> bytes | None:
        """The bytes whose sha256 is ``sha``; None when missing, corrupt, or ``sha`` is
        not a blob name."""
        ...

    def commit(
        self,
        request: CacheRequest,
        delivered: bytes,
        original: bytes | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CacheRecord:
        """Keep a result of ``request`` under the key computed from it, with the request
        in the record: the bytes first, then the record, so no record ever names missing
        bytes. ``original`` is the API's bytes when delivery changed
        them. Metadata a record may not hold is a ValueError.

        Returns the record now stored under the key, which may be another writer's: a
        shared store keeps the first result committed under a key, so when two machines
        paid for one key at once, the one that lost the race gets the winner's record. The
        caller must deliver the returned record's blob (read it back by its sha256), not
        the bytes it passed in, so that every machine delivers the same pixels."""
        ...

    def close(self) -> None:
        """Release what the store holds open (connections, handles)."""
        ...


RemoteMode = Literal["read-write", "read-only"]
"""How a build uses the shared cache: ``read-write`` pushes what it pays for;
``read-only`` (laptops, untrusted pull requests) only ever reads."""
REMOTE_MODES: tuple[RemoteMode, ...] = ("read-write", "read-only")


class S3SupportMissing(PipelineError):
    """A shared cache is configured but the ``obstore`` package is not installed (exit 2).

    Defined here, not in :mod:`pipeline.store.remote`, so that it can be caught where
    that module cannot even be imported."""

    exit_code = EXIT_USAGE


class RemoteUnavailable(PipelineError):
    """A write to the shared cache failed (down, forbidden, read-only, or too large to
    share). The layered store turns it into a warning: the local result is kept.

    ``logged`` says the store already warned with this message, so it is said once."""

    def __init__(self, message: str, *, logged: bool = False):
        super().__init__(message)
        self.logged = logged


@runtime_checkable
class Prefetching(Protocol):
    """A store whose lookups may each cost a round trip to a far server (a shared bucket),
    and that can therefore be told about many requests at once, before they are asked
    about one by one. Optional: a caller checks for it and asks a plain store as ever."""

    def prefetch(self, requests: Iterable[CacheRequest], *, fetch: bool = False) -> None:
        """Learn what the store holds for ``requests`` (with ``fetch``, bring the results
        close too), so that the lookups and reads that follow are answered at once."""
        ...


@runtime_checkable
class CountedStore(Protocol):
    """A store that can count what it holds, for ``assetpipe cache stats``."""

    def stats(self) -> CacheStats:
        """Entries, blobs and bytes held."""
        ...
