"""Judge calls under the build's rules: slots, pacing, retries, the ``--max-cost`` budget.

A judge call is paid like an image call, so it travels the same way: the estimate is
reserved on the build's :class:`~pipeline.runner.budget.Budget` before it is sent (a call
that would pass the cap is not sent), it is paced by a
:class:`~pipeline.runner.limiter.RateLimiter` and retried by the same
:class:`~pipeline.runner.retry.RetryPolicy`, and what it cost comes from the usage the
API reported. Unlike an image call, a judge that fails (an outage, a refusal, an answer
off the schema) fails only the check: :meth:`JudgeCaller.call` returns the failure
instead of raising it, and the image is delivered all the same.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipeline.jobs import ProviderFailure
from pipeline.jobs.judging import Judge, JudgeModel, JudgeRequest, Verdict
from pipeline.runner.budget import Budget, Reservation
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class Judged:
    """One judge call's end: a verdict, or the failure that stands for it, and its cost."""

    verdict: Verdict | None
    failure: ProviderFailure | None
    cost_usd: float
    over_budget: bool = False
    """Not sent: its estimate did not fit under ``--max-cost``."""
    pending: str | None = None
    """The id of the judge batch the verdict still waits in (``build --batch``)."""


class JudgeCaller:
    """Sends judge requests within the build's slots, pace, retry policy and budget."""

    def __init__(
        self,
        judge: Judge,
        prices: JudgeModel,
        budget: Budget,
        limiter: RateLimiter,
        retry: RetryPolicy,
        *,
        concurrency: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ):
        self.judge = judge
        self.prices = prices
        self.budget = budget
        self.limiter = limiter
        self.retry = retry
        self.slots = asyncio.Semaphore(concurrency)
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.calls = 0
        """Judge requests sent (each attempt counts)."""

    async def call(self, request: JudgeRequest) -> Judged:
        """Judge one image; never raises for what the judge did."""
        estimate = self.prices.estimate(request.detail)
        reservation: Reservation | None = None
        attempt = 0
        try:
            while True:
                attempt += 1
                async with self.slots:
                    # Reserved once a slot is free, not while queued for one: calls waiting
                    # their turn hold no money, so a cap just above what judging costs
                    # still judges every image.
                    if reservation is None:
                        reservation = self.budget.reserve(estimate)
                        if reservation is None:
                            failure = ProviderFailure("quota", self.budget.refusal())
                            return Judged(None, failure, 0.0, over_budget=True)
                    started = await self.limiter.acquire(1)
                    self.calls += 1
                    try:
                        verdict = await self.judge.judge(request)
                    except ProviderFailure as failure:
                        if failure.kind == "rate_limit":
                            self.limiter.throttle(failure.retry_after_s, failure.rate, started)
                        delay = self.retry.delay(failure, attempt, self.rng)
                        failure.attempts = attempt
                        if delay is None:
                            # A 200 answer off the schema may well have been billed.
                            cost = (
                                estimate if failure.kind in ("bad_response", "moderation") else 0.0
                            )
                            reservation.settle(cost)
                            return Judged(None, failure, cost)
                    else:
                        cost = self.prices.actual(verdict.usage, request.detail)
                        reservation.settle(cost)
                        return Judged(verdict, None, cost)
                await self.sleep(delay)
        finally:
            if reservation is not None:
                reservation.release()

    async def aclose(self) -> None:
        """Close the judge's connections."""
        await self.judge.aclose()
