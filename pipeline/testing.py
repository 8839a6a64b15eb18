"""Test doubles for plugin authors and for assetpipe's own tests.

Code that takes a clock, a :class:`~pipeline.store.ResultStore` or a
:class:`~pipeline.jobs.Provider` can be tested without time passing, without files and
without paying, the way ``structlog.testing`` and httpx's ``MockTransport`` let their users
test against the real interfaces:

- :class:`FakeClock`: a clock where time moves only when the code under test sleeps;
- :class:`MemoryStore`: a result store in memory, held to the same contract as the disk
  store;
- :class:`ScriptedProvider`: a provider that answers from a script and keeps every
  request it was sent.

They are public and versioned with the package: the names in ``__all__`` change only
with a changelog entry. The same doubles test assetpipe itself, so they cannot drift from
the interfaces they stand in for.

This module sits beside the checks, the gallery and the sheets in the layers: it needs
only the provider and store contracts (:mod:`pipeline.jobs`, :mod:`pipeline.store`) and
the offline preview provider, never the runner, the settings or the API, so a plugin's
tests do not load the composition root. Nothing in ``pipeline`` imports it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.jobs import ImageRequest, ImageResult, Provider, ProviderFailure
from pipeline.providers.preview import PreviewProvider
from pipeline.store.base import (
    CacheRecord,
    encode_meta,
    is_blob_name,
    parse_record,
    with_request,
)

__all__ = ["FakeClock", "MemoryStore", "ScriptedProvider"]


class FakeClock:
    """The clock and sleep the runner is given (``clock=fake, sleep=fake.sleep``), on
    which time moves only when the code under test sleeps.

    A retry after a 600 s ``Retry-After`` then takes no time, and the test can assert on
    what was waited for: ``sleeps`` lists every sleep in order, ``now`` is their sum. A
    test moves time without a sleep (answers coming back, say) by adding to ``now``.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        """The current time, in seconds since the clock was made."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Record ``seconds`` and advance the time by it, then yield to the event loop
        once, as a real sleep would, so other tasks run in between."""
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class MemoryStore:
    """A :class:`~pipeline.store.ResultStore` kept in two dicts: each record as its
    stored fields, and the bytes by sha256.

    It builds and reads its records the way the real stores do (``with_request``,
    ``encode_meta``, ``parse_record``), so it keeps the same promises: a record whose
    request does not hash to its key is a miss, blob names are never paths, and bytes are
    checked against their sha256 on every read. assetpipe's store contract tests run
    against it and the disk store alike.

    ``calls`` names each operation as it was called, for tests of what code asks of a
    store; :meth:`plant` writes a raw record, as a damaged or hostile store would hold
    one. It is thread-safe, as the protocol requires: the runner commits from its writer
    threads.
    """

    def __init__(self) -> None:
        self.rows: dict[str, tuple[object, object, object]] = {}
        """Each record's stored fields by key: blob name, original's name, metadata JSON."""
        self.blobs: dict[str, bytes] = {}
        self.calls: list[str] = []
        self.closed = False
        self._lock = threading.RLock()

    def lookup(self, request: CacheRequest) -> CacheRecord | None:
        """The well-formed record of ``request`` whose delivered bytes are here."""
        with self._lock:
            self.calls.append("lookup")
            row = self.rows.get(request.key)
            record = parse_record(request.key, *row) if row is not None else None
            if record is None or record.blob not in self.blobs:
                return None
            return record

    def get(self, request: CacheRequest) -> tuple[CacheRecord, bytes] | None:
        """The record of ``request`` and its delivered bytes, verified; None on a miss."""
        with self._lock:
            self.calls.append("get")
            record = self.lookup(request)
            data = self.read_blob(record.blob) if record is not None else None
            return None if record is None or data is None else (record, data)

    def read_blob(self, sha: str) -> bytes | None:
        """The bytes whose sha256 is ``sha``; None when absent, altered or not a blob name."""
        with self._lock:
            self.calls.append("read_blob")
            data = self.blobs.get(sha) if is_blob_name(sha) else None
            return data if data is not None and sha256_bytes(data) == sha else None

    def commit(
        self,
        request: CacheRequest,
        delivered: bytes,
        original: bytes | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CacheRecord:
        """Keep a result of ``request``: the bytes, then the record (ValueError, and
        nothing kept, for metadata a record may not hold). Returns the record kept."""
        with self._lock:
            self.calls.append("commit")
            blob = sha256_bytes(delivered)
            original_sha = sha256_bytes(original) if original is not None else None
            record = CacheRecord(
                blob=blob,
                original=original_sha if original_sha != blob else None,
                meta=with_request(request, meta),
            )
            text = encode_meta(request.key, record.meta or {})
            self.blobs[blob] = delivered
            if original is not None and record.original is not None:
                self.blobs[record.original] = original
            self.rows[request.key] = (record.blob, record.original, text)
            return record

    def plant(self, key: str, blob: object, original: object, meta: object) -> None:
        """Store raw fields under ``key`` without any check, the way a damaged index or a
        planted record would hold them, to test that readers treat them as a miss."""
        with self._lock:
            self.rows[key] = (blob, original, meta)

    def close(self) -> None:
        """Mark the store closed (``closed``); it holds nothing to release."""
        self.closed = True


class ScriptedProvider:
    """A :class:`~pipeline.jobs.Provider` that answers from a script and keeps every
    request it was sent, for testing what code does with a provider's answers (retries,
    waits, failures) without a network or a bill.

    Each request that matches (any request, or only those with the prompt ``prompt``)
    takes the next answer of ``script``: an :class:`~pipeline.jobs.ImageResult` is
    returned, a :class:`~pipeline.jobs.ProviderFailure` raised. Other requests, and every
    request once the script is used up, go to ``otherwise``, by default the offline
    preview provider, which draws a real image of the size and format asked for, so a
    whole build can run on a script of just the failures under test.
    """

    def __init__(
        self,
        script: Iterable[ImageResult | ProviderFailure] = (),
        *,
        prompt: str | None = None,
        otherwise: Provider | None = None,
        name: str = "scripted",
    ) -> None:
        self.name = name
        self.script: deque[ImageResult | ProviderFailure] = deque(script)
        """The answers not given yet."""
        self.prompt = prompt
        self.otherwise: Provider = PreviewProvider() if otherwise is None else otherwise
        self.requests: list[ImageRequest] = []
        self.closed = False

    @property
    def prompts(self) -> list[str]:
        """The prompt of every request sent, in order (what most assertions need)."""
        return [request.prompt for request in self.requests]

    async def generate(self, request: ImageRequest) -> ImageResult:
        """Record ``request``, then give the script's next answer when it matches, else
        the answer of ``otherwise``."""
        self.requests.append(request)
        if self.script and (self.prompt is None or request.prompt == self.prompt):
            answer = self.script.popleft()
            if isinstance(answer, ProviderFailure):
                raise answer
            return answer
        return await self.otherwise.generate(request)

    async def aclose(self) -> None:
        """Close ``otherwise`` and mark this provider closed (``closed``)."""
        await self.otherwise.aclose()
        self.closed = True
