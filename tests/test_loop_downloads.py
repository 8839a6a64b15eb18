"""A build's shared hits are downloaded on one event loop and kept where they land.

These drive :class:`~pipeline.store.downloads.LoopDownloads` with a shared store of
coroutines that wait on events, never on a clock (a deadline exists only so that a
deadlock fails the test instead of hanging it); ``test_far_bucket`` runs it on a real
bucket through the layered store, as a build does.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import CancelledError, Future, wait

import pytest
from store_kit import req

from pipeline.hashing import CacheRequest
from pipeline.store import CacheRecord
from pipeline.store.downloads import Landed, LoopDownloads, reads_async
from pipeline.store.inflight import AsyncReserve

DEADLINE_S = 30.0


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Bucket:
    """A shared store of coroutines. ``facts_first``: an image is answered only once its
    sealed inspection was asked for (asked one after the other, it never would be);
    ``hold``: every image is asked and never answered."""

    def __init__(self, *, facts_first: bool = False, hold: bool = False) -> None:
        self.facts_first = facts_first
        self.hold = hold
        self.asked = threading.Event()
        """Set once an image was asked for (from the loop's thread)."""
        self._facts_asked: dict[str, asyncio.Event] = {}

    def _facts_event(self, name: str) -> asyncio.Event:
        return self._facts_asked.setdefault(name, asyncio.Event())

    async def read_blob_async(self, name: str, *, reserve: AsyncReserve | None = None) -> bytes:
        self.asked.set()
        await asyncio.sleep(0)  # an answer on its way: the other downloads run meanwhile
        if self.hold:
            await asyncio.Event().wait()
        if self.facts_first:
            await asyncio.wait_for(self._facts_event(name).wait(), DEADLINE_S)
        data = f"image {name[:8]}".encode()
        if reserve is not None:
            await reserve(len(data))
        return data

    async def read_facts_async(self, name: str) -> bytes:
        self._facts_event(name).set()
        return b"sealed " + name[:8].encode()


def start(
    bucket: Bucket, names: list[str], *, facts: bool
) -> tuple[LoopDownloads, dict[str, Landed], dict[str, str], dict[str, Future[None]]]:
    """Download one record a name; what each keep got, and on which thread."""
    landed: dict[str, Landed] = {}
    threads: dict[str, str] = {}

    def keep(request: CacheRequest, record: CacheRecord, got: Landed) -> None:
        landed[record.blob] = got
        threads[record.blob] = threading.current_thread().name

    reads = reads_async(bucket)
    assert reads is not None
    downloads = LoopDownloads(reads, keep, pytest.fail, facts=facts, at_once=4, budget=1 << 20)
    hits = [(req(name), CacheRecord(name, None, {})) for name in names]
    return downloads, landed, threads, downloads.start(hits)


def test_an_image_and_its_inspection_are_asked_for_at_once_and_kept_on_one_thread() -> None:
    names = [sha(str(i).encode()) for i in range(10)]
    downloads, landed, threads, futures = start(Bucket(facts_first=True), names, facts=True)
    try:
        done, _ = wait(futures.values(), DEADLINE_S)
        assert len(done) == len(names)
    finally:
        downloads.close()
    assert landed == {
        name: Landed(f"image {name[:8]}".encode(), None, b"sealed " + name[:8].encode())
        for name in names
    }
    assert set(threads.values()) == {"assetpipe-fetch"}
    assert downloads.budget.used == 0


def test_without_the_secret_no_inspection_is_asked_for() -> None:
    names = [sha(b"x")]
    downloads, landed, _, futures = start(Bucket(), names, facts=False)
    try:
        wait(futures.values(), DEADLINE_S)
    finally:
        downloads.close()
    assert landed == {names[0]: Landed(f"image {names[0][:8]}".encode(), None, None)}


def test_closing_cancels_the_downloads_not_kept_and_keeps_nothing() -> None:
    """A build that stops: its downloads under way are cancelled (their futures say so,
    so nothing waits for them), nothing is kept, and the thread ends."""
    bucket = Bucket(hold=True)
    downloads, landed, _, futures = start(bucket, [sha(b"a"), sha(b"b")], facts=True)
    assert bucket.asked.wait(DEADLINE_S)
    downloads.close()
    assert all(f.cancelled() for f in futures.values())
    with pytest.raises(CancelledError):
        next(iter(futures.values())).result()
    assert landed == {}
    assert downloads.budget.used == 0
    assert not any(t.name == "assetpipe-fetch" for t in threading.enumerate())


def test_a_store_of_blocking_reads_is_not_read_on_the_loop() -> None:
    class Blocking:
        def read_blob(self, sha: str) -> bytes | None:
            return None

    assert reads_async(Blocking()) is None


def test_downloads_started_again_after_closing_run_on_a_new_loop() -> None:
    """A second batch after :meth:`close` runs on a loop of its own, its bounds with it
    (more downloads than may run at once, so they wait on them)."""
    first = [sha(str(i).encode()) for i in range(10)]
    downloads, landed, threads, futures = start(Bucket(), first, facts=False)
    wait(futures.values(), DEADLINE_S)
    downloads.close()
    again = [sha(f"again {i}".encode()) for i in range(10)]
    hits = [(req(name), CacheRecord(name, None, {})) for name in again]
    more = downloads.start(hits)
    try:
        done, _ = wait(more.values(), DEADLINE_S)
        assert all(f.exception() is None for f in done) and len(done) == len(again)
    finally:
        downloads.close()
    assert set(landed) == {*first, *again}
    assert set(threads.values()) == {"assetpipe-fetch"}
