"""Shared helpers of the benchmark scripts (not a test module; no timing asserts live here).

Every benchmark builds its own project in a temporary folder, runs the real ``assetpipe``
console script as a whole process (so interpreter start-up and imports count), and talks
to the local fake of the Images API (``tests/fakeapi.py``) started as a subprocess on
127.0.0.1 only.
"""

from __future__ import annotations

import compileall
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
FAKE_API = REPO / "tests" / "fakeapi.py"
FAKE_HEAVY = Path(__file__).resolve().parent / "fake_heavy.py"
FAKE_DISTINCT = Path(__file__).resolve().parent / "fake_distinct.py"
BENCH_KEY = "sk-bench"
WARM_UP_COLOURS = 32
"""The fake picks an image's colour from sha256(prompt)[0] % 32 (``_PALETTE``)."""
_URL_LINE = re.compile(r"^FAKE_OPENAI_BASE_URL=(http://127\.0\.0\.1:\d+/v1)\s*$")

BRAND = {
    "name": "Benchmark",
    "colors": {"primary": "#E4572E", "accent": "#2B2D42", "gold": "#F2C14E"},
}


_SNAPSHOT_LAUNCHER = """
import sys
src = sys.argv.pop(1)
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in str(f)]
sys.path.insert(0, src)
import pipeline.cli
assert pipeline.cli.__file__.startswith(src), pipeline.cli.__file__
sys.argv[0] = "assetpipe"
getattr(pipeline.cli, "run", pipeline.cli.main)()  # run(): the installed command (quick exit)
"""


_COMPILED: set[Path] = set()


def compiled(src: Path) -> Path:
    """``src`` (a folder holding ``pipeline/``) with its bytecode written, as ``pip
    install`` writes it: a benchmark times the tool as installed, not the compiling of
    its sources, which a process redoes at every start where no ``__pycache__`` exists
    (an editable install under ``PYTHONDONTWRITEBYTECODE``, or a fresh snapshot)."""
    src = src.resolve()
    if src not in _COMPILED:
        compileall.compile_dir(src / "pipeline", quiet=1, workers=0)
        _COMPILED.add(src)
    return src


def snapshot(dest: Path, before: bool) -> Path:
    """A fixed, compiled copy of ``pipeline/`` at ``dest``: the last commit's (``before``)
    or the working tree's as it is now, so edits made meanwhile do not leak in."""
    dest.mkdir(parents=True)
    if before:
        archive = subprocess.run(
            ["git", "archive", "HEAD", "pipeline"], cwd=REPO, check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    else:
        shutil.copytree(
            REPO / "pipeline", dest / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
        )
    return compiled(dest)


def assetpipe_cmd() -> list[str]:
    """The command that runs the CLI: the venv's console script, else ``python -m``; its
    sources compiled first (:func:`compiled`).

    With ``ASSETPIPE_BENCH_SRC=DIR`` (a folder holding a ``pipeline/`` package, e.g. from
    ``git archive HEAD pipeline | tar -x -C DIR``) the CLI runs from that snapshot instead
    of the editable install, so a benchmark is not disturbed by edits made meanwhile.
    """
    src = os.environ.get("ASSETPIPE_BENCH_SRC")
    if src:
        return [PYTHON, "-c", _SNAPSHOT_LAUNCHER, str(compiled(Path(src)))]
    compiled(REPO)
    script = VENV_BIN / "assetpipe"
    if script.exists():
        return [str(script)]
    return [PYTHON, "-m", "pipeline"]


# -- projects ---------------------------------------------------------------------------------


def make_project(
    root: Path,
    specs: Mapping[str, Mapping[str, Any]],
    *,
    settings: Mapping[str, Any] | None = None,
    templates: Mapping[str, str] | None = None,
) -> Path:
    """Write a project: ``specs/<name>.yaml`` per entry, optional templates and settings."""
    (root / "specs").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(parents=True, exist_ok=True)
    for name, spec in specs.items():
        path = root / "specs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(dict(spec), sort_keys=False), encoding="utf-8")
    for name, text in (templates or {}).items():
        (root / "templates" / name).write_text(text, encoding="utf-8")
    if settings:
        (root / "assetpipe.yaml").write_text(yaml.safe_dump(dict(settings)), encoding="utf-8")
    return root


def matrix_spec(
    rows: int,
    cols: int,
    *,
    size: str = "1024x1024",
    quality: str = "low",
    prompt: str | None = None,
) -> dict[str, Any]:
    """One asset whose matrix is ``rows x cols``: ``rows * cols`` API jobs."""
    return {
        "brand": BRAND,
        "defaults": {"quality": quality},
        "assets": [
            {
                "id": "tile-{{ x }}-{{ y }}",
                "prompt": prompt
                or (
                    "Tile {{ x }} by {{ y }} for {{ brand.name }}: "
                    "{{ brand.colors.primary | color_name }} on "
                    "{{ brand.colors.accent | color_name }}"
                ),
                "matrix": {"x": list(range(rows)), "y": list(range(cols))},
                "size": size,
            }
        ],
    }


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder removed afterwards (kept when ASSETPIPE_BENCH_KEEP is set)."""
    path = Path(tempfile.mkdtemp(prefix=f"assetpipe-{prefix}-"))
    try:
        yield path
    finally:
        if os.environ.get("ASSETPIPE_BENCH_KEEP"):
            print(f"(kept {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


# -- the fake API -----------------------------------------------------------------------------


class FakeServer:
    """``tests/fakeapi.py`` (or a wrapper of it) as a subprocess on 127.0.0.1."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        ipm: int | None = None,
        extra: Sequence[str] = (),
        script: Path = FAKE_API,
    ):
        self.args = [PYTHON, str(script), "--port", "0", "--latency", str(latency)]
        if ipm is not None:
            self.args += ["--ipm", str(ipm)]
        self.args += list(extra)
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self, timeout: float = 20.0) -> FakeServer:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line or self.proc.poll() is not None:
                break
        match = _URL_LINE.match(line)
        if not match:
            self.stop()
            raise RuntimeError(f"the fake API did not start: first line {line!r}")
        self.base_url = match.group(1)
        return self

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def stats(self) -> dict[str, Any]:
        """``GET /_stats``: requests, billed_images, status_counts, peak_in_flight, ..."""
        with urllib.request.urlopen(f"{self.root_url}/_stats", timeout=10) as response:  # noqa: S310 - loopback only
            data: dict[str, Any] = json.loads(response.read())
        return data

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - loopback only
            f"{self.root_url}{path}",
            data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_KEY}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            data: dict[str, Any] = json.loads(response.read())
        return data

    def configure(self, **config: Any) -> dict[str, Any]:
        """``POST /_config``: change the fake's settings (latency, images_per_minute, ...)."""
        return self._post("/_config", config)

    def warm_up(self, size: str = "1024x1024", output_format: str = "png") -> int:
        """Make the fake draw and cache its images of this size before a measurement.

        The fake encodes one image per (size, format, colour) on first use and caches it;
        a cold fake spends ~0.3 s of CPU on the first wave of a 1024x1024 build, which a
        real API does not. One sequential request per colour at zero latency warms it
        (peak_in_flight stays 1); returns the number of requests it sent.
        """
        latency = self.configure()["latency"]
        self.configure(latency=0)
        colours: set[int] = set()
        sent = 0
        for i in range(10_000):
            prompt = f"warm-up {i}"
            colour = hashlib.sha256(prompt.encode("utf-8")).digest()[0] % WARM_UP_COLOURS
            if colour in colours:
                continue
            colours.add(colour)
            body = {"model": "gpt-image-2.5-flare", "prompt": prompt, "size": size}
            self._post("/v1/images/generations", {**body, "output_format": output_format})
            sent += 1
            if len(colours) == WARM_UP_COLOURS:
                break
        self.configure(latency=latency)
        return sent

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment that points the OpenAI SDK at this fake."""
        env = clean_env(base)
        env["OPENAI_API_KEY"] = BENCH_KEY
        env["OPENAI_BASE_URL"] = self.base_url
        return env

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StatsPoller:
    """Polls ``/_stats`` in a thread to time the first request and the last billed image.

    Stops polling once ``expect_billed`` images are billed (or when the block exits, for a
    client that gave up on some images).
    """

    def __init__(self, server: FakeServer, expect_billed: int, interval: float = 0.02):
        self.server = server
        self.expect_billed = expect_billed
        self.interval = interval
        self.first_request_at: float | None = None
        self.last_billed_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        billed = 0
        while not self._stop.is_set():
            try:
                stats = self.server.stats()
            except OSError:
                stats = {}
            now = time.perf_counter()
            if self.first_request_at is None and stats.get("requests", 0) > 0:
                self.first_request_at = now
            if stats.get("billed_images", 0) > billed:
                billed = stats["billed_images"]
                self.last_billed_at = now
            if billed >= self.expect_billed:
                return
            self._stop.wait(self.interval)

    @property
    def window_s(self) -> float | None:
        """Seconds from the first request seen to the last image billed (± one interval)."""
        if self.first_request_at is None or self.last_billed_at is None:
            return None
        return self.last_billed_at - self.first_request_at

    def __enter__(self) -> StatsPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- running the CLI --------------------------------------------------------------------------


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without anything that would steer assetpipe or the SDK elsewhere."""
    env = dict(os.environ if base is None else base)
    for name in list(env):
        if name.startswith(("ASSETPIPE_", "OPENAI_", "AZURE_OPENAI_")):
            del env[name]
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass
class RunResult:
    """One finished child process: exit code, output, wall time and memory."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    maxrss_kb: int
    """ru_maxrss of this one child, from ``os.wait4`` (KiB on Linux)."""
    vm_hwm_kb: int = 0
    """The highest VmHWM seen polling ``/proc/<pid>/status`` (0 when not polled)."""
    cpu_s: float = 0.0
    """User plus system CPU time of this one child (``os.wait4``'s resource usage)."""
    sys_s: float = 0.0
    """The system (kernel) part of ``cpu_s``: creating files, sockets, waking threads."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_rss_mb(self) -> float:
        return max(self.maxrss_kb, self.vm_hwm_kb) / 1024

    def json(self) -> Any:
        return json.loads(self.stdout)

    def check(self, ok: Sequence[int] = (0,)) -> RunResult:
        if self.returncode not in ok:
            raise RuntimeError(
                f"{' '.join(self.args)} exited {self.returncode}\n"
                f"stdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-4000:]}"
            )
        return self


def _vm_hwm_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600.0,
    poll_memory: bool = False,
) -> RunResult:
    """Run a command to the end; wall time, ru_maxrss of that child and (optionally) VmHWM."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(args),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else clean_env(),
            cwd=cwd,
        )
        hwm = 0
        stop = threading.Event()

        def poll() -> None:
            nonlocal hwm
            while not stop.is_set():
                hwm = max(hwm, _vm_hwm_kb(proc.pid))
                stop.wait(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        if poll_memory:
            poller.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            stop.set()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if poll_memory:
            poller.join()
        out.seek(0)
        err.seek(0)
        return RunResult(
            args=list(args),
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            wall_s=wall,
            maxrss_kb=int(usage.ru_maxrss),
            vm_hwm_kb=hwm,
            cpu_s=usage.ru_utime + usage.ru_stime,
            sys_s=usage.ru_stime,
        )


def assetpipe(
    command: str,
    project: Path,
    *options: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    poll_memory: bool = False,
) -> RunResult:
    """``assetpipe COMMAND --project PROJECT OPTIONS...`` as a whole process."""
    return run(
        [*assetpipe_cmd(), command, "--project", str(project), *options],
        env=env,
        cwd=project,
        timeout=timeout,
        poll_memory=poll_memory,
    )


def best_of(runs: Sequence[RunResult]) -> RunResult:
    """The fastest of several runs."""
    return min(runs, key=lambda r: r.wall_s)


def verdict(name: str, ok: bool, line: str) -> int:
    """Print the one result line of a benchmark; the exit code it deserves."""
    src = os.environ.get("ASSETPIPE_BENCH_SRC")
    where = f" [pipeline from {src}]" if src else ""
    print(f"{name}: {'PASS' if ok else 'FAIL'} {line}{where}", flush=True)
    return 0 if ok else 1
