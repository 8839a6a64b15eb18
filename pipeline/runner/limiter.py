"""Pacing requests within the account's rate limits.

OpenAI meters image models in images per minute and enforces that over short intervals,
so a burst of ``concurrency`` requests at a limit of 5 IPM is a 429 storm. The limiter
spaces starts evenly (a token bucket holding at most one token, so there is no burst) at
the lower of the user's ``--images-per-minute`` / ``--requests-per-minute`` and the limits
the server advertises (``x-ratelimit-limit-images`` / ``-requests``, read from every
answer, 429s included). Until either is known, starts are not paced at all: an account
without a binding limit is never slowed by a guess, and the first answer teaches the limit.

One burst of 429s is one signal. The requests in flight together all get a 429 when the
window is spent, so each start is stamped (the value :meth:`RateLimiter.acquire` returns),
and a 429 for a request that started before the limiter last reacted lowers nothing. A 429
for a request sent before any pace was known is explained by that alone: the limiter paces
at the limit the headers just taught and does not cut below it. Any other 429 cuts the pace
once, to :data:`BACKOFF` of itself, and each success of a request started after the cut
adds back :data:`STEP` of the limit: three successes later the pace is at the limit again.
A server that advertises nothing is measured instead: the first 429 cuts the rate the
build was sending at, later ones the pace, and the pace settles at :data:`SETTLE` of the
last pace refused and stays there (no probing above it, so no sawtooth of 429s).

``Retry-After`` holds every start (a 429 without one holds until the reset its headers
give, else one :data:`~pipeline.runner.pace.WINDOW_S`). A success whose
``x-ratelimit-remaining-*`` is 0 holds every start until its ``x-ratelimit-reset-*``,
counted from when that request was sent: the server counted it on arrival, not when the
image came back. No start catches up on time a hold took (see :mod:`pipeline.runner.pace`
for the schedule itself). Every wait the server can steer (``Retry-After``,
``x-ratelimit-reset-*``, a tiny advertised limit) is capped at
:data:`~pipeline.runner.retry.MAX_RETRY_AFTER_S`: a hold asking for more is clamped to it,
a non-finite or negative one is ignored, and no single sleep of ``acquire`` is longer, so a
hostile or broken server can slow a build but never freeze it.

The limits are the organisation's, and the shards of a CI build spend them together. A
limiter that knows its place among them (``shared``: every shard's paid jobs, the same on
every machine) takes turns with the others on a grid of the wall clock, once the limit is
known: it starts only in its own slots, and takes over the slots of shards whose turns go
unspent (see :mod:`pipeline.runner.turns`); a 429 makes it give those back and wait for
the reset, never slow down. A limiter told only that it is one of ``sharers`` paces at its
``share`` of the limit, configured or advertised, to begin with: its part of the build's
paid jobs, so shards of unequal size finish together (``1 / sharers`` when that is not
known). The headers then say what is left: from each answer's ``remaining`` and ``reset``,
:class:`~pipeline.runner.pace.Sharing` measures what the others spend, and every
:data:`~pipeline.runner.pace.SHARE_EVERY_S` the portion moves halfway to what they leave
(never below its share), so the shards still running take over the share of one that
finished. An answer that comes back before its window resets also spaces this process's
next start so that its part of what ``remaining`` says is left fits before the reset
(with nothing left, starts wait for the reset, as above).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from pipeline.jobs import RateLimitInfo
from pipeline.jobs.shards import SharedLimit
from pipeline.runner.pace import (
    BACKOFF,
    PACE,
    SETTLE,
    SHARE_EVERY_S,
    SHARE_GAIN,
    STEP,
    WINDOW_S,
    Pace,
    Sharing,
)
from pipeline.runner.retry import MAX_RETRY_AFTER_S
from pipeline.runner.turns import Slot, Turns

__all__ = ["BACKOFF", "PACE", "SETTLE", "STEP", "WINDOW_S", "RateLimiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Shared by every request of a build: ``acquire`` before each call, then ``observe``
    its success or ``throttle`` its 429, passing back the stamp ``acquire`` returned."""

    def __init__(
        self,
        images_per_minute: float | None,
        requests_per_minute: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        sharers: int = 1,
        share: float | None = None,
        shared: SharedLimit | None = None,
        wall: Clock = time.time,
    ):
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        """The wall clock the shards' turns are laid on (NTP keeps it alike on every
        machine); ``clock`` times everything else."""
        self.sharers = max(1, sharers)
        """How many processes spend the same limits (the shards of one organisation)."""
        self.turns = (
            Turns(shared.index - 1, shared.weights)
            if shared is not None and self.sharers > 1 and len(shared.weights) == self.sharers
            else None
        )
        """This shard's turns on the grid the shards share (None: it paces on its own)."""
        if self.turns is not None and share is None:
            share = self.turns.portion
        self.fair = min(1.0, share) if share and self.sharers > 1 else 1 / self.sharers
        """This process's fair part of the limits: its part of the build's paid jobs when
        known (so shards of unequal size finish together), else ``1 / sharers``."""
        self.images = Pace(images_per_minute, self.fair)
        self.requests = Pace(requests_per_minute, self.fair)
        self.sharing = Sharing()
        self._shared_at = -math.inf
        self.hold_until = 0.0
        self._lock = asyncio.Lock()
        self._paced_since = -math.inf if images_per_minute else math.inf
        """When starts were first paced: a request sent before was not."""
        self._reacted_at = -math.inf
        """When the last 429 signal was taken: requests sent before were in that burst."""
        self.throttled = 0
        """429s seen."""
        self.signals = 0
        """429 bursts the limiter reacted to (each lowered the pace at most once)."""

    @property
    def images_per_minute(self) -> float | None:
        """The current pace of images (None: not paced)."""
        return self.images.rate * 60 if self.images.rate else None

    async def acquire(self, images: int = 1) -> float:
        """Wait until one more request of ``images`` images may start; returns its stamp
        (the clock when it starts) for :meth:`observe` and :meth:`throttle`."""
        async with self._lock:
            paced = False
            slept_for: Slot | None = None
            while True:
                now = self.clock()
                if now < self.hold_until:
                    await self.sleep(min(self.hold_until - now, MAX_RETRY_AFTER_S))
                    slept_for = None
                    continue
                rate = self._turns_rate()
                if self.turns is not None and rate is not None:
                    slot = self.turns.next_slot(self.wall(), rate)
                    wait = max(slot.at - self.wall(), self.requests.wait(now))
                    if wait > 0 and slot != slept_for:
                        slept_for = slot  # one sleep for a slot, however the clock wakes
                        await self.sleep(min(wait, MAX_RETRY_AFTER_S))
                        continue
                    self.turns.take(slot, rate, images)
                    return self._start(now, images)
                wait = max(self.images.wait(now, images), self.requests.wait(now))
                if self.sharers > 1 and self.images.rate is None:
                    wait = max(wait, self.images.last_at + WINDOW_S - now)  # probe, unknown
                if wait > 0 and not paced:
                    paced = True  # one sleep for the pace, however long it asks
                    await self.sleep(min(wait, MAX_RETRY_AFTER_S))
                    continue  # a 429 may have come meanwhile: look at the hold again
                return self._start(now, images)

    def _start(self, now: float, images: int) -> float:
        self.images.take(now, images)
        self.requests.take(now)
        self.sharing.started(now, images)
        return now

    def observe(self, info: RateLimitInfo | None, started: float | None = None) -> None:
        """A success: learn the advertised limits, respect a spent window, and step back
        toward the limit if the request was sent after the last cut."""
        if info is not None:
            self._learn(info)
            sent = self.clock() if started is None else started
            if info.remaining_images == 0 and info.reset_images_s is not None:
                self._hold_from(sent, info.reset_images_s)
            elif info.remaining_requests == 0 and info.reset_requests_s is not None:
                self._hold_from(sent, info.reset_requests_s)
            elif started is not None and self.turns is None:
                self._fit_what_is_left(info, started)
            self._heard(info, started, admitted=True)
        if started is None or started > self._reacted_at:
            self.images.grow()
            self.requests.grow()

    def throttle(
        self, retry_after_s: float | None, info: RateLimitInfo | None, started: float | None = None
    ) -> None:
        """A 429: hold every start for ``Retry-After``, learn what the headers say, and
        lower the pace once per burst (see the module docstring)."""
        self.throttled += 1
        if info is not None:
            self._learn(info)
            self._heard(info, started, admitted=False)
        self.hold(retry_after_s if retry_after_s is not None else _reset(info) or WINDOW_S)
        if self.turns is not None and self.turns.stopped:
            self.turns.give_back()  # a shard it took over may be back: its own turns only
            self._apportion(self.turns.portion)
        if started is not None and started <= self._reacted_at:
            return  # the same burst: already taken into account
        now = self.clock()
        self._reacted_at = now
        self.signals += 1
        if started is not None and started < self._paced_since and self.images.limit:
            return  # sent unpaced; the limit it taught is the pace from now on
        if self.sharers > 1 and self.images.limit:
            self._apportion(self.fair)
            return  # at its share, a 429 is a window the others filled first: hold, no cut
        self.images.cut(max(self.images.sent(now), 1) / WINDOW_S, now)
        self.requests.cut(None, now)
        self._mark_paced(now)

    def hold(self, seconds: float) -> None:
        """No request starts for ``seconds`` from now (at most ``MAX_RETRY_AFTER_S``; a
        non-finite or negative value holds nothing)."""
        self._hold_from(self.clock(), seconds)

    def _hold_from(self, since: float, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds <= 0:
            return
        until = since + min(seconds, MAX_RETRY_AFTER_S)
        self.hold_until = max(self.hold_until, min(until, self.clock() + MAX_RETRY_AFTER_S))
        self.images.defer(self.hold_until)
        self.requests.defer(self.hold_until)

    def _fit_what_is_left(self, info: RateLimitInfo, started: float) -> None:
        """Space the next start so that this process's part of the images ``remaining``
        until the window resets fits before the reset (the rest is the others')."""
        remaining, reset = info.remaining_images, info.reset_images_s
        if not remaining or reset is None or not math.isfinite(reset):
            return
        now = self.clock()
        until = started + min(reset, MAX_RETRY_AFTER_S)
        if until <= now:
            return  # that window is over: what it had left says nothing now
        since = self.sharing.mine(math.nextafter(started, math.inf), now)
        mine = (remaining - since) * self.images.portion
        if mine < 1:
            self.images.defer(until)
        else:
            self.images.defer(now + (until - now) / (mine + 1))

    def _heard(self, info: RateLimitInfo, started: float | None, *, admitted: bool) -> None:
        """What the answer says the others spent; move this process's portion to what
        they leave (only when the limit is shared, at most every ``SHARE_EVERY_S``)."""
        if self.sharers == 1 or started is None or started < self._paced_since:
            return  # an unpaced burst's answers mix this process's starts with the others'
        now = self.clock()
        if self.turns is not None:
            self._heard_turn(info, now, started, admitted)
            return
        self.sharing.heard(
            now,
            started,
            1.0,
            admitted,
            info.limit_images,
            info.remaining_images,
            info.reset_images_s,
        )
        if self.images.whole is None or now - self._shared_at < SHARE_EVERY_S:
            return
        self._shared_at = now
        fair = self.fair
        portion = self.images.portion
        if self.sharing.quiet(now):
            self._apportion(min(1.0, portion + fair))
        else:
            self._apportion(max(fair, portion - SHARE_GAIN * (portion - fair)))

    def _heard_turn(self, info: RateLimitInfo, now: float, started: float, admitted: bool) -> None:
        """Whether the slots before this start in its window were spent by their owners;
        take over (or give back) the turns of shards that stopped (or came back)."""
        rate = self._turns_rate()
        per_minute, remaining, reset = (
            info.limit_images,
            info.remaining_images,
            info.reset_images_s,
        )
        if self.turns is None or rate is None or not per_minute or remaining is None:
            return
        if reset is None or not 0 <= reset <= WINDOW_S:
            return  # not a short window's answer: it says nothing of the others' turns
        capacity = math.ceil(per_minute / 60 * WINDOW_S - 1e-9)
        if remaining > capacity:
            return
        wall = started + (self.wall() - now)
        before = self.turns.portion
        self.turns.heard(now, wall, rate, capacity, remaining, reset, WINDOW_S, admitted)
        if self.turns.portion != before:
            self._apportion(self.turns.portion)

    def _turns_rate(self) -> float | None:
        """The organisation's limit per second that the turns are laid at (no margin
        under it: the slots sit mid-window instead), once known."""
        whole = self.images.whole
        if self.turns is None or whole is None:
            return None
        return round(whole / PACE * 60, 6) / 60

    def _apportion(self, portion: float) -> None:
        self.images.apportion(portion)
        self.requests.apportion(portion)

    def _learn(self, info: RateLimitInfo) -> None:
        now = self.clock()
        self.images.learn(info.limit_images, now)
        self.requests.learn(info.limit_requests, now)
        self._mark_paced(now)

    def _mark_paced(self, now: float) -> None:
        if self.images.rate is not None and self._paced_since == math.inf:
            self._paced_since = now


def _reset(info: RateLimitInfo | None) -> float | None:
    """When a refused request's spent window resets, if the headers say."""
    if info is None:
        return None
    if info.remaining_images == 0 and info.reset_images_s:
        return info.reset_images_s
    if info.remaining_requests == 0 and info.reset_requests_s:
        return info.reset_requests_s
    return None
