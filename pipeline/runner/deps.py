"""Everything a run needs from outside, in one object the composition root fills in.

The scheduler never picks an implementation: the store (local, or layered over a remote),
the dispatcher (direct, or batched), the pricing of the route, the output folder, the
reporter and the clock all arrive here, so tests drive it with fakes and the real server
alike, and a new route or store is a new object, not a change to the scheduler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pipeline.jobs import Job, ProviderFailure
from pipeline.output import Manifest, OutputTree
from pipeline.postprocess.c2pa_sign import Signing
from pipeline.runner.budget import Pricing
from pipeline.runner.dispatch import Dispatcher
from pipeline.store import InspectionMemo, ResultStore

if TYPE_CHECKING:
    from pipeline.runner.outcome import Outcome


class Reporter(Protocol):
    """Receives progress events (a terminal bar, plain log lines, or nothing)."""

    def started(self, total: int, done: int) -> None:
        """The build begins with ``total`` jobs, ``done`` of them already up to date."""

    def finished_job(self, outcome: Outcome) -> None:
        """A job reached its final state."""

    def retrying(self, job: Job, failure: ProviderFailure, delay: float, attempt: int) -> None:
        """A retryable failure; the job tries again after ``delay`` seconds."""

    def note(self, message: str) -> None:
        """Something the user should read once (an account failure, the budget)."""


class StopSignal:
    """Why the build stopped starting paid work, shared by the scheduler (which sets it)
    and the dispatcher (which checks it before each send)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str) -> bool:
        """Record the first reason; returns whether this call was the first."""
        if self.reason is not None:
            return False
        self.reason = reason
        return True

    def __bool__(self) -> bool:
        return self.reason is not None


@dataclass(frozen=True, slots=True)
class RunConfig:
    """How to run: limits and switches from the command line and settings."""

    concurrency: int = 8
    max_cost: float | None = None
    fail_fast: bool = False
    force: bool = False
    embed_metadata: bool = False
    placeholders: bool = False
    """The provider draws placeholders (``preview``): no brand-palette checks on them."""
    checkpoint_s: float = 2.0
    signing: Signing | None = None
    """The C2PA credentials re-encoded files are signed with (None: they are not)."""


@dataclass(frozen=True, slots=True)
class RunDeps:
    """The collaborators of one run."""

    store: ResultStore
    dispatcher: Dispatcher
    pricing: Pricing
    output: OutputTree
    project_root: Path
    manifest: Manifest
    reporter: Reporter
    stop: StopSignal = field(default_factory=StopSignal)
    pending: Mapping[str, str] = field(default_factory=dict)
    """Cache keys of requests in open batches (key -> batch id): a build that does not
    collect batches leaves these jobs ``pending`` rather than paying for them again."""
    on_checkpoint: Callable[[Mapping[str, Outcome]], None] | None = None
    memo: InspectionMemo | None = None
    """Where inspecting delivered files is memoised (the local cache's ``memo/``); None
    inspects every file afresh."""
    forget: Callable[[str], None] | None = None
    """Takes an entry back out of the store. Given (the build commits to this machine's
    cache alone), a paid image whose header says it is already the job's size and format
    is committed before a pixel of it is decoded, so the request's slot is free sooner;
    it is decoded when its file is written, and one that cannot be is taken back out, so
    the next build asks for it again. None: every paid image is decoded before it is
    committed (a shared cache must never receive one that cannot be)."""
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
