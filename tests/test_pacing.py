"""Rate limiter, retry policy and rate-limit header parsing, on a fake clock."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import random
from collections import Counter
from types import SimpleNamespace

import pytest
from pacing_sim import WindowServer, simulate

from pipeline.jobs import ImageResult, ProviderFailure, RateLimitInfo
from pipeline.providers.ratelimit_headers import parse_duration, rate_limit_info, retry_after
from pipeline.runner.dispatch import DirectDispatcher
from pipeline.runner.limiter import BACKOFF, PACE, WINDOW_S, RateLimiter
from pipeline.runner.pace import CATCH_UP
from pipeline.runner.retry import RetryPolicy
from pipeline.testing import FakeClock


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


def limiter_on(clock: FakeClock, images_per_minute: float | None = None) -> RateLimiter:
    return RateLimiter(images_per_minute, None, clock=clock, sleep=clock.sleep)


def test_a_burst_of_429s_then_headers_paces_at_the_advertised_limit_at_once():
    """No --images-per-minute, 120/min in one-second windows, 8 in flight: the first wave
    gets 6 429s (one signal, explained by sending unpaced), and from the next window on
    every start is admitted at 99% of the advertised 120/min, for 200 images."""
    run = simulate(WindowServer(120), jobs=200, concurrency=8, latency=1.0)
    assert run.refused == [0.0] * 6
    assert run.limiter.throttled == 6
    assert run.limiter.signals == 1
    assert run.limiter.images_per_minute == pytest.approx(120 * PACE)
    for since in range(1, 90, 10):  # every ten-second stretch after the first second
        assert run.rate(since, since + 10) >= 0.9 * 2
    assert run.clock.now < 100 / PACE + 1.5


def test_one_burst_of_k_429s_lowers_the_pace_once():
    """Five requests in flight together all get a 429: the pace drops by BACKOFF once, not
    BACKOFF**5; a 429 for a request sent after that reaction is a new signal."""
    clock = FakeClock()
    limiter = limiter_on(clock, 60)
    stamps = starts(limiter, clock, 5)
    clock.now += 0.01  # the answers come back after the last was sent
    for stamp in stamps:
        limiter.throttle(None, None, stamp)
    assert limiter.throttled == 5
    assert limiter.signals == 1
    assert limiter.images_per_minute == pytest.approx(60 * PACE * BACKOFF)
    later = starts(limiter, clock, 1)[0]
    clock.now += 0.01
    limiter.throttle(None, None, later)
    assert limiter.signals == 2
    assert limiter.images_per_minute == pytest.approx(60 * PACE * BACKOFF**2)


def test_the_dispatcher_passes_each_start_stamp_so_a_burst_is_one_signal():
    """Four requests in flight together through the direct dispatcher all get a 429 with
    the advertised limit: the limiter hears four 429s as one signal, paces at 120/min
    without cutting below it, and every request succeeds on its second attempt."""
    clock = FakeClock()
    limiter = limiter_on(clock)
    together = asyncio.Event()
    calls = 0
    spent = RateLimitInfo(limit_images=120, remaining_images=0, reset_images_s=1.0)

    class Provider:
        async def generate(self, request: object) -> ImageResult:
            nonlocal calls
            calls += 1
            if calls <= 4:
                if calls == 4:
                    together.set()
                await together.wait()
                raise ProviderFailure("rate_limit", "429", retry_after_s=1.0, rate=spent)
            return ImageResult(b"image", "png", rate=RateLimitInfo(limit_images=120))

        async def aclose(self) -> None:
            return None

    dispatcher = DirectDispatcher(
        Provider(),
        limiter,
        RetryPolicy(),
        concurrency=4,
        stopped=lambda: False,
        on_retry=lambda *_: None,
        sleep=clock.sleep,
        rng=random.Random(0),
    )
    job = SimpleNamespace(params={})

    async def attempt_of(result: ImageResult, attempt: int) -> int:
        return attempt

    async def go() -> list[int]:
        sent = [dispatcher.call(job, "key", None, attempt_of) for _ in range(4)]
        return list(await asyncio.gather(*sent))

    assert asyncio.run(go()) == [2, 2, 2, 2]
    assert limiter.throttled == 4
    assert limiter.signals == 1
    assert limiter.images_per_minute == pytest.approx(120 * PACE)


def test_a_cut_climbs_back_to_the_advertised_limit_within_seconds():
    """Paced at the advertised limit, another client of the account spends window 20: the
    one refusal lowers the pace once (and holds the start already waiting for its slot),
    and within 4 s of it the pace is back at the limit, with no other 429."""
    run = simulate(WindowServer(120, foreign={20: 2}), jobs=80, concurrency=8, latency=1.0)
    late = [t for t in run.refused if t >= 1]
    assert len(late) == 1
    assert 20 <= late[0] < 21
    assert run.limiter.signals == 2
    limit = 120 * PACE
    paces = [(t, p) for t, p in run.pace if t > late[0]]
    assert min(p or 0 for _, p in paces) == pytest.approx(limit * BACKOFF)
    back = next(t for t, p in paces if p and p >= 0.9 * limit)
    assert back - late[0] < 4
    assert run.limiter.images_per_minute == pytest.approx(limit)


@pytest.mark.parametrize(("ipm", "concurrency", "latency"), [(120, 8, 1.0), (1200, 32, 0.3)])
def test_no_start_exceeds_a_window_once_the_limit_is_known(ipm, concurrency, latency):
    """With the limit configured, no request is ever refused; learned from the first
    answers, none after the first second; either way no one-second window gets more
    starts than the server admits."""
    capacity = WindowServer(ipm).capacity
    configured = simulate(
        WindowServer(ipm), ipm, jobs=2 * ipm, concurrency=concurrency, latency=latency
    )
    assert configured.refused == []
    assert max(configured.starts_per_window().values()) <= capacity
    learned = simulate(WindowServer(ipm), jobs=2 * ipm, concurrency=concurrency, latency=latency)
    assert learned.refused
    assert all(t == 0.0 for t in learned.refused)
    assert max(learned.starts_per_window(since=1).values()) <= capacity


@pytest.mark.parametrize("retry_after_header", [True, False])
def test_a_header_less_429_storm_settles_without_oscillating(retry_after_header):
    """A server that advertises no limit (with or without Retry-After): the pace comes
    down in a few signals, then holds one value for the second half of a 300-image build,
    with no 429 there and at least 85% of the real limit admitted."""
    server = WindowServer(120, headers=False, retry_after=retry_after_header)
    run = simulate(server, jobs=300, concurrency=8, latency=1.0)
    half = run.clock.now / 2
    assert [t for t in run.refused if t >= half] == []
    assert len(run.paces(half)) == 1
    assert run.limiter.signals <= 10
    assert 0.85 * 2 <= run.rate(half, run.clock.now - 1) <= 2.0


@pytest.mark.parametrize(("mean_late_s", "stall_every"), [(0.003, 0), (0.004, 40)])
def test_late_wake_ups_do_not_slow_the_pace_nor_overfill_a_window(mean_late_s, stall_every):
    """A busy event loop wakes each start late (``mean_late_s`` on average, up to 60 ms;
    on a loaded machine also a 0.1 s stall every 40 wake-ups): at 1,200/min the 200th
    start is still on the even schedule, no one-second span, aligned or not, holds more
    than the 20 starts the limit allows, and starts catching up are never closer than
    CATCH_UP of an interval. (Passing each start's lateness on to the next would end
    0.55-1.1 s late here.)"""
    clock = FakeClock()
    rng = random.Random(7)
    woken = 0

    async def late_sleep(seconds: float) -> None:
        nonlocal woken
        woken += 1
        late = min(0.06, rng.expovariate(1 / mean_late_s))
        stall = 0.1 if stall_every and woken % stall_every == 0 else 0.0
        await clock.sleep(seconds + late + stall)

    limiter = RateLimiter(1200, None, clock=clock, sleep=late_sleep)
    times = starts(limiter, clock, 200)
    interval = 1 / (20 * PACE)
    assert times[-1] <= 199 * interval + 0.06
    assert max(Counter(math.floor(t) for t in times).values()) <= 20
    assert max(bisect.bisect_left(times, t + 1) - i for i, t in enumerate(times)) <= 20
    assert min(b - a for a, b in itertools.pairwise(times)) >= CATCH_UP * interval


def test_a_spent_window_holds_from_when_the_request_was_sent():
    """remaining-images 0 with reset 1 s, on an answer that took 0.8 s: the window resets
    1 s after the request was sent, so the next start waits 0.2 s, not 1 s."""
    clock = FakeClock()
    limiter = limiter_on(clock)
    sent = starts(limiter, clock, 1)[0]
    clock.now += 0.8
    limiter.observe(RateLimitInfo(remaining_images=0, reset_images_s=1.0), sent)
    assert starts(limiter, clock, 1) == [pytest.approx(1.0)]


def test_a_429_without_retry_after_holds_for_its_window():
    """A 429 that names no wait holds starts until the reset its headers give, else for
    WINDOW_S (the API's windows are about that short)."""
    clock = FakeClock()
    limiter = limiter_on(clock)
    limiter.throttle(None, RateLimitInfo(remaining_images=0, reset_images_s=0.3))
    assert starts(limiter, clock, 1) == [pytest.approx(0.3)]
    clock = FakeClock()
    limiter = limiter_on(clock)
    limiter.throttle(None, None)
    assert starts(limiter, clock, 1) == [pytest.approx(WINDOW_S)]


def test_an_advertised_limit_below_the_configured_one_wins():
    """--images-per-minute 1200 on an account that advertises 120: paced at 120."""
    clock = FakeClock()
    limiter = limiter_on(clock, 1200)
    limiter.observe(RateLimitInfo(limit_images=120))
    assert limiter.images_per_minute == pytest.approx(120 * PACE)


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
