"""Helpers for tests that run assetpipe and the fake API as separate processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2

HERE = Path(__file__).resolve().parent
FAKEAPI_SCRIPT = HERE / "fakeapi.py"
PINNED_TODAY = "2026-11-24"
"""The date every test judges model lifecycles on (``ASSETPIPE_TODAY``): the suite must pass
on any calendar day, before and after a model's shutdown."""
CONSOLE_SCRIPT = Path(sys.executable).with_name("assetpipe")
ASSETPIPE = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "pipeline"]


def many(n: int, word: str = "Asset") -> str:
    """A spec of ``n`` independent cheap assets ``a1..an`` with prompts '<word> number i'."""
    items = ", ".join(str(i) for i in range(1, n + 1))
    return f"""
        assets:
          - id: "a{{{{ i }}}}"
            prompt: "{word} number {{{{ i }}}}"
            matrix: {{i: [{items}]}}
            size: 1024x1024
            quality: low
    """


class FakeProcess:
    """``python tests/fakeapi.py`` in its own process, and its /_stats counters."""

    def __init__(self, proc: subprocess.Popen[str], base_url: str):
        self.proc = proc
        self.base_url = base_url
        self.root = base_url.removesuffix("/v1")

    def stats(self) -> dict[str, Any]:
        return dict(httpx2.get(f"{self.root}/_stats").json())

    def wait_for(self, billed: int, timeout: float = 20.0) -> dict[str, Any]:
        """Poll until at least ``billed`` images were billed; returns the stats."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats["billed_images"] >= billed:
                return stats
            time.sleep(0.02)
        raise AssertionError(f"fewer than {billed} images billed in {timeout}s")

    def settle(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until no request is in flight on the fake; returns the stats."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats["in_flight"] == 0:
                return stats
            time.sleep(0.05)
        raise AssertionError("the fake never went idle")


@contextlib.contextmanager
def start_fake(*args: str) -> Iterator[FakeProcess]:
    """``python tests/fakeapi.py --port 0 ARGS`` until the block ends."""
    command = [sys.executable, str(FAKEAPI_SCRIPT), "--port", "0", *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            name, _, base_url = line.partition("=")
            assert name == "FAKE_OPENAI_BASE_URL", line
            yield FakeProcess(proc, base_url)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)


def build_env(fake: FakeProcess) -> dict[str, str]:
    """This environment without OPENAI_/ASSETPIPE_ variables, pointed at ``fake``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ASSETPIPE_"))}
    return {
        **env,
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_BASE_URL": fake.base_url,
        "ASSETPIPE_TODAY": PINNED_TODAY,
        "ASSETPIPE_STATE_DIR": os.environ.get("ASSETPIPE_STATE_DIR", ""),
    }


def preview_build(root: Path, specs: dict[str, str], state_dir: Path) -> Path:
    """A project of ``specs`` (file name under specs/ -> text) built at ``root`` as a
    person builds it (``assetpipe build --provider preview``, its own process, so that a
    browser test's event loop is not disturbed); returns the output folder.

    The environment is cleaned here as the autouse ``clean_env`` fixture would, since a
    module fixture that calls this starts before it."""
    (root / "specs").mkdir(parents=True)
    (root / "templates").mkdir()
    for name, text in specs.items():
        (root / "specs" / name).write_text(text.lstrip(), "utf-8")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "AZURE_", "GOOGLE_", "ASSETPIPE_")) and k != "CI"
    }
    env["ASSETPIPE_TODAY"] = PINNED_TODAY
    env["ASSETPIPE_STATE_DIR"] = str(state_dir)
    done = subprocess.run(
        [*ASSETPIPE, "build", "--provider", "preview", "-q", "--project", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return root / "output"
