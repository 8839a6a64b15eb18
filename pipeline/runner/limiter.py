"""Pacing requests within the account's rate limits.

OpenAI meters image models in images per minute and enforces that over short intervals,
so a burst of ``concurrency`` requests at a limit of 5 IPM is a 429 storm. The limiter
spaces starts evenly at the allowed rate (a token bucket holding at most one token, so
there is no burst), learns the limit from ``x-ratelimit-limit-images`` when the user did
not set one, holds every start when the server says ``Retry-After`` or shows the window
is spent, and after a 429 slows down, then creeps back to the limit as requests succeed.

Every wait the server can steer (``Retry-After``, ``x-ratelimit-reset-*``, a tiny advertised
limit) is capped at :data:`~pipeline.runner.retry.MAX_RETRY_AFTER_S`: a hold asking for
more is clamped to it, a non-finite or negative one is ignored, and no single sleep of
``acquire`` is longer, so a hostile or broken server can slow a build but never freeze it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from pipeline.jobs import RateLimitInfo
from pipeline.runner.retry import MAX_RETRY_AFTER_S

PACE = 0.99
"""Pace a hair under the limit: arrivals jitter, and the server counts per window."""
BACKOFF = 0.7
"""After a 429 the rate drops to this fraction..."""
RECOVERY = 1.02
"""...and grows back by this factor per success, up to the limit."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class _Bucket:
    """Evenly spaced starts at ``rate`` per second."""

    def __init__(self, rate: float | None, clock: Clock):
        self.limit = rate
        self.rate = rate
        self.clock = clock
        self.next_at = 0.0

    def reserve(self, now: float, cost: float = 1.0) -> float:
        """Take a slot; returns how long to wait before using it."""
        if not self.rate:
            return 0.0
        start = max(now, self.next_at)
        self.next_at = start + cost / self.rate
        return start - now

    def slow_down(self) -> None:
        if self.rate:
            self.rate = max(self.rate * BACKOFF, (self.limit or self.rate) * 0.05)

    def recover(self) -> None:
        if self.rate and self.limit:
            self.rate = min(self.limit, self.rate * RECOVERY)

    def set_limit(self, per_second: float) -> None:
        self.limit = per_second
        self.rate = per_second if self.rate is None else min(self.rate, per_second)


class RateLimiter:
    """Shared by every request of a build; ``acquire`` before each call, ``observe`` after."""

    def __init__(
        self,
        images_per_minute: float | None,
        requests_per_minute: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ):
        self.clock = clock
        self.sleep = sleep
        self.user_images = images_per_minute is not None
        self.images = _Bucket(images_per_minute / 60 * PACE if images_per_minute else None, clock)
        self.requests = _Bucket(
            requests_per_minute / 60 * PACE if requests_per_minute else None, clock
        )
        self.hold_until = 0.0
        self._lock = asyncio.Lock()
        self.throttled = 0

    async def acquire(self, images: int = 1) -> None:
        """Wait until one more request of ``images`` images may start."""
        async with self._lock:
            while True:
                now = self.clock()
                if now < self.hold_until:
                    await self.sleep(min(self.hold_until - now, MAX_RETRY_AFTER_S))
                    continue
                wait = max(self.images.reserve(now, images), self.requests.reserve(now))
                if wait > 0:
                    await self.sleep(min(wait, MAX_RETRY_AFTER_S))
                return

    def observe(self, info: RateLimitInfo | None) -> None:
        """Learn from the rate-limit headers of a successful response."""
        if info is None:
            return
        if info.limit_images and not self.user_images:
            self.images.set_limit(info.limit_images / 60 * PACE)
        if info.remaining_images == 0 and info.reset_images_s:
            self.hold(info.reset_images_s)
        elif info.remaining_requests == 0 and info.reset_requests_s:
            self.hold(info.reset_requests_s)
        self.images.recover()
        self.requests.recover()

    def throttle(self, retry_after_s: float | None, info: RateLimitInfo | None) -> None:
        """A 429: hold every start for ``Retry-After`` and slow the pace."""
        self.throttled += 1
        if info is not None and info.limit_images and not self.user_images:
            self.images.set_limit(info.limit_images / 60 * PACE)
        self.images.slow_down()
        self.requests.slow_down()
        if retry_after_s:
            self.hold(retry_after_s)

    def hold(self, seconds: float) -> None:
        """No request starts for ``seconds`` from now (at most ``MAX_RETRY_AFTER_S``; a
        non-finite or negative value holds nothing)."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self.hold_until = max(self.hold_until, self.clock() + min(seconds, MAX_RETRY_AFTER_S))
