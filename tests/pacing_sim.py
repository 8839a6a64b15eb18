"""A rate-limited server and a client driving the real limiter, in simulated time.

The server admits at most ``ceil(ipm / 60)`` images per fixed one-second window, decided at
arrival, as ``tests/fakeapi.py`` does, and answers with its ``x-ratelimit-*`` headers (or
none) and a ``Retry-After`` of the rest of the window. The client is the dispatcher's loop
in miniature: at most ``concurrency`` requests in flight, each started through
:meth:`RateLimiter.acquire`, its answer fed back through ``observe`` / ``throttle`` with the
start stamp, and a refused request retried after :class:`RetryPolicy`'s delay. One
coroutine does all of it on a :class:`~pipeline.testing.FakeClock`, so time moves only when
something waits and a run of minutes takes milliseconds; answers that fall due while the
limiter sleeps are delivered at their own time, as the event loop would run them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass, field

from pipeline.jobs import ProviderFailure, RateLimitInfo
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.retry import RetryPolicy
from pipeline.testing import FakeClock


@dataclass(frozen=True)
class Reply:
    """One answer: admitted or refused, with what the server said."""

    ok: bool
    info: RateLimitInfo | None
    retry_after_s: float | None


@dataclass
class WindowServer:
    """Fixed one-second windows of ``ceil(ipm / 60)`` images each."""

    images_per_minute: int
    headers: bool = True
    retry_after: bool = True
    foreign: dict[int, int] = field(default_factory=dict)
    """Images other clients of the account used, by window."""
    admitted: Counter[int] = field(default_factory=Counter)

    @property
    def capacity(self) -> int:
        return math.ceil(self.images_per_minute / 60)

    def answer(self, now: float) -> Reply:
        window = math.floor(now)
        used = self.admitted[window] + self.foreign.get(window, 0)
        left = window + 1 - now
        ok = used < self.capacity
        if ok:
            self.admitted[window] += 1
            used += 1
        info = (
            RateLimitInfo(
                limit_images=self.images_per_minute,
                remaining_images=self.capacity - used if ok else 0,
                reset_images_s=left,
            )
            if self.headers
            else None
        )
        return Reply(ok, info, left if not ok and self.retry_after else None)


@dataclass
class Run:
    """What happened: every start, every refusal, and the pace after every event."""

    limiter: RateLimiter
    clock: FakeClock
    starts: list[float] = field(default_factory=list)
    admitted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    pace: list[tuple[float, float | None]] = field(default_factory=list)

    def rate(self, since: float, until: float) -> float:
        """Admitted starts per second in ``[since, until)``."""
        return sum(since <= t < until for t in self.admitted) / (until - since)

    def starts_per_window(self, since: float = 0.0) -> Counter[int]:
        return Counter(math.floor(t) for t in self.starts if t >= since)

    def paces(self, since: float) -> set[float | None]:
        """The distinct paces (images/min) the limiter held from ``since`` on."""
        return {p for t, p in self.pace if t >= since}


def simulate(
    server: WindowServer,
    images_per_minute: float | None = None,
    *,
    jobs: int,
    concurrency: int = 8,
    latency: float = 1.0,
    reject_latency: float = 0.01,
    seed: int = 0,
) -> Run:
    """Run ``jobs`` single-image requests to success against ``server`` through a
    :class:`RateLimiter` configured with ``images_per_minute`` (None: learn it)."""
    clock = FakeClock()
    delivered = 0

    async def sleep(seconds: float) -> None:
        """The limiter's sleep: answers due meanwhile are handled at their time."""
        nonlocal delivered
        until = clock.now + seconds
        while flying and flying[0][0] < until:
            await clock.sleep(max(0.0, flying[0][0] - clock.now))
            delivered += deliver()
        await clock.sleep(until - clock.now)

    limiter = RateLimiter(images_per_minute, None, clock=clock, sleep=sleep)
    run = Run(limiter, clock)
    policy = RetryPolicy(max_attempts=1000)
    rng = random.Random(seed)
    order = itertools.count()
    ready: list[tuple[float, int, int]] = [(0.0, next(order), 1) for _ in range(jobs)]
    flying: list[tuple[float, int, float, int, Reply]] = []

    def deliver() -> int:
        done = 0
        while flying and flying[0][0] <= clock.now:
            _, _, started, attempt, reply = heapq.heappop(flying)
            if reply.ok:
                limiter.observe(reply.info, started)
                done += 1
            else:
                limiter.throttle(reply.retry_after_s, reply.info, started)
                failure = ProviderFailure("rate_limit", "429", retry_after_s=reply.retry_after_s)
                delay = policy.delay(failure, attempt, rng)
                assert delay is not None
                heapq.heappush(ready, (clock.now + delay, next(order), attempt + 1))
            run.pace.append((clock.now, limiter.images_per_minute))
        return done

    async def go() -> None:
        nonlocal delivered
        while delivered < jobs:
            delivered += deliver()
            if len(flying) < concurrency and ready and ready[0][0] <= clock.now:
                _, _, attempt = heapq.heappop(ready)
                started = await limiter.acquire()
                now = clock.now
                reply = server.answer(now)
                run.starts.append(now)
                (run.admitted if reply.ok else run.refused).append(now)
                back = now + (latency if reply.ok else reject_latency)
                heapq.heappush(flying, (back, next(order), started, attempt, reply))
                continue
            due = [flying[0][0]] if flying else []
            if ready and len(flying) < concurrency:
                due.append(ready[0][0])
            if due and min(due) > clock.now:
                await clock.sleep(min(due) - clock.now)

    asyncio.run(go())
    return run
