"""How a request reaches the API: the dispatcher interface and its direct implementation.

The scheduler decides *what* to run; a dispatcher decides *how* a paid request travels.
:class:`DirectDispatcher` sends each one at once through the provider, within the slots,
the rate limiter and the retry policy. A batch dispatcher (the Batch API, half price)
implements the same :meth:`Dispatcher.call` by queueing requests into batch files and
resolving each call as its line arrives, so the scheduler does not change.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from pipeline.hashing import CacheRequest
from pipeline.jobs import ImageRequest, ImageResult, Job, Provider, ProviderFailure
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.retry import RetryPolicy

T = TypeVar("T")

OnResult = Callable[[ImageResult, int], Awaitable[T]]
"""Called with a paid result and its attempt number while the request still holds its
place, so the bytes are committed before that place goes to another paid request."""


class NotStarted(Exception):
    """The build stopped (budget, account failure, interrupt) before this request was sent."""


class Pending(Exception):
    """The request is in an open batch that this build does not wait for (``--no-wait``,
    or a batch whose results could not be read yet); the next ``build --batch`` collects
    it, and no build pays for it again."""

    def __init__(self, batch_id: str):
        super().__init__(batch_id)
        self.batch_id = batch_id


class Dispatcher(Protocol):
    """Sends paid requests; one call per API job."""

    async def call(
        self, job: Job, asked: CacheRequest, request: ImageRequest, on_result: OnResult[T]
    ) -> T:
        """Send ``request`` (the job's request, whose cache key is ``asked.key``) until it
        succeeds or fails for good; return ``on_result``'s value.

        Raises :class:`ProviderFailure` when it gave up, :class:`NotStarted` when the
        build stopped before it was sent, :class:`Pending` when it waits in a batch this
        build does not wait for."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class DirectDispatcher:
    """One request at a time per slot, paced by the limiter, retried by the policy."""

    def __init__(
        self,
        provider: Provider,
        limiter: RateLimiter,
        retry: RetryPolicy,
        *,
        concurrency: int,
        stopped: Callable[[], bool],
        on_retry: Callable[[Job, ProviderFailure, float, int], None],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        ready: Callable[[], Awaitable[None]] | None = None,
    ):
        self.provider = provider
        self.ready = ready
        """Awaited before each request is paced: a provider made on first use is made
        before its first request's start is stamped, so its making never eats the pace."""
        self.limiter = limiter
        self.retry = retry
        self.slots = asyncio.Semaphore(concurrency)
        self.stopped = stopped
        self.on_retry = on_retry
        self.sleep = sleep
        self.rng = rng or random.Random()

    async def call(
        self, job: Job, asked: CacheRequest, request: ImageRequest, on_result: OnResult[T]
    ) -> T:
        """See :meth:`Dispatcher.call` (the key plays no part in a direct call)."""
        if self.ready is not None:
            await self.ready()
        attempt = 0
        while True:
            attempt += 1
            async with self.slots:
                if self.stopped():
                    raise NotStarted
                started = await self.limiter.acquire(int(job.params.get("n", 1)))
                try:
                    result = await self.provider.generate(request)
                except ProviderFailure as failure:
                    if failure.kind == "rate_limit":
                        self.limiter.throttle(failure.retry_after_s, failure.rate, started)
                    delay = self.retry.delay(failure, attempt, self.rng)
                    failure.attempts = attempt
                    if delay is None:
                        raise
                    last = failure
                else:
                    self.limiter.observe(result.rate, started)
                    return await on_result(result, attempt)
            self.on_retry(job, last, delay, attempt)
            await self.sleep(delay)

    async def aclose(self) -> None:
        """Close the provider's connections."""
        await self.provider.aclose()


class SplitDispatcher:
    """A batch build's dispatcher when the Batch API does not take some models: their
    requests go through ``direct`` (at once, at the full price), every other one through
    ``batch``, so one build makes every image without the caller choosing per job."""

    def __init__(self, batch: Dispatcher, direct: Dispatcher, direct_models: frozenset[str]):
        self.batch = batch
        self.direct = direct
        self.direct_models = direct_models

    async def call(
        self, job: Job, asked: CacheRequest, request: ImageRequest, on_result: OnResult[T]
    ) -> T:
        """See :meth:`Dispatcher.call`: the request's model decides the route."""
        chosen = self.direct if request.model in self.direct_models else self.batch
        return await chosen.call(job, asked, request, on_result)

    async def aclose(self) -> None:
        """Close both routes (the direct one's provider only if it was made)."""
        try:
            await self.batch.aclose()
        finally:
            await self.direct.aclose()
