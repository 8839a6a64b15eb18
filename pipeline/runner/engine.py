"""The async scheduler: runs a plan's jobs as soon as their inputs are ready.

Everything it touches is injected — provider, cache, output folder, limiter, clock,
random source, reporter — so tests drive it with fakes and the real server alike.
Invariants, in order of importance:

- a paid result is committed to the cache the moment it arrives, before anything else
  can fail, so a crash or Ctrl-C loses at most the requests in flight;
- a job whose key is cached or whose file is up to date never calls the provider;
- a failure stops only what depends on it (``blocked``), unless ``fail_fast`` is set,
  the account itself failed (quota, key, permission), or a file could not be written
  (disk full, a folder in the way): each of those stops every new start, since the next
  paid image could not be stored either;
- the budget is checked before each paid call against spent + in-flight + this estimate;
- an API image is checked before it is delivered: a container other than PNG, WebP or
  JPEG, a pixel bomb, or an image smaller than requested fails the job (``bad_response``,
  not retried: it was paid for, and asking again pays again), never a silent upscale.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from pipeline.jobs import (
    ACCOUNT_KINDS,
    Job,
    Plan,
    ProviderFailure,
)
from pipeline.runner.budget import Budget
from pipeline.runner.deps import Reporter, RunConfig, RunDeps
from pipeline.runner.freshness import JobState
from pipeline.runner.guards import (
    LocalWriteError,
)
from pipeline.runner.making import Maker
from pipeline.runner.outcome import Outcome, RunReport
from pipeline.runner.paid import (
    account_advice,
    write_failure_advice,
)
from pipeline.runner.retry import give_up_note
from pipeline.runner.writers import LOCAL_WORK

__all__ = ["LOCAL_WORK", "Reporter", "RunConfig", "RunReport", "Runner"]


class Runner:
    """One build of one plan."""

    def __init__(
        self, plan: Plan, states: Mapping[str, JobState], deps: RunDeps, config: RunConfig
    ):
        self.plan = plan
        self.states = states
        self.deps = deps
        self.config = config
        self.manifest = deps.manifest
        self.reporter = deps.reporter
        self.clock = deps.clock
        self.sleep = deps.sleep
        self.budget = Budget(config.max_cost)
        self.stop = deps.stop
        self.outcomes: dict[str, Outcome] = {}
        self.done: dict[str, asyncio.Event] = {}
        self.interrupted = False
        self.maker = Maker(plan, deps, config, self.outcomes, self.budget, self._stop_writing)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stop_reason(self) -> str | None:
        """Why no new paid work starts (None while it does)."""
        return self.stop.reason

    # -- public -----------------------------------------------------------------------------

    async def run(self) -> RunReport:
        """Run every job; returns when all reached a final state or the build was stopped."""
        start = self.clock()
        for job in self.plan.jobs:
            self.done[job.id] = asyncio.Event()
        already = 0
        for job in self.plan.jobs:
            state = self.states.get(job.id)
            if state and state.status == "up-to-date" and not self.config.force:
                self._finish(self.maker.up_to_date(job, state), report=False)
                already += 1
        self.reporter.started(len(self.plan.jobs), already)
        self._tasks = [
            asyncio.create_task(self._run_job(job), name=job.id)
            for job in self.plan.jobs
            if job.id not in self.outcomes
        ]
        checkpoint = asyncio.create_task(self._checkpoints())
        try:
            await asyncio.gather(*self._tasks, return_exceptions=False)
        except asyncio.CancelledError:
            self.interrupted = True
        finally:
            checkpoint.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checkpoint
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.to_thread(self.maker.close)
        for job in self.plan.jobs:
            if job.id not in self.outcomes:
                reason = "interrupted" if self.interrupted else (self.stop_reason or "not run")
                self.outcomes[job.id] = Outcome(
                    job, "skipped", error={"type": "not_started", "message": reason}
                )
        return RunReport(
            outcomes=dict(self.outcomes),
            stop_reason=self.stop_reason,
            budget_hit=self.budget.hit,
            interrupted=self.interrupted,
            spent_usd=self.budget.spent,
            elapsed_s=self.clock() - start,
        )

    def interrupt(self) -> None:
        """Ctrl-C: stop starting jobs and cancel the ones in flight (their work is lost)."""
        self.interrupted = True
        self.stop.set("interrupted")
        for task in self._tasks:
            task.cancel()

    # -- one job ----------------------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        for dep in job.depends_on:
            if dep in self.done:
                await self.done[dep].wait()
        inputs = [self.outcomes[d] for d in job.depends_on if d in self.outcomes]
        failed = [o.job.id for o in inputs if o.status in ("failed", "blocked")]
        if failed:
            self._finish(Outcome.blocked(job, failed[0]))
            return
        waiting = next((o for o in inputs if o.status == "pending"), None)
        if waiting is not None:
            self._finish(Outcome.waiting_for(job, waiting))
            return
        skipped = [o for o in inputs if o.status == "skipped"]
        if skipped:  # not started for the same reason (budget, stop, interrupt) as its input
            self._finish(Outcome(job, "skipped", error=dict(skipped[0].error or {})))
            return
        try:
            outcome = await self.maker.make(job)
        except asyncio.CancelledError:
            raise
        except ProviderFailure as failure:
            outcome = self._failed(job, failure)
        except LocalWriteError as exc:
            self._stop_writing(exc)
            outcome = Outcome.local_failure(
                job, exc, "write_error", self.maker.sunk.pop(job.id, 0.0)
            )
        except Exception as exc:  # a local error (decode, disk): fail the job, keep going
            outcome = Outcome.local_failure(job, exc, type(exc).__name__)
        self._finish(outcome)

    def _failed(self, job: Job, failure: ProviderFailure) -> Outcome:
        if failure.kind in ACCOUNT_KINDS:
            if self.stop.set(f"stopped after {failure.kind} failure: {failure.message}"):
                self.reporter.note(account_advice(failure))
        elif self.config.fail_fast:
            self.stop.set(f"--fail-fast after {job.id} failed")
        note = give_up_note(failure)
        if note:
            failure.message = f"{failure.message} ({note})"
        outcome = Outcome.from_failure(job, failure)
        outcome.cost_usd = outcome.spent_usd = self.maker.sunk.pop(job.id, 0.0)
        return outcome

    def _stop_writing(self, exc: LocalWriteError) -> None:
        """A write failed: start no more jobs, since their paid images could not be stored."""
        if self.stop.set(f"stopped after a write failed: {exc}"):
            self.reporter.note(write_failure_advice(exc))

    def _finish(self, outcome: Outcome, *, report: bool = True) -> None:
        job = outcome.job
        self.outcomes[job.id] = outcome
        if outcome.status == "failed" and self.config.fail_fast:
            self.stop.set(f"--fail-fast after {job.id} failed")
        self.done[job.id].set()
        if report:
            self.reporter.finished_job(outcome)

    async def _checkpoints(self) -> None:
        """Write the manifest every few seconds so even a killed build leaves one behind."""
        if self.deps.on_checkpoint is None:
            return
        written = 0
        while True:
            await self.sleep(self.config.checkpoint_s)
            if len(self.outcomes) != written:
                written = len(self.outcomes)
                write = asyncio.ensure_future(
                    asyncio.to_thread(self.deps.on_checkpoint, dict(self.outcomes))
                )
                try:
                    await asyncio.shield(write)
                except asyncio.CancelledError:
                    # A thread cannot be stopped: let this write end before the run
                    # does, or it would land over the final manifest with older news.
                    await write
                    raise
