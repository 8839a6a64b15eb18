"""The retry policy: which failures to try again, and when.

Only failures that can go differently next time are retried (429 rate limits, 5xx,
timeouts, dropped connections); a moderation block, a bad parameter, an unverified
organization or an empty quota gives the same answer every time, so it is reported once.
The wait is the server's ``Retry-After`` when it gave one, else exponential backoff with
full jitter so that many waiting jobs do not come back in one wave.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pipeline.jobs import ProviderFailure

MAX_RETRY_AFTER_S = 900.0
"""A server asking for a longer pause than this fails the job instead of stalling the build."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts and how long to wait between them."""

    max_attempts: int = 6
    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, failure: ProviderFailure, attempt: int, rng: random.Random) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        if not failure.retryable or attempt >= self.max_attempts:
            return None
        if failure.retry_after_s is not None:
            if failure.retry_after_s > MAX_RETRY_AFTER_S:
                return None
            return failure.retry_after_s + rng.uniform(0, 0.25)
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))
