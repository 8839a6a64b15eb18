"""Turns on a clock the shards share (``pipeline.runner.turns``): who starts in which slot.

Pure arithmetic on slot numbers and wall-clock seconds, plus the limiter driven on a
:class:`~pipeline.testing.FakeClock` whose wall clock is injected the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import Counter

import pytest
from test_shards import job

from pipeline.jobs import Plan
from pipeline.jobs.shards import Shard, SharedLimit, paid_share, shard_plan, shared_limit
from pipeline.runner.limiter import RateLimiter
from pipeline.runner.turns import CLAIM_LAG, MAX_PERIOD, Turns, interleave, scaled
from pipeline.testing import FakeClock


def senders(turns: list[Turns], k: int, rate: float) -> list[int]:
    """The shards that would start in slot ``k``, each by its own view."""
    return [t.index for t in turns if t.owner(k, rate) == t.index]


@pytest.mark.parametrize("weights", [[1, 1, 1], [42, 50, 58], [1, 9], [5, 0, 3]])
def test_each_shard_gets_its_weight_of_every_period_spread_evenly(weights):
    """Every period holds each shard's weight of slots (at least one: a shard with no
    paid jobs still has turns), and no shard waits much longer than its even spacing."""
    order = interleave(scaled(weights))
    counts = Counter(order)
    assert [counts[i] for i in range(len(weights))] == list(scaled(weights))
    for shard, count in counts.items():
        places = [i for i, s in enumerate(order) if s == shard]
        gaps = [b - a for a, b in zip(places, [*places[1:], places[0] + len(order)], strict=True)]
        assert max(gaps) <= math.ceil(len(order) / count) + 1


def test_large_weights_are_scaled_to_a_bounded_period_alike_on_every_shard():
    """A build of a million paid jobs lays out at most MAX_PERIOD slots a period."""
    weights = scaled([300_007, 400_009, 299_984])
    assert sum(weights) <= MAX_PERIOD
    assert weights == scaled([300_007, 400_009, 299_984])
    assert scaled([40, 60]) == (2, 3)


@pytest.mark.parametrize("ipm", [120, 100, 1200, 30])
def test_no_second_holds_more_slots_than_the_limit_allows(ipm):
    """Slots of every shard together, over ten minutes of epoch time: no wall-clock second
    holds more than ceil(ipm / 60), whatever the rate."""
    rate = ipm / 60
    turns = [Turns(i, [42, 50, 58]) for i in range(3)]
    wall = 1_765_000_000.0
    times = []
    for t in turns:
        at = wall
        while at < wall + 600:
            slot = t.next_slot(at, rate)
            t.take(slot, rate)
            times.append(slot.at)
            at = slot.at
    per_second = Counter(math.floor(at) for at in times)
    assert max(per_second.values()) <= math.ceil(rate)
    assert sum(wall <= at < wall + 600 for at in times) == pytest.approx(600 * rate, abs=3)


def test_every_slot_has_one_sender_and_each_shard_is_sometimes_second_in_its_window():
    """Shards that agree on who stopped never send in the same slot, and a stopped shard's
    slots all go to someone. Within windows of two slots, two shards weighed alike take
    turns being second (the one that can see whether the other sent)."""
    rate = 2.0
    turns = [Turns(i, [1, 1, 1]) for i in range(3)]
    for k in range(3_530_000_000, 3_530_000_600):
        assert len(senders(turns, k, rate)) == 1
    for t in (turns[0], turns[2]):
        t.stopped = {1}
    taken = Counter()
    for k in range(3_530_000_000, 3_530_000_600):
        (sender,) = senders([turns[0], turns[2]], k, rate)
        taken[sender] += 1
    assert taken[0] == taken[2] == 300
    pair = [Turns(i, [1, 1]) for i in range(2)]
    second = Counter(pair[0].owner(k, rate) for k in range(1001, 1200, 2))
    assert second[0] == second[1] == 50


def test_a_slot_taken_over_starts_behind_its_owner_and_a_429_gives_it_back():
    """With shard 2 stopped, shard 1 starts in some of its slots CLAIM_LAG of a slot late;
    after a 429 it keeps to its own slots again."""
    rate = 2.0
    turns = Turns(0, [1, 1])
    turns.stopped = {1}
    slots = []
    at = 1000.0
    for _ in range(4):
        slot = turns.next_slot(at, rate)
        turns.take(slot, rate)
        slots.append(slot)
        at = slot.at
    assert [s.k for s in slots] == [2000, 2001, 2002, 2003]
    lags = [s.at * rate - s.k - 0.5 for s in slots]
    assert [lag for lag, s in zip(lags, slots, strict=True) if s.taken] == pytest.approx(
        [CLAIM_LAG, CLAIM_LAG]
    )
    assert [lag for lag, s in zip(lags, slots, strict=True) if not s.taken] == pytest.approx([0, 0])
    turns.give_back()
    assert not turns.next_slot(at, rate).taken
    assert turns.portion == 0.5


def hear(turns: Turns, second: int, remaining: int, now: float) -> None:
    """Shard 1 of two (second in the windows of even seconds) started in its slot at
    ``second + 0.75``; the answer says ``remaining`` of the window's 2 were left."""
    turns.take(turns.next_slot(second + 0.7, 2.0), 2.0)
    turns.heard(now, second + 0.75, 2.0, 2, remaining, 0.25, 1.0, admitted=True)


def test_answers_showing_a_shard_idle_for_seconds_hand_its_slots_over():
    """Each answer says the slot before this shard's in its window (the other shard's) was
    not spent: after IDLE_AFTER_S and IDLE_SEEN such answers, its slots are taken over."""
    turns = Turns(1, [1, 1])
    for n, second in enumerate(range(1000, 1006, 2)):
        assert not turns.stopped
        hear(turns, second, 1, now=2.0 * n)
    assert turns.stopped == {0}
    assert turns.portion == 1.0
    assert turns.owner(2 * 1006, 2.0) == 1


def test_a_shard_seen_sending_now_and_then_keeps_its_slots():
    """Answers that show the other shard's slot spent every other time: it is sending,
    only with gaps (retries, a hold), and nothing is taken from it."""
    turns = Turns(1, [1, 1])
    for n, second in enumerate(range(1000, 1020, 2)):
        hear(turns, second, n % 2, now=2.0 * n)
    assert not turns.stopped
    assert turns.portion == 0.5


def test_the_limiter_starts_in_this_shards_slots_of_the_wall_clock():
    """Shard 2 of 3 weighed alike, told 120/min: its starts fall on the shared grid of the
    wall clock (slot k at (k + 0.5) / 2 s), on every third slot, whatever the monotonic
    clock reads: six starts 1.5 s apart on average, none closer than a slot."""
    clock = FakeClock()
    offset = 1_765_000_000.3
    limiter = RateLimiter(
        120,
        None,
        clock=clock,
        sleep=clock.sleep,
        sharers=3,
        shared=SharedLimit(2, (1, 1, 1)),
        wall=lambda: clock.now + offset,
    )

    async def go() -> list[float]:
        walls = []
        for _ in range(6):
            await limiter.acquire()
            walls.append(clock.now + offset)
        return walls

    walls = asyncio.run(go())
    slots = [round(w * 2 - 0.5, 6) for w in walls]
    assert all(s == int(s) for s in slots)
    assert all(limiter.turns.owner(int(s), 2.0) == 1 for s in slots)
    assert min(b - a for a, b in itertools.pairwise(walls)) >= 0.5
    assert walls[-1] - walls[0] == pytest.approx(7.5, abs=1.0)


def test_a_plan_lays_out_the_same_weights_for_every_shard():
    """Every shard of a plan computes the same weights (each shard's paid jobs, chains
    kept whole), and its own weight is its paid share."""
    plan = Plan(jobs=(*(job(f"a{i}") for i in range(12)), job("e", ["a0", "a1"])))
    found = {shared_limit(plan, Shard(i, 3)) for i in (1, 2, 3)}
    assert {s.weights for s in found} == {next(iter(found)).weights}
    weights = next(iter(found)).weights
    assert sum(weights) == 13
    for i in (1, 2, 3):
        assert weights[i - 1] / 13 == paid_share(shard_plan(plan, Shard(i, 3)), plan)


def test_a_shared_limit_is_checked():
    with pytest.raises(ValueError, match="shard 4 of 3"):
        SharedLimit(4, (1, 1, 1))
    with pytest.raises(ValueError, match="never negative"):
        SharedLimit(1, (1, -1))
