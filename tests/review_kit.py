"""Helpers for the review page's tests: a served project, raw HTTP, and a real Chromium.

The browser is Debian's ``chromium`` (scripts/install-tools.sh) driven by Playwright
through ``executable_path``; Playwright never downloads a browser here. Without Chromium
the browser tests fail with what to do, unless ``ASSETPIPE_SKIP_BROWSER=1``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import ASSETPIPE

from pipeline import api
from pipeline.review.server import ReviewServer

# Read at import: the autouse clean_env fixture removes ASSETPIPE_* variables before each test.
SKIP_BROWSER = os.environ.get("ASSETPIPE_SKIP_BROWSER") == "1"
REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "docs" / "images"
DOCS_SCREENSHOTS = os.environ.get("ASSETPIPE_DOCS_SCREENSHOTS") == "1"
"""Whether the screenshot tests rewrite docs/images/ (scripts/screenshots.sh sets it).
Off by default: the PNGs are tracked, and a plain test run must leave the tree clean."""
WAIT_MS = 60_000
"""How long the browser waits for something the page must show (generous: a slow CI
machine only makes the test slower, never wrong)."""

SPEC = """
    assets:
      - id: hero
        prompt: "a brave knight <script>alert(1)</script>"
        size: 256x256
        variants: 3
        tags: [people]
        renditions:
          - {size: 64x64}
      - id: hero-winter
        prompt: "the knight in winter"
        size: 256x256
        edit: {images: [hero]}
        tags: [people]
"""
PROPS = """
    assets:
      - id: sword
        prompt: "a sword on a stone"
        size: 256x256
        tags: [items]
"""


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``assetpipe ARGS --project ROOT`` in its own process.

    The browser tests run every command this way: Playwright's sync API keeps an event
    loop in the test's thread, where a build's ``asyncio.run`` may not start."""
    return subprocess.run(
        [*ASSETPIPE, *args, "--project", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def need_browser() -> str:
    """Chromium's path, or the test fails (skips with ASSETPIPE_SKIP_BROWSER=1)."""
    if SKIP_BROWSER:
        pytest.skip("ASSETPIPE_SKIP_BROWSER=1")
    browser = find_chromium()
    if browser is None:
        pytest.fail(
            "chromium is not installed: run scripts/install-tools.sh "
            "(apt-get install -y chromium), or set ASSETPIPE_SKIP_BROWSER=1 to skip this test"
        )
    return browser


@contextlib.contextmanager
def launched() -> Iterator[Any]:
    """A headless Chromium under Playwright."""
    executable = need_browser()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]' (no browser download)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def serving(root: Path, provider: str = "preview") -> Iterator[ReviewServer]:
    """The review server of ``root`` on a free local port, until the block ends."""
    server = ReviewServer(api.Request(project=root, flags={"provider": provider}), poll_ms=200)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.tasks.join(timeout=120)


def request(
    server: ReviewServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    host: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (any Host header) to the server: status, headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or f"127.0.0.1:{server.port}")
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            conn.putheader("Content-Length", str(len(data)))
        if token is not None:
            conn.putheader("X-Assetpipe-Token", token)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders(data or None)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def raw_post(server: ReviewServer, path: str, framing: str) -> bytes:
    """The head of a POST as the page sends it (token, JSON, same origin), with the body's
    ``framing`` header (``Content-Length: N`` or ``Transfer-Encoding: chunked``) as given:
    the tests send whatever body, or none, after it."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        f"X-Assetpipe-Token: {server.token}",
        "Content-Type: application/json",
        f"Origin: http://127.0.0.1:{server.port}",
        framing,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(server: ReviewServer, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` as it is, then read until the server closes the connection: status,
    headers, body.

    The read ending is itself the proof that the server closed the connection (no
    keep-alive wait, no half-read body): a server that does not fails the test on the
    socket's timeout instead of hanging it.
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        sock.sendall(raw)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines)
    return int(status_line.split()[1]), {k.lower(): v.strip() for k, _, v in fields}, body


def open_fds_on(path: Path) -> list[int]:
    """The descriptors this process holds open on ``path`` (the server under test runs
    in the test's own process, so a descriptor it leaked shows up here)."""
    found = []
    for link in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed while listed
            if link.readlink() == path:
                found.append(int(link.name))
    return found


def post(server: ReviewServer, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    """A POST as the page sends it (token, JSON, same origin)."""
    status, _, data = request(
        server,
        "POST",
        path,
        body,
        token=server.token,
        headers={
            "Content-Type": "application/json",
            "Origin": f"http://127.0.0.1:{server.port}",
        },
    )
    return status, json.loads(data)


def lock(root: Path) -> dict[str, Any]:
    path = root / "assetpipe.lock"
    return tomllib.loads(path.read_text("utf-8")) if path.exists() else {}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """Poll ``condition`` until it returns something true (an AssertionError naming
    ``what`` after a generous ``timeout``; never a measure of speed)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def docs_image(name: str, scratch: Path) -> Path:
    """Where a screenshot named ``name`` goes: docs/images/NAME.png when
    :data:`DOCS_SCREENSHOTS` asks for the docs' pictures, else ``scratch``/NAME.png, so a
    test that measures its screenshot measures it on every run without touching the tree."""
    folder = SCREENSHOTS if DOCS_SCREENSHOTS else scratch
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


def screenshot(page: Any, name: str) -> Path | None:
    """Save a screenshot of the page for docs/review.md (docs/images/NAME.png), only when
    :data:`DOCS_SCREENSHOTS` asks for it; otherwise take none and return None."""
    if not DOCS_SCREENSHOTS:
        return None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextlib.contextmanager
def watched_tab(browser: Any, height: int) -> Iterator[Any]:
    """A tab 1280 wide in a fresh context (its own localStorage) that fails the test on
    any script error the page raised, whatever the test did."""
    context = browser.new_context(viewport={"width": 1280, "height": height})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == []  # no script error on the page
