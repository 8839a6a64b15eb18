"""The retry policy: which failures to try again, and when.

Only failures that can go differently next time are retried (429 rate limits, 5xx,
timeouts, dropped connections, and once a malformed answer); a moderation block, a bad
parameter, an unverified organization, an empty quota or an answer over a size cap (an
image or SVG larger than assetpipe reads: the model draws as much again) gives the same
answer every time, so it is reported once. The wait is the server's ``Retry-After``
when it gave one, else exponential backoff with full jitter so that many waiting jobs do
not come back in one wave.

Waits the server controls are capped at :data:`MAX_RETRY_AFTER_S`: a longer ``Retry-After``
fails that job at once (with a message saying so) instead of holding the build for days.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pipeline.jobs import ProviderFailure

MAX_RETRY_AFTER_S = 900.0
"""A server asking for a longer pause than this fails the job instead of stalling the build;
the rate limiter never holds starts longer than this either."""

BAD_RESPONSE_ATTEMPTS = 2
"""A malformed answer (no image, not base64) is tried once more, in case it was mangled in
transit, and never again: a 200 answer may well have been billed. One over a size cap is
not retried at all (:attr:`~pipeline.jobs.ProviderFailure.too_large`)."""


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
        if failure.kind == "bad_response" and attempt >= BAD_RESPONSE_ATTEMPTS:
            return None
        wait = failure.retry_after_s
        if wait is not None and math.isfinite(wait) and wait >= 0:
            if wait > MAX_RETRY_AFTER_S:
                return None
            return wait + rng.uniform(0, 0.25)
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


def give_up_note(failure: ProviderFailure) -> str | None:
    """Why a retryable failure was not retried when the reason is the server's wait, for the
    job's error message; None otherwise."""
    wait = failure.retry_after_s
    if failure.retryable and wait is not None and math.isfinite(wait) and wait > MAX_RETRY_AFTER_S:
        return (
            f"the server asked to wait {wait:.0f} s before retrying, longer than the "
            f"{MAX_RETRY_AFTER_S:.0f} s assetpipe waits; build again later"
        )
    return None
