"""A build's shared hits are downloaded on one event loop and kept where they land.

The unit tests drive :class:`~pipeline.store.downloads.LoopDownloads` with a shared store
of coroutines that wait on events, never on a clock (a deadline exists only so that a
deadlock fails the test instead of hanging it); the last ones run a real bucket
(SeaweedFS, started by the test session) through the layered store, as a build does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, wait
from pathlib import Path

import obstore
import pytest
from s3servers import S3Server
from store_kit import layered, req

from pipeline.hashing import CacheRequest
from pipeline.store import CacheRecord, LayeredStore, LocalStore
from pipeline.store.downloads import Landed, LoopDownloads, reads_async
from pipeline.store.inflight import AsyncReserve
from pipeline.store.remote import ObjectStore
from pipeline.store.shared_format import blob_path, parse_url

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
) -> tuple[LoopDownloads, dict[str, Landed], dict[str, str], dict[str, object]]:
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
    return downloads, landed, threads, dict(downloads.start(hits))


def test_an_image_and_its_inspection_are_asked_for_at_once_and_kept_on_one_thread() -> None:
    names = [sha(str(i).encode()) for i in range(10)]
    downloads, landed, threads, futures = start(Bucket(facts_first=True), names, facts=True)
    try:
        done, _ = wait(futures.values(), DEADLINE_S)  # type: ignore[arg-type]
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
        wait(futures.values(), DEADLINE_S)  # type: ignore[arg-type]
    finally:
        downloads.close()
    assert landed == {names[0]: Landed(f"image {names[0][:8]}".encode(), None, None)}


def test_closing_cancels_the_downloads_not_kept_and_keeps_nothing() -> None:
    """A build that stops: its downloads under way are cancelled (their futures say so,
    so nothing waits for them), nothing is kept, the bytes are given back, the thread ends."""
    bucket = Bucket(hold=True)
    downloads, landed, _, futures = start(bucket, [sha(b"a"), sha(b"b")], facts=True)
    assert bucket.asked.wait(DEADLINE_S)
    downloads.close()
    assert all(f.cancelled() for f in futures.values())  # type: ignore[attr-defined]
    with pytest.raises(CancelledError):
        next(iter(futures.values())).result()  # type: ignore[attr-defined]
    assert landed == {}
    assert downloads.budget.used == 0
    assert not any(t.name == "assetpipe-fetch" for t in threading.enumerate())


def test_a_store_of_blocking_reads_is_not_read_on_the_loop() -> None:
    class Blocking:
        def read_blob(self, sha: str) -> bytes | None:
            return None

    assert reads_async(Blocking()) is None


# -- through a real bucket ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


class Team:
    """Machines sharing one bucket and prefix of the session's SeaweedFS."""

    def __init__(self, server: S3Server, tmp_path: Path) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.url = server.url()
        self.stores: list[LayeredStore] = []

    def machine(self, name: str) -> LayeredStore:
        local = LocalStore(self.tmp_path / name / "cache")
        store = layered(local, self.url, environ=self.server.environ())
        self.stores.append(store)
        return store


@pytest.fixture
def team(seaweedfs_s3: S3Server, tmp_path: Path) -> Iterator[Team]:
    shared = Team(seaweedfs_s3, tmp_path)
    yield shared
    for store in shared.stores:
        store.close()


def test_a_builds_downloads_land_on_one_thread_verified(
    team: Team, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine B fetches what A shared: every copy is written to B's local store on the
    downloads' one thread; an image tampered with in the bucket, and one over the size
    cap, are misses with their warnings, as when read one at a time."""
    a = team.machine("a")
    images = {f"hit-{i}": f"image number {i}".encode() for i in range(8)}
    records = {
        name: a.commit(req(name), data, None, {"kind": "test"}) for name, data in images.items()
    }
    tampered = a.commit(req("tampered"), b"the real bytes", None, {"kind": "test"})
    root = f"{parse_url(team.url).prefix}/assetpipe-v1"
    obstore.put(team.server.raw(), f"{root}/{blob_path(tampered.blob)}", b"planted bytes")
    big = a.commit(req("big"), b"x" * 64, None, {"kind": "test"})
    monkeypatch.setattr("pipeline.store.remote.MAX_BLOB_BYTES", 32)

    writers: set[str] = set()
    commit = LocalStore.commit

    def watched(self: LocalStore, *args: object, **kwargs: object) -> CacheRecord:
        writers.add(threading.current_thread().name)
        return commit(self, *args, **kwargs)  # type: ignore[arg-type]

    b = team.machine("b")
    assert isinstance(b.remote, ObjectStore)
    monkeypatch.setattr(LocalStore, "commit", watched)
    b.prefetch([*(req(n) for n in images), req("tampered"), req("big")], fetch=True)
    for name, data in images.items():
        assert b.get(req(name)) == (records[name], data)
    assert b.get(req("tampered")) is None
    assert b.get(req("big")) is None
    assert writers == {"assetpipe-fetch"}
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"shared cache image {tampered.blob[:12]} is corrupt; treating it as missing" in said
    assert f"image {big.blob[:12]} in the shared cache is over 32 bytes; ignoring it" in said
    assert json.dumps(said).count("has no usable image") >= 1
