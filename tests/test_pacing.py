"""Rate limiter, retry policy and rate-limit header parsing, on a fake clock."""

from __future__ import annotations

import asyncio
import random

import pytest
from clock import FakeClock

from pipeline.jobs import ProviderFailure, RateLimitInfo
from pipeline.providers.ratelimit_headers import parse_duration, rate_limit_info, retry_after
from pipeline.runner.limiter import PACE, RateLimiter
from pipeline.runner.retry import RetryPolicy


def starts(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    async def go() -> list[float]:
        times = []
        for _ in range(n):
            await limiter.acquire()
            times.append(clock.now)
        return times

    return asyncio.run(go())


def test_limiter_spaces_starts_evenly_at_the_paced_rate():
    """At 60 images/min, starts are 1/0.99 s apart: no burst at the start."""
    clock = FakeClock()
    limiter = RateLimiter(60, None, clock=clock, sleep=clock.sleep)
    times = starts(limiter, clock, 4)
    gap = 1 / PACE
    assert times == pytest.approx([0.0, gap, 2 * gap, 3 * gap])


def test_limiter_without_limit_never_waits():
    """No configured or learned limit: acquire returns at once."""
    clock = FakeClock()
    limiter = RateLimiter(None, None, clock=clock, sleep=clock.sleep)
    assert starts(limiter, clock, 5) == [0.0] * 5


def test_limiter_learns_the_limit_from_headers():
    """x-ratelimit-limit-images sets the pace when the user gave none."""
    clock = FakeClock()
    limiter = RateLimiter(None, None, clock=clock, sleep=clock.sleep)
    limiter.observe(RateLimitInfo(limit_images=120))
    times = starts(limiter, clock, 3)
    assert times[2] - times[1] == pytest.approx(0.5 / PACE)


def test_user_limit_wins_over_headers():
    """A configured images-per-minute is not raised by what the server advertises."""
    clock = FakeClock()
    limiter = RateLimiter(60, None, clock=clock, sleep=clock.sleep)
    limiter.observe(RateLimitInfo(limit_images=6000))
    times = starts(limiter, clock, 2)
    assert times[1] == pytest.approx(1 / PACE)


def test_throttle_holds_every_start_for_retry_after_and_slows_down():
    """A 429 with Retry-After 5 s holds the next start 5 s and lowers the rate by 30%."""
    clock = FakeClock()
    limiter = RateLimiter(60, None, clock=clock, sleep=clock.sleep)
    starts(limiter, clock, 1)
    limiter.throttle(5.0, None)
    times = starts(limiter, clock, 2)
    assert times[0] == pytest.approx(5.0)
    assert times[1] - times[0] == pytest.approx(1 / (PACE * 0.7))
    assert limiter.throttled == 1


def test_spent_window_in_headers_holds_until_reset():
    """remaining-images 0 with reset 2s holds starts for 2 s."""
    clock = FakeClock()
    limiter = RateLimiter(None, None, clock=clock, sleep=clock.sleep)
    limiter.observe(RateLimitInfo(remaining_images=0, reset_images_s=2.0))
    assert starts(limiter, clock, 1) == [2.0]


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [
        ("rate_limit", True),
        ("server", True),
        ("timeout", True),
        ("connection", True),
        ("moderation", False),
        ("invalid_request", False),
        ("auth", False),
        ("permission", False),
        ("quota", False),
        ("not_found", False),
    ],
)
def test_retry_policy_retries_only_what_can_succeed(kind, retryable):
    """Retryable kinds get a delay; terminal kinds get None on the first attempt."""
    delay = RetryPolicy().delay(ProviderFailure(kind, "x"), 1, random.Random(1))
    assert (delay is not None) is retryable


def test_retry_policy_honours_retry_after_and_gives_up():
    """Retry-After is used as given (plus < 0.25 s jitter); past max_attempts, no retry."""
    policy = RetryPolicy(max_attempts=3)
    failure = ProviderFailure("rate_limit", "slow down", retry_after_s=7.0)
    delay = policy.delay(failure, 1, random.Random(1))
    assert delay is not None
    assert 7.0 <= delay < 7.25
    assert policy.delay(failure, 3, random.Random(1)) is None


def test_retry_policy_refuses_absurd_retry_after():
    """A Retry-After of an hour fails the job rather than stalling the build."""
    failure = ProviderFailure("rate_limit", "later", retry_after_s=3600)
    assert RetryPolicy().delay(failure, 1, random.Random(1)) is None


def test_backoff_is_exponential_with_full_jitter_and_a_cap():
    """Without Retry-After the delay is uniform in [0, min(cap, base*2^(n-1))]."""
    policy = RetryPolicy(base_s=1.0, cap_s=8.0, max_attempts=10)
    failure = ProviderFailure("server", "oops")
    rng = random.Random(3)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 8.0)]:
        delays = [policy.delay(failure, attempt, rng) for _ in range(200)]
        assert all(d is not None and 0 <= d <= ceiling for d in delays)
        assert max(d for d in delays if d is not None) > ceiling * 0.8


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("120ms", 0.12),
        ("1m30s", 90.0),
        ("2.5", 2.5),
        ("6m0s", 360.0),
        ("", None),
        ("soon", None),
    ],
)
def test_parse_duration(text, seconds):
    """OpenAI's reset durations read as seconds; junk reads as None."""
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_prefers_milliseconds_header():
    """retry-after-ms wins over retry-after; plain seconds work alone."""
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after({"retry-after": "20"}) == 20.0
    assert retry_after({}) is None


def test_rate_limit_info_reads_image_headers():
    """The x-ratelimit-*-images headers become numbers; absent headers give None."""
    info = rate_limit_info(
        {
            "x-ratelimit-limit-images": "250",
            "x-ratelimit-remaining-images": "0",
            "x-ratelimit-reset-images": "240ms",
            "x-ratelimit-limit-requests": "5000",
        }
    )
    assert info == RateLimitInfo(
        limit_requests=5000,
        limit_images=250,
        remaining_images=0,
        reset_images_s=pytest.approx(0.24),
    )
    assert rate_limit_info({"content-type": "application/json"}) is None
