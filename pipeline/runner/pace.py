"""The schedule of one metered quantity (images, or requests): when the next start is due.

Starts are due evenly, one interval of ``1 / rate`` apart, so there is no burst at the start
of a build or after a pause. The event loop does not wake exactly on time, and on a busy
machine a start can be tens of milliseconds late; were each start's lateness passed on to
the next, a loop that is late by 2.5 ms a start would lose 5% of the pace at 1,200 images
a minute. So the schedule is kept: a late start does not move the next one's due time, and
the starts after it catch up. Catching up is what could overrun the server's short windows,
so it is bounded twice: two starts are never closer than :data:`CATCH_UP` of an interval,
and no one-second span ever holds more starts than the limit allows in a second
(``limit / 60``, at least one). A schedule more than :data:`DEBT_S` behind (nothing was
ready to start) is dropped rather than caught up, and a hold (``Retry-After``, a spent
window) moves it past the hold: time the server asked for is never made up.

The rate itself is steered by :class:`~pipeline.runner.limiter.RateLimiter`; this class
only keeps the arithmetic of one quantity, so that it can be read and tested alone.

A limit may be the organisation's, spent by several processes at once (the shards of a CI
build): :attr:`Pace.portion` is the part of it this process paces at, and
:class:`Sharing` reads from the server's answers how much of each window the others spend,
so that the portion grows when they stop (see :mod:`pipeline.runner.limiter`).
"""

from __future__ import annotations

import math
from collections import deque

PACE = 0.99
"""Pace a hair under the limit: arrivals jitter, and the server counts per window."""
BACKOFF = 0.7
"""A 429 the pace did not explain cuts it to this fraction (once per burst)..."""
STEP = 0.1
"""...and each later success adds back this fraction of the limit, up to the limit."""
SETTLE = 0.9
"""With no limit advertised or configured, the pace returns to this fraction of the last
pace the server refused, and stays there."""
FLOOR = 0.05
"""No cut takes the pace below this fraction of the limit (or of the refused pace)."""
WINDOW_S = 1.0
"""The short window the API is taken to enforce its limits over: no span this long holds
more than its share of the limit, the rate a 429 refused is measured over it, and a 429
that says neither ``Retry-After`` nor when its window resets holds starts this long."""
CATCH_UP = 0.5
"""Starts catching up on a late schedule are at least this fraction of an interval apart."""
DEBT_S = 1.0
"""A schedule further behind than this starts afresh instead of catching up."""
HORIZON_S = 6.0
"""What the others spent is measured over the answers of this many seconds: long enough
for a few answers at a shard's pace, short enough to notice a shard that finished."""
SHARE_EVERY_S = 2.0
"""The portion moves at most this often: each move waits for answers it shaped."""
SHARE_GAIN = 0.5
"""Each move goes this fraction of the way to the portion that would fill the limit, so
processes moving at once do not overshoot it together."""


class Pace:
    """Evenly spaced starts of one quantity at ``rate`` per second (None: not paced)."""

    def __init__(self, per_minute: float | None, portion: float = 1.0):
        self.user = per_minute / 60 * PACE if per_minute else None
        """The configured limit (the organisation's, when shared)."""
        self.portion = portion
        """The part of the limit this process paces at: its fair part to begin with."""
        self.advertised: float | None = None
        self.refused: float | None = None
        """The pace a 429 refused when no limit was known."""
        self.rate = self.user * self.portion if self.user else None
        self.next_at = -math.inf
        self.last_at = -math.inf
        self.recent: deque[tuple[float, float]] = deque()
        """Starts of the last :data:`WINDOW_S` (time, cost), oldest first."""

    @property
    def limit(self) -> float | None:
        """The pace to return to after a cut (per second, ``PACE`` included)."""
        known = self.whole
        if known:
            return known * self.portion
        return self.refused * SETTLE if self.refused else None

    @property
    def whole(self) -> float | None:
        """The organisation's limit (per second, ``PACE`` included), if known."""
        known = [r for r in (self.user, self.advertised) if r]
        return min(known) if known else None

    def apportion(self, portion: float) -> None:
        """Pace at ``portion`` of the limit from now on; a cut stays the same part of it."""
        before = self.limit
        self.portion = min(1.0, portion)
        after = self.limit
        if self.rate is not None and before and after:
            self.rate *= after / before

    def sent(self, now: float) -> float:
        """What started in the last :data:`WINDOW_S`."""
        self._forget(now)
        return sum(cost for _, cost in self.recent)

    def wait(self, now: float, cost: float = 1.0) -> float:
        """How long until a start of ``cost`` is due, within the window's share."""
        if not self.rate:
            return 0.0
        interval = cost / self.rate
        due = max(self.next_at, self.last_at + CATCH_UP * interval)
        return max(0.0, due - now, self._window_wait(now, cost))

    def take(self, now: float, cost: float = 1.0) -> None:
        """Start now; the next start is due an interval after this one was due."""
        if self.rate:
            due = self.next_at if now - self.next_at <= DEBT_S else now
            self.next_at = due + cost / self.rate
        self.last_at = now
        self.recent.append((now, cost))
        self._forget(now)

    def defer(self, until: float) -> None:
        """Nothing starts before ``until`` (a hold): the schedule resumes from there."""
        if self.rate:
            self.next_at = max(self.next_at, until)

    def learn(self, per_minute: int | None, now: float) -> None:
        """The server advertised ``per_minute``: pace at it (or under the user's limit)."""
        if not per_minute:
            return
        self.advertised = per_minute / 60 * PACE
        limit = self.limit
        if limit is not None and self.rate is None:
            self.rate = limit
            self.next_at = max(self.next_at, now)  # no catching up on an unpaced past
        elif limit is not None and self.rate is not None:
            self.rate = min(self.rate, limit)

    def cut(self, sending: float | None, now: float) -> None:
        """One 429 signal while paced at ``rate`` (or, unpaced, sending ``sending``/s)."""
        if self.rate is None:
            if sending is None:
                return
            self.refused = sending
            self.rate = sending * BACKOFF
            self.next_at = max(self.next_at, now)
            return
        if self.user is None and self.advertised is None:
            self.refused = self.rate
        base = self.limit or self.rate
        self.rate = max(self.rate * BACKOFF, base * FLOOR)

    def grow(self) -> None:
        """A success after the last cut: step back toward the limit."""
        limit = self.limit
        if self.rate is not None and limit is not None and self.rate < limit:
            self.rate = min(limit, self.rate + STEP * limit)

    def _window_wait(self, now: float, cost: float) -> float:
        """How long until a start of ``cost`` keeps the last second within its share."""
        limit = self.limit
        if limit is None:
            return 0.0
        share = max(1.0, math.floor(limit / PACE * WINDOW_S + 1e-9))
        excess = self.sent(now) + min(cost, share) - share
        for started, spent in self.recent:
            if excess <= 0:
                break
            excess -= spent
            if excess <= 0:
                return started + WINDOW_S - now
        return 0.0

    def _forget(self, now: float) -> None:
        while self.recent and self.recent[0][0] <= now - WINDOW_S:
            self.recent.popleft()


class Sharing:
    """Whether other processes spend the organisation's windows, from the answers.

    The ``x-ratelimit-remaining-*`` and ``-reset-*`` of an answer describe the window the
    server counted the request in: it ends ``reset`` after the request arrived, and what
    it had spent by then is its capacity less ``remaining``. Less this process's own
    starts in that window, the rest is the others'. When no answer of the last
    :data:`HORIZON_S` found any, the others have finished (or never started), and their
    share is free. Shards paced alike keep fixed phases, so one that always arrives first
    in its windows sees no one: a 429 (a window the others filled) is what brings it back
    to its share. Answers that do not fit a window of :data:`WINDOW_S` (a reset longer
    than it, more remaining than it holds) say nothing here.
    """

    def __init__(self) -> None:
        self.starts: deque[tuple[float, float]] = deque()
        """This process's starts (time, cost) of the last :data:`HORIZON_S` and a window."""
        self.samples: deque[tuple[float, float, float]] = deque()
        """(heard at, images the others had spent, seconds of the window that had passed)."""

    def started(self, now: float, cost: float) -> None:
        """This process started a request of ``cost`` now."""
        self.starts.append((now, cost))
        while self.starts and self.starts[0][0] < now - HORIZON_S - WINDOW_S:
            self.starts.popleft()

    def mine(self, since: float, until: float) -> float:
        """What this process started in ``[since, until]``."""
        return sum(cost for t, cost in self.starts if since <= t <= until)

    def heard(
        self,
        now: float,
        started: float,
        cost: float,
        admitted: bool,
        per_minute: int | None,
        remaining: int | None,
        reset_s: float | None,
    ) -> None:
        """An answer to the request started at ``started``: what its window held."""
        if not per_minute or remaining is None or reset_s is None or reset_s > WINDOW_S:
            return
        capacity = math.ceil(per_minute / 60 * WINDOW_S - 1e-9)
        if remaining > capacity:
            return
        opened = started + reset_s - WINDOW_S
        mine = self.mine(opened, started) - (0 if admitted else cost)
        spent = capacity - remaining if admitted else capacity
        self.samples.append((now, max(0.0, spent - mine), WINDOW_S - reset_s))
        while self.samples and self.samples[0][0] < now - HORIZON_S:
            self.samples.popleft()

    def quiet(self, now: float) -> bool:
        """Whether every answer of the last :data:`HORIZON_S` found no other process's
        image in its window, and there were answers from most of that span."""
        if not self.samples or self.samples[0][0] > now - HORIZON_S / 2:
            return False
        return all(others == 0 for _, others, _ in self.samples)
