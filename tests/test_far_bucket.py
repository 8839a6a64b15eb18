"""A far shared cache: a plan's lookups are asked at once, not one round trip a job.

SeaweedFS (started by the test session: ``tests/s3servers.py``) holds what machine A
shared; machine B reaches it through a proxy on 127.0.0.1 that holds every request for a
record until several are waiting at once. Lookups asked one at a time never get there
(the proxy then lets each through after a deadline, and the test fails on the count, not
on a clock); lookups asked together do, at once. Nothing is mocked.
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
from s3servers import S3Server, closed_endpoint
from store_kit import kept, layered, req

from pipeline.hashing import sha256_bytes
from pipeline.store import CacheRecord, LayeredStore, LocalStore
from pipeline.store.layered import LOOKUPS_IN_FLIGHT
from pipeline.store.shared_format import parse_url, record_path

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
    of them wait at once (from then on it holds nothing); ``peak`` is the most that ever
    waited together."""

    def __init__(self, upstream: str, gate: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.gate = gate
        self.peak = 0
        self._waiting = 0
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
        while not self._closing.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self._spawn(self._forward, client)

    def _forward(self, client: socket.socket) -> None:
        with contextlib.closing(client), socket.create_connection(self.upstream) as up:
            self._spawn(self._copy, up, client)
            self._copy(client, up, hold=True)

    def _copy(self, src: socket.socket, dst: socket.socket, *, hold: bool = False) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if hold and b"/records/" in data.split(b"\r\n", 1)[0]:
                    self._hold()
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)

    def _hold(self) -> None:
        with self._cond:
            self._waiting += 1
            self.peak = max(self.peak, self._waiting)
            if self._waiting >= self.gate:
                self._open = True
                self._cond.notify_all()
            self._cond.wait_for(lambda: self._open, timeout=PATIENCE_S)
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


def test_a_build_downloads_the_hits_verified(team: Team, caplog: pytest.LogCaptureFixture) -> None:
    """With ``fetch`` the hits land in B's local store, byte for byte; a record planted
    under another request's key is still refused, and a miss stays a miss."""
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
        assert b.local.get(req(name)) == (record, f"image {i}".encode())
        assert sha256_bytes(f"image {i}".encode()) == record.blob
    assert b.lookup(planted) is None and b.get(planted) is None
    assert b.get(req("nobody")) is None
    assert any(
        "was not made from its request" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


def test_a_down_far_bucket_is_one_warning(team: Team, caplog: pytest.LogCaptureFixture) -> None:
    """Asking a remote that is down about 40 requests at once is one warning and 40 misses."""
    b = team.machine("b", closed_endpoint())
    requests = [req(f"down-{i}") for i in range(40)]
    b.prefetch(requests)
    assert all(b.lookup(r) is None for r in requests)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
