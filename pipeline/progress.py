"""Build progress for people: a live bar on a terminal, plain lines in CI logs.

Both show the same facts — done/total, from cache, failed, spend, ETA — because the
person reading a CI log deserves what the person at a terminal sees. Failure messages and
notes quote servers and job ids; every line escapes them (:func:`pipeline.errors.printable`),
so a server's text cannot forge a line of the log or drive the terminal.
"""

from __future__ import annotations

import sys
import time
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from pipeline.errors import printable
from pipeline.jobs import Job, ProviderFailure
from pipeline.runner.outcome import Outcome

PLAIN_EVERY_S = 5.0


class Counts:
    """Running totals of a build."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.up_to_date = 0
        self.cached = 0
        self.failed = 0
        self.spent = 0.0
        self.at_start = 0
        """Jobs already up to date when the build began (done in no time: not a pace)."""

    def add(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.status == "up-to-date":
            self.up_to_date += 1
        elif outcome.status == "cached":
            self.cached += 1
        elif outcome.status in ("failed", "blocked"):
            self.failed += 1
        self.spent += outcome.spent_usd

    def line(self) -> str:
        """The same words as the summary at the end: up to date, cached, failed."""
        return (
            f"{self.done}/{self.total} done ({self.up_to_date} up to date, "
            f"{self.cached} cached), {self.failed} failed, ${self.spent:.2f} spent"
        )


class QuietReporter:
    """Reports nothing but failures (for ``-q`` and ``--json``)."""

    def __init__(self, stream: IO[str] | None = None):
        self.counts = Counts()
        self.stream = stream or sys.stderr
        self.pacing: str | None = None
        """How this shard paces a limit it shares (said once, as the build starts)."""

    def started(self, total: int, done: int) -> None:
        self.counts.total = total
        self.counts.done = self.counts.up_to_date = self.counts.at_start = done

    def finished_job(self, outcome: Outcome) -> None:
        self.counts.add(outcome)
        if outcome.status == "failed" and outcome.error:
            self.stream.write(f"failed: {_failure(outcome)}\n")

    def retrying(self, job: Job, failure: ProviderFailure, delay: float, attempt: int) -> None:
        return

    def note(self, message: str) -> None:
        self.stream.write(f"{printable(message)}\n")


def _failure(outcome: Outcome) -> str:
    """``job: message`` of a failed job, escaped for a plain line (the message is often
    the server's)."""
    message = (outcome.error or {}).get("message")
    return f"{printable(outcome.job.id)}: {printable(str(message))}"


class PlainReporter(QuietReporter):
    """One line per finished API job and a summary line every few seconds (CI logs)."""

    def __init__(self, stream: IO[str] | None = None, verbose: bool = False):
        super().__init__(stream)
        self.verbose = verbose
        self.start = time.monotonic()
        self.last = 0.0

    def started(self, total: int, done: int) -> None:
        super().started(total, done)
        jobs = "job" if total == 1 else "jobs"
        pacing = f"; {self.pacing}" if self.pacing else ""
        self.stream.write(f"building {total} {jobs} ({done} up to date){pacing}\n")

    def finished_job(self, outcome: Outcome) -> None:
        self.counts.add(outcome)
        job, status = outcome.job, outcome.status
        if status == "failed" and outcome.error:
            self.stream.write(f"failed    {_failure(outcome)}\n")
        elif status == "blocked":
            self.stream.write(f"blocked   {printable(job.id)}\n")
        elif self.verbose or (job.is_api and status == "generated"):
            self.stream.write(f"{status:<9} {printable(job.id)}\n")
        now = time.monotonic()
        if now - self.last >= PLAIN_EVERY_S:
            self.last = now
            self.stream.write(f"progress: {self.counts.line()}, {_eta(self)}\n")
        self.stream.flush()

    def retrying(self, job: Job, failure: ProviderFailure, delay: float, attempt: int) -> None:
        if self.verbose or failure.kind != "rate_limit":
            self.stream.write(
                f"retry     {printable(job.id)} in {delay:.1f}s after {failure.kind} "
                f"(attempt {attempt}): {printable(failure.message)}\n"
            )


ETA_AFTER_JOBS = 3
"""Jobs finished during the build before an ETA is guessed: one job is no pace."""


def _eta(reporter: PlainReporter) -> str:
    """Time left at the pace of the jobs finished during this build (the ones up to date
    at the start took no time and would make the first guess wildly short)."""
    c = reporter.counts
    elapsed = time.monotonic() - reporter.start
    worked = c.done - c.at_start
    if worked < ETA_AFTER_JOBS or elapsed < 1:
        return "ETA unknown"
    remaining = (c.total - c.done) * elapsed / worked
    return f"ETA {remaining:.0f}s"


class RichReporter(QuietReporter):
    """A live progress bar on a terminal; its lines are plain text (never markup), so
    brackets in a server's message print as they are."""

    def __init__(self, console: Console):
        super().__init__(console.file)
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]build"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("[green]{task.fields[up_to_date]} up to date"),
            TextColumn("[cyan]{task.fields[cached]} cached"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("[green]${task.fields[spent]:.2f}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def started(self, total: int, done: int) -> None:
        super().started(total, done)
        if self.pacing:
            self.console.print(Text(self.pacing))
        self.progress.start()
        self.task = self.progress.add_task(
            "build", total=total, completed=done, up_to_date=done, cached=0, failed=0, spent=0.0
        )

    def finished_job(self, outcome: Outcome) -> None:
        self.counts.add(outcome)
        if outcome.status == "failed" and outcome.error:
            self.console.print(Text.assemble(("failed", "red"), f" {_failure(outcome)}"))
        if self.task is not None:
            self.progress.update(
                self.task,
                completed=self.counts.done,
                up_to_date=self.counts.up_to_date,
                cached=self.counts.cached,
                failed=self.counts.failed,
                spent=self.counts.spent,
            )

    def retrying(self, job: Job, failure: ProviderFailure, delay: float, attempt: int) -> None:
        if failure.kind != "rate_limit":
            said = f" {printable(job.id)} in {delay:.1f}s after {failure.kind}: "
            self.console.print(Text.assemble(("retry", "yellow"), said, printable(failure.message)))

    def note(self, message: str) -> None:
        self.console.print(Text(printable(message), style="bold red"))

    def close(self) -> None:
        """Stop the live display."""
        self.progress.stop()
