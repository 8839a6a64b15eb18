"""A far shared cache: a plan's lookups are asked at once, not one round trip a job, and a
build's downloads land on one thread, verified.

SeaweedFS (started by the test session: ``tests/s3servers.py``) holds what machine A
shared; machine B reaches it through a proxy on 127.0.0.1 that holds every request for a
record until several are waiting at once. Lookups asked one at a time never get there
(the proxy then lets each through after a deadline, and the test fails on the count, not
on a clock); lookups asked together do, at once. A plan's dependents (renditions here)
are asked about together too, once their inputs are known. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest
from conftest import ProjectTree
from refusing_proxy import accept_each
from s3servers import S3Server, closed_endpoint
from store_kit import kept, layered, req

from pipeline import api
from pipeline.hashing import sha256_bytes
from pipeline.output import Manifest, OutputTree
from pipeline.runner.freshness import assess, job_request
from pipeline.store import CacheRecord, LayeredStore, LocalStore
from pipeline.store.prefetch import LISTING_FROM, LOOKUPS_IN_FLIGHT
from pipeline.store.remote import ObjectStore
from pipeline.store.shared_format import blob_path, parse_url, record_path

GATE = 8
"""Requests for records the proxy holds until they are all waiting together."""
PATIENCE_S = 10.0
"""How long the proxy holds a request when the others never come (a deadline, so that a
client asking one at a time fails the test instead of hanging it)."""


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's AWS settings: each store is given its server's."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


class GatedProxy:
    """A TCP proxy to ``upstream`` that holds each request for a record until ``gate``
    of them wait at once (from then on it holds nothing; with ``rearm``, the next ones
    wait for ``gate`` of their own, and so on); ``peak`` is the most that ever waited
    together, ``batches`` how many times ``gate`` of them were let through together, and
    ``stragglers`` how many were let through by the deadline instead."""

    def __init__(self, upstream: str, gate: int, *, rearm: bool = False) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.gate = gate
        self.rearm = rearm
        self.peak = 0
        self.heads = 0
        """HEAD requests seen (an image's size asked about on its own)."""
        self.batches = 0
        self.stragglers = 0
        self._waiting = 0
        self._batch = 0
        self._open = False
        self._cond = threading.Condition()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self.endpoint = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> GatedProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._sock.close()
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        accept_each(self._sock, self._closing, lambda client: self._spawn(self._forward, client))

    def _forward(self, client: socket.socket) -> None:
        with contextlib.closing(client), socket.create_connection(self.upstream) as up:
            self._spawn(self._copy, up, client)
            self._copy(client, up, hold=True)

    def _copy(self, src: socket.socket, dst: socket.socket, *, hold: bool = False) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                line = data.split(b"\r\n", 1)[0]
                if hold and line.startswith(b"HEAD "):
                    with self._cond:
                        self.heads += 1
                if hold and b"/records/" in line:
                    self._hold()
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

    def _hold(self) -> None:
        with self._cond:
            if self._open:
                return
            batch = self._batch
            self._waiting += 1
            self.peak = max(self.peak, self._waiting)
            if self._waiting >= self.gate:
                self.batches += 1
                self._waiting = 0
                self._batch += 1
                self._open = not self.rearm
                self._cond.notify_all()
                return
            if not self._cond.wait_for(
                lambda: self._open or self._batch != batch, timeout=PATIENCE_S
            ):
                self.stragglers += 1
                self._waiting -= 1


class Team:
    """Machine A next to the bucket, machines B behind ``endpoint``."""

    def __init__(self, server: S3Server, tmp_path: Path) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.url = server.url()
        self.stores: list[LayeredStore] = []

    def machine(self, name: str, endpoint: str | None = None) -> LayeredStore:
        environ = {**self.server.environ(), "AWS_ENDPOINT_URL": endpoint or self.server.endpoint}
        store = layered(LocalStore(self.tmp_path / name / "cache"), self.url, environ=environ)
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.close()


@pytest.fixture
def team(seaweedfs_s3: S3Server, tmp_path: Path) -> Iterator[Team]:
    shared = Team(seaweedfs_s3, tmp_path)
    yield shared
    shared.close()


def share(store: LayeredStore, count: int) -> dict[str, CacheRecord]:
    """``count`` results committed by ``store``, by request name."""
    return {
        f"far-{i}": store.commit(req(f"far-{i}"), f"image {i}".encode(), None, {"kind": "test"})
        for i in range(count)
    }


def test_a_plans_lookups_are_issued_concurrently(team: Team) -> None:
    """Machine B asks about 12 results A shared and 4 nobody has: the proxy sees at least
    GATE record requests waiting together, and afterwards every lookup is answered as
    the shared store would answer it, with nothing downloaded."""
    assert GATE <= LOOKUPS_IN_FLIGHT
    records = share(team.machine("a"), 12)
    with GatedProxy(team.server.endpoint, GATE) as proxy:
        b = team.machine("b", proxy.endpoint)
        names = [*records, "nobody-1", "nobody-2", "nobody-3", "nobody-4"]
        b.prefetch(req(name) for name in names)
        assert proxy.peak >= GATE
        for name in names:
            assert b.lookup(req(name)) == records.get(name)
            assert b.local.lookup(req(name)) is None, "a lookup downloads nothing"


def test_many_lookups_read_the_images_sizes_from_one_listing(team: Team) -> None:
    """Asked about LISTING_FROM results at once, machine B lists the shared images (one
    page) instead of asking about each one's size: no HEAD request, the same answers."""
    records = share(team.machine("a"), LISTING_FROM)
    with GatedProxy(team.server.endpoint, 1) as proxy:
        b = team.machine("b", proxy.endpoint)
        b.prefetch(req(name) for name in records)
        assert proxy.heads == 0
        assert all(b.lookup(req(name)) == record for name, record in records.items())
    with GatedProxy(team.server.endpoint, 1) as proxy:  # too few to list: sizes asked
        c = team.machine("c", proxy.endpoint)
        c.prefetch(req(name) for name in list(records)[:4])
        assert proxy.heads == 4


def test_a_build_downloads_the_hits_verified(team: Team, caplog: pytest.LogCaptureFixture) -> None:
    """With ``fetch`` the hits land in B's local store, byte for byte (in the background:
    ``get`` waits for its own); a record planted under another request's key is still
    refused, and a miss stays a miss."""
    a = team.machine("a")
    records = share(a, 6)
    planted = req("planted")
    body = {
        "format": 1,
        "key": planted.key,
        "blob": records["far-0"].blob,
        "original": None,
        "meta": kept(req("far-0"), kind="test"),
    }
    root = f"{parse_url(team.url).prefix}/assetpipe-v1"
    obstore.put(team.server.raw(), f"{root}/{record_path(planted.key)}", json.dumps(body).encode())
    b = team.machine("b")
    b.prefetch([*(req(name) for name in records), planted, req("nobody")], fetch=True)
    for i, (name, record) in enumerate(records.items()):
        assert b.lookup(req(name)) == record
        assert b.get(req(name)) == (record, f"image {i}".encode())  # its download awaited
        assert b.local.get(req(name)) == (record, f"image {i}".encode())
        assert sha256_bytes(f"image {i}".encode()) == record.blob
    assert b.lookup(planted) is None and b.get(planted) is None
    assert b.get(req("nobody")) is None
    assert any(
        "was not made from its request" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


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
    for missed in ("tampered", "big"):
        assert f"shared cache entry {req(missed).key[:12]} has no usable image; ignoring it" in said


RENDITIONS = """\
defaults: {quality: low}
assets:
  - id: "tile-{{ n }}"
    matrix: {n: [0, 1, 2, 3, 4, 5, 6, 7]}
    prompt: "tile {{ n }}"
    size: 1024x1024
    renditions:
      - {size: 64x64, format: webp}
"""


def test_a_plans_dependents_are_looked_up_together_once_their_inputs_are(
    team: Team, project: ProjectTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine A shared 8 API results and the 8 renditions made from them. Machine B
    assesses the plan behind a proxy that lets record requests through only GATE at a
    time: the API jobs' records go together, then, once their images are known, the
    renditions' records go together too (none waits alone for the deadline), and every
    job is found cached."""
    project.gen({"specs/tiles.yaml": RENDITIONS})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # planned for the API, never called
    ws = api.open_workspace(api.Request(project=project.root, flags={"provider": "openai"}))
    jobs = ws.plan.jobs
    assert sum(job.kind == "rendition" for job in jobs) == GATE
    a = team.machine("a")
    shas: dict[str, str | None] = {}
    for job in sorted(jobs, key=lambda j: bool(j.depends_on)):
        request = job_request(job, shas)
        assert request is not None
        shas[job.id] = a.commit(request, f"image of {job.id}".encode(), None, {}).blob
    with GatedProxy(team.server.endpoint, GATE, rearm=True) as proxy:
        b = team.machine("b", proxy.endpoint)
        states = assess(ws.plan, Manifest.empty(), b, OutputTree(project.root / "output"))
    assert {job.id: states[job.id].status for job in jobs} == {job.id: "cached" for job in jobs}
    assert list(states) == [job.id for job in jobs]
    assert proxy.stragglers == 0
    assert proxy.batches == 2


def test_a_down_far_bucket_is_one_warning(team: Team, caplog: pytest.LogCaptureFixture) -> None:
    """Asking a remote that is down about 40 requests at once is one warning and 40 misses."""
    b = team.machine("b", closed_endpoint())
    requests = [req(f"down-{i}") for i in range(40)]
    b.prefetch(requests)
    assert all(b.lookup(r) is None for r in requests)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
