"""Shards sharing one organisation's limit: several limiters against one windowed server.

Each shard is a client in miniature (``concurrency`` requests in flight, each started
through its own :class:`RateLimiter`, answered after ``latency``, a refusal retried after
:class:`RetryPolicy`'s delay), all of them against one :class:`WindowServer` and one
virtual clock: time moves only when every shard waits, so minutes take milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from pacing_sim import WindowServer

from pipeline.jobs import ProviderFailure, RateLimitInfo
from pipeline.jobs.shards import SharedLimit
from pipeline.runner.limiter import PACE, RateLimiter
from pipeline.runner.retry import RetryPolicy
from pipeline.testing import FakeClock


class VirtualTime:
    """A clock shared by several tasks: each sleep waits for its turn, and time jumps to
    the earliest wake-up once every task is waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        done = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._order), done))
        await done

    async def run(self, *work: asyncio.Future[object] | asyncio.Task[object]) -> None:
        while not all(w.done() for w in work):
            for _ in range(40):  # let every task that can run reach its next wait
                await asyncio.sleep(0)
            if all(w.done() for w in work):
                break
            assert self._timers, "every task waits on something other than time"
            at, _, done = heapq.heappop(self._timers)
            self.now = max(self.now, at)
            done.set_result(None)
        for w in work:
            w.result()


@dataclass
class Shard:
    """One shard's run: its limiter, when it finished, and what it sent."""

    limiter: RateLimiter
    jobs: int
    starts: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    finished_at: float = 0.0


def run_shards(
    server: WindowServer,
    jobs: list[int],
    *,
    images_per_minute: float | None = None,
    sharers: int | None = None,
    offsets: list[float] | None = None,
    weights: list[int] | None = None,
    turns: bool = True,
    skews: list[float] | None = None,
    concurrency: int = 8,
    latency: float = 1.0,
    seed: int = 0,
) -> tuple[list[Shard], float]:
    """Run one shard per entry of ``jobs`` (its job count) against ``server`` at once;
    each limiter is told ``images_per_minute`` and that ``sharers`` (default: as many as
    there are shards) spend the limit, and, with ``turns``, its place among them and
    every shard's ``weights`` (default: the job counts, as a build weighs its paid jobs).
    Each shard's wall clock is the virtual one plus its entry of ``skews`` (clocks NTP
    keeps close, not equal). Returns the shards and when the last finished."""
    clock = VirtualTime()
    count = len(jobs) if sharers is None else sharers
    weighed = tuple(weights or jobs)

    def limiter(i: int) -> RateLimiter:
        skew = skews[i] if skews else 0.0
        return RateLimiter(
            images_per_minute,
            None,
            clock=clock,
            sleep=clock.sleep,
            sharers=count,
            shared=SharedLimit(i + 1, weighed) if turns and count > 1 else None,
            wall=lambda: clock.now + skew,
        )

    shards = [Shard(limiter(i), n) for i, n in enumerate(jobs)]
    policy = RetryPolicy(max_attempts=1000)
    rng = random.Random(seed)

    async def one(shard: Shard, slots: asyncio.Semaphore) -> None:
        attempt = 1
        while True:
            async with slots:
                started = await shard.limiter.acquire()
                reply = server.answer(clock.now)
                shard.starts.append(clock.now)
                if reply.ok:
                    await clock.sleep(latency)
                    shard.limiter.observe(reply.info, started)
                    return
                shard.refused.append(clock.now)
                await clock.sleep(0.01)
                shard.limiter.throttle(reply.retry_after_s, reply.info, started)
            failure = ProviderFailure("rate_limit", "429", retry_after_s=reply.retry_after_s)
            delay = policy.delay(failure, attempt, rng)
            assert delay is not None
            await clock.sleep(delay)
            attempt += 1

    async def shard_run(shard: Shard, offset: float) -> None:
        await clock.sleep(offset)
        slots = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(one(shard, slots) for _ in range(shard.jobs)))
        shard.finished_at = clock.now

    async def go() -> None:
        delays = offsets or [0.0] * len(shards)
        tasks = [
            asyncio.ensure_future(shard_run(s, d)) for s, d in zip(shards, delays, strict=True)
        ]
        await clock.run(*tasks)

    asyncio.run(go())
    return shards, max(s.finished_at for s in shards)


def share_of_limit(shards: list[Shard], ipm: int, end: float) -> float:
    """Images admitted per minute over the whole run, as a share of the limit."""
    return sum(s.jobs for s in shards) / end * 60 / ipm


def refused_share(shards: list[Shard]) -> float:
    """Requests answered 429, as a share of all requests."""
    return sum(len(s.refused) for s in shards) / sum(len(s.starts) for s in shards)


UNEVEN = [42, 50, 58]
"""A hash's split of 150 chains into three shards: as uneven as one usually is."""
OFFSETS = [0.0, 0.4, 0.9]
"""The shards' processes start a little apart (imports, planning)."""


def test_a_given_limit_is_split_among_the_shards_from_the_first_start():
    """Told 120/min and that 3 shards share it, a limiter paces at 40/min from its first
    start (starts 1.5 s apart), not at 120."""
    clock = FakeClock()
    limiter = RateLimiter(120, None, clock=clock, sleep=clock.sleep, sharers=3)
    assert limiter.images_per_minute == pytest.approx(40 * PACE)

    async def go() -> list[float]:
        times = []
        for _ in range(3):
            await limiter.acquire()
            times.append(clock.now)
        return times

    assert asyncio.run(go()) == pytest.approx([0.0, 1.5 / PACE, 3.0 / PACE])


def test_a_limit_of_ones_own_is_not_split():
    """One sharer (``limit_scope: shard``, or no shards): the whole limit, as before."""
    clock = FakeClock()
    assert RateLimiter(120, None, clock=clock, sleep=clock.sleep).images_per_minute == (
        pytest.approx(120 * PACE)
    )


def starts_per_window(shards: list[Shard], since: float = 0.0) -> Counter[int]:
    """Every shard's starts (admitted or not) by one-second window of the server."""
    return Counter(math.floor(t) for s in shards for t in s.starts if t >= since)


@pytest.mark.parametrize("told", [None, 120])
def test_three_shards_under_one_limit_settle_within_the_targets(told):
    """Three shards of 42, 50 and 58 jobs against one server admitting 120/min in
    one-second windows, started 0.4 s apart, told the limit or not: together at least
    85% of the limit over the whole run, at most 10% of requests refused, every job done."""
    server = WindowServer(120)
    shards, end = run_shards(server, UNEVEN, images_per_minute=told, offsets=OFFSETS)
    assert sum(server.admitted.values()) == sum(UNEVEN)
    assert share_of_limit(shards, 120, end) >= 0.85
    assert refused_share(shards) <= 0.10


@pytest.mark.parametrize("told", [None, 120])
def test_shards_pacing_apart_miss_the_targets_that_turns_meet(told):
    """The same shards, each pacing evenly at its part of the limit without turns on a
    shared clock: their starts meet in the server's windows. What the turns are for."""
    server = WindowServer(120)
    shards, end = run_shards(server, UNEVEN, images_per_minute=told, offsets=OFFSETS, turns=False)
    assert max(starts_per_window(shards).values()) > 2
    assert share_of_limit(shards, 120, end) < 0.85 or refused_share(shards) > 0.05


def test_turns_hold_when_shards_start_apart_on_clocks_a_little_off():
    """Told the limit, three shards starting up to 2.5 s apart on wall clocks up to 30 ms
    off (as NTP keeps machines): no window ever holds more starts than the server admits
    in it, so not one request is refused, and the shards (weighed by their jobs) finish
    within a few seconds of each other, near the limit."""
    server = WindowServer(120)
    shards, end = run_shards(
        server, UNEVEN, images_per_minute=120, offsets=[0.0, 0.4, 2.5], skews=[0.0, 0.03, -0.02]
    )
    assert max(starts_per_window(shards).values()) <= server.capacity
    assert refused_share(shards) == 0
    assert max(s.finished_at for s in shards) - min(s.finished_at for s in shards) < 5
    assert share_of_limit(shards, 120, end) >= 0.9


@pytest.mark.parametrize("told", [None, 120])
def test_the_turns_of_a_shard_that_finished_early_are_taken_over(told):
    """Three shards weighed alike (50 paid jobs each, say, as planned) of which one has
    only 10 to send (the rest were in the shared cache): it finishes at about 15 s, and
    the other two split its turns between them, so they finish together, the whole run
    still near the limit, and the windows still hold what the server admits (once the
    limit is known)."""
    server = WindowServer(120)
    shards, end = run_shards(
        server, [10, 70, 70], images_per_minute=told, weights=[50, 50, 50], offsets=OFFSETS
    )
    assert sum(server.admitted.values()) == 150
    assert shards[0].finished_at < 20
    assert abs(shards[1].finished_at - shards[2].finished_at) < 5
    assert [s.limiter.images.portion for s in shards[1:]] == pytest.approx([0.5, 0.5])
    assert max(starts_per_window(shards, since=3.0).values()) <= server.capacity
    assert refused_share(shards) <= 0.02
    assert share_of_limit(shards, 120, end) >= 0.88


def test_shards_not_told_they_share_refuse_many_more_requests():
    """The same three shards each pacing at the whole limit (each believes the limit is its
    own): far more of their requests are refused. What the split is for."""
    server = WindowServer(120)
    shards, _ = run_shards(server, UNEVEN, images_per_minute=120, sharers=1, offsets=OFFSETS)
    assert refused_share(shards) > 0.2


def test_a_shard_left_alone_speeds_up_to_the_whole_limit():
    """One shard of 20 jobs and one of 100, weighed alike: once the small one is done, the
    other is paced at most of the limit (it starts more than 1.6 images a second over its
    last 20 s), where the static split would keep it at a half."""
    server = WindowServer(120)
    shards, end = run_shards(server, [20, 100], images_per_minute=120, weights=[1, 1])
    big = shards[1]
    tail = [t for t in big.starts if t >= end - 21 and t < end - 1]
    assert len(tail) / 20 >= 1.6
    assert refused_share(shards) <= 0.10


def test_headers_without_a_window_leave_the_split_as_it_is():
    """Answers whose reset is longer than a short window (a per-minute bucket) cannot be
    read as one window's spending: the shard keeps its 1/n of the limit."""
    clock = FakeClock()
    limiter = RateLimiter(120, None, clock=clock, sleep=clock.sleep, sharers=3)
    for _ in range(20):
        started = clock.now
        limiter.sharing.started(started, 1)
        clock.now += 3.0
        limiter.observe(
            RateLimitInfo(limit_images=120, remaining_images=110, reset_images_s=30.0), started
        )
    assert limiter.images.portion == pytest.approx(1 / 3)
    assert limiter.images_per_minute == pytest.approx(40 * PACE)


def test_what_is_left_until_the_reset_spaces_the_next_start():
    """An answer back before its window resets says 2 images are left for the 0.6 s to the
    reset, and 2 shards share them: this one's single image waits for the middle of that
    span (0.3 s); with nothing of its part left, for the reset itself."""
    clock = FakeClock()
    limiter = RateLimiter(600, None, clock=clock, sleep=clock.sleep, sharers=2)
    clock.now = 10.0
    limiter.images.next_at = 10.0
    limiter.observe(RateLimitInfo(limit_images=600, remaining_images=2, reset_images_s=0.7), 9.9)
    assert limiter.images.next_at == pytest.approx(10.3)
    limiter.observe(RateLimitInfo(limit_images=600, remaining_images=1, reset_images_s=0.7), 9.9)
    assert limiter.images.next_at == pytest.approx(10.6)
