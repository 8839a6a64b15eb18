"""The paid work a person confirmed on the page, run as ``assetpipe build --only ...``.

A confirmed reroll or build runs as a child process, exactly the command a person would
type, rather than inside the server: Ctrl-C on the server reaches the build as it would
in a terminal (it stops cleanly and keeps every image already paid for), a crash in it
cannot take the page down, and the page learns of its images the way it learns of any
other build's, from ``output/manifest.json``. One runs at a time.

A reroll's build also streams previews of the image while it is made: it gets the write
end of a pipe (``--partials-fd``), and the server keeps the latest preview it reads
(:mod:`.partials`) on the task, for ``/api/state`` and ``/api/partial``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline import api
from pipeline.errors import UsageError
from pipeline.review.partials import Preview, read_previews

FLAG_OPTIONS: Mapping[str, str] = {
    "provider": "--provider",
    "model": "--model",
    "output": "--output",
    "cache_dir": "--cache-dir",
    "max_jobs": "--max-jobs",
    "remote_cache": "--remote-cache",
    "remote_cache_mode": "--remote-cache-mode",
}
"""The review command's project flags, handed on to the build it starts."""
MAX_MESSAGE = 2000


class Busy(UsageError):
    """A confirmed build is still running; one at a time."""


@dataclass(slots=True)
class Task:
    """One confirmed reroll or build, and how it went."""

    action: str
    asset: str
    jobs: tuple[str, ...]
    state: str = "running"
    """``running``, ``done`` or ``failed``."""
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    preview: Preview | None = None
    """The latest preview its build streamed (kept after it ends: a page polling late
    still shows it once)."""

    def as_json(self) -> dict[str, Any]:
        """What ``/api/state`` reports of it."""
        preview = self.preview
        return {
            "action": self.action,
            "asset": self.asset,
            "jobs": list(self.jobs),
            "state": self.state,
            "message": self.message,
            "partial": preview.as_json() if preview is not None else None,
        }


class Tasks:
    """Starts confirmed builds (one at a time) and keeps the latest one's outcome."""

    def __init__(self, req: api.Request, command: Sequence[str] | None = None):
        self.req = req
        self.command = list(command or [sys.executable, "-m", "pipeline"])
        self.current: Task | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, action: str, asset: str, digest: str) -> Task:
        """Check the quote again, record a reroll, and start the build (Busy while one
        runs, QuoteChanged when the quote no longer holds)."""
        with self._lock:
            if self.current is not None and self.current.state == "running":
                raise Busy(
                    f"{self.current.action} of {self.current.asset} is still running; wait for it"
                )
            shown, only = api.confirm(self.req, action, asset, digest)
            jobs = shown.jobs
            task = Task(
                action, asset, jobs, message=f"{action}: building {', '.join(jobs) or asset}…"
            )
            argv = [*self.command, "build", "--json", *self._flags()]
            for pattern in only:
                argv += ["--only", pattern]
            if action == "reroll" and len(jobs) == 1:
                proc = self._with_previews(task, argv)
            else:
                proc = subprocess.Popen(  # noqa: S603 - our own CLI, arguments as a list
                    argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            self.current = task
            thread = threading.Thread(target=self._wait, args=(task, proc), daemon=True)
            thread.start()
            self._threads.append(thread)
            return task

    def preview(self, seq: int) -> Preview | None:
        """The current task's latest preview, if it is number ``seq``."""
        task = self.current
        preview = task.preview if task is not None else None
        return preview if preview is not None and preview.seq == seq else None

    def _with_previews(self, task: Task, argv: list[str]) -> subprocess.Popen[str]:
        """Start a reroll's build with the write end of a pipe for its previews, and a
        thread that reads them (until the build, the pipe's only writer, ends)."""
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own CLI, arguments as a list
                [*argv, "--partials-fd", str(write_end)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                pass_fds=(write_end,),
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)

        def keep(preview: Preview) -> None:
            with self._lock:
                task.preview = preview

        reader = threading.Thread(
            target=read_previews, args=(read_end, task.jobs[0], keep), daemon=True
        )
        reader.start()
        self._threads.append(reader)
        return proc

    def join(self, timeout: float | None = None) -> None:
        """Wait for the started builds (the server does on shutdown)."""
        for thread in self._threads:
            thread.join(timeout)

    def _flags(self) -> list[str]:
        args = ["--project", str(self.req.project.resolve())]
        for name, value in (self.req.flags or {}).items():
            option = FLAG_OPTIONS.get(name)
            if option is not None and value is not None:
                args += [option, str(value)]
        return args

    def _wait(self, task: Task, proc: subprocess.Popen[str]) -> None:
        out, err = proc.communicate()
        try:
            summary = json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            summary = {}
        counts = summary.get("counts") if isinstance(summary, dict) else None
        if proc.returncode == 0 and isinstance(counts, dict):
            done = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            spent = summary.get("spent_usd")
            paid = float(spent) if isinstance(spent, (int, float)) else 0.0
            message = f"{task.action} of {task.asset} done: {done}; ${paid:.4f} spent"
            state = "done"
        else:
            why = err.strip().splitlines()[-3:] or [f"exit code {proc.returncode}"]
            message = f"{task.action} of {task.asset} failed: " + " ".join(why)
            state = "failed"
        with self._lock:
            task.summary = summary if isinstance(summary, dict) else {}
            task.message = message[:MAX_MESSAGE]
            task.state = state
