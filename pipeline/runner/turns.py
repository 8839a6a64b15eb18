"""Turns on a clock the shards share: which shard of a build may start an image when.

Shards that each pace evenly at their part of one organisation's limit still meet: three
shards at a third of 2 images a second each land a start in the same one-second window
often enough to fill it, and the third start is a 429. Pacing each shard more slowly only
makes that rarer. So the shards do not pace apart, they take turns on one grid:

- **One grid for every shard.** Slot ``k`` is at ``(k + 0.5) / rate`` seconds of the wall
  clock (``time.time()``, which NTP keeps in step across CI machines; the monotonic clock
  starts anywhere), at the organisation's ``rate``, which every shard learns alike (given,
  or advertised by the API). Slots are ``1 / rate`` apart, so no one-second window holds
  more slots than the limit allows in it, and half a slot off the whole seconds (where
  the server's windows may turn), so that a start a little late stays in its window.
- **One owner for every slot.** The owners follow a smooth weighted round robin of the
  shards' weights (their paid jobs, which every shard computes from the same plan), so each
  shard's slots are spread evenly and shards of unequal size finish together. Within every
  odd second the owners run in reverse, so that each shard is sometimes the first of its
  window and sometimes not (see below).
- **A stopped shard's slots are taken over.** An answer's ``x-ratelimit-remaining-*`` and
  ``-reset-*`` say what the server's window held when the request arrived: less this
  shard's own starts, whether the other owners of the slots before it in that window sent
  theirs. A shard whose slots go unspent for a few seconds has finished (or not started):
  the shards still sending share its slots by their weights (see :class:`Heirs`).
  A slot taken over starts :data:`CLAIM_LAG` of a slot late, so that its owner, back after
  all, arrives first and the 429 falls on the taker, which then gives every taken slot
  back.

A request of several images takes as many of the shard's slots, starting at the first: its
images all count in that slot's window, which they may overfill, and the slots it skips
leave the same room in the windows after.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

CLAIM_LAG = 0.2
"""A slot taken over starts this fraction of a slot after its time, behind its owner."""
LATE = 0.25
"""A start this fraction of a slot after the slot's time still takes it (the event loop
wakes late); a later one waits for the next slot, which keeps starts in their windows."""
IDLE_AFTER_S = 3.0
"""A shard is taken to have stopped when its slots went unspent this long..."""
IDLE_SEEN = 3
"""...as seen by at least this many answers, with none seeing it send meanwhile."""
MAX_PERIOD = 10_000
"""Weights are scaled down to a round robin of at most this many slots."""
REMEMBER = 64
"""This shard's own slots kept, to tell them from the others' in an answer's window."""


def interleave(weights: Sequence[int]) -> tuple[int, ...]:
    """One period of a smooth weighted round robin of ``weights``: the shard (from 0) of
    each slot. Every shard computes the same order from the same weights."""
    total = sum(weights)
    current = [0] * len(weights)
    order = []
    for _ in range(total):
        for i, weight in enumerate(weights):
            current[i] += weight
        chosen = max(range(len(weights)), key=lambda i: (current[i], -i))
        current[chosen] -= total
        order.append(chosen)
    return tuple(order)


def scaled(weights: Sequence[int]) -> tuple[int, ...]:
    """``weights`` (at least 1 each, so every shard has turns) reduced to a period of at
    most :data:`MAX_PERIOD`, the same on every shard."""
    floor = [max(1, int(w)) for w in weights]
    divisor = math.gcd(*floor)
    reduced = [w // divisor for w in floor]
    total = sum(reduced)
    if total <= MAX_PERIOD:
        return tuple(reduced)
    return tuple(max(1, w * MAX_PERIOD // total) for w in reduced)


@dataclass(frozen=True, slots=True)
class Slot:
    """A start's turn: slot ``k`` at wall-clock ``at``; ``taken`` if another shard owns it."""

    k: int
    at: float
    taken: bool


@dataclass(frozen=True, slots=True)
class Heirs:
    """Who takes over the slots of the shards that stopped: the shards still sending, in a
    smooth weighted round robin of their own weights, one stopped slot after another. So
    every sender gets its part of them (not the one that happens to follow in the order),
    and every shard that sees the same shards stopped hands the same slot to the same
    heir."""

    counted: tuple[int, ...]
    """For each place of the order whose shard stopped, how many such places precede it."""
    per_cycle: int
    """Stopped places in one period of the order."""
    senders: tuple[int, ...]
    """One period of the round robin of the shards still sending."""

    @classmethod
    def of(cls, order: Sequence[int], weights: Sequence[int], stopped: frozenset[int]) -> Heirs:
        running = [i for i in range(len(weights)) if i not in stopped]
        senders = tuple(running[i] for i in interleave([weights[i] for i in running]))
        counted, seen = [], 0
        for shard in order:
            counted.append(seen)
            seen += shard in stopped
        return cls(tuple(counted), seen, senders)

    def heir(self, cycle: int, place: int) -> int:
        """The heir of the stopped slot at ``place`` of period ``cycle`` of the order."""
        return self.senders[(cycle * self.per_cycle + self.counted[place]) % len(self.senders)]


class Turns:
    """This shard's turns (shard ``index`` from 0 of ``len(weights)``) on the shared grid."""

    def __init__(self, index: int, weights: Sequence[int]):
        self.weights = scaled(weights)
        if not 0 <= index < len(self.weights):
            raise ValueError(f"shard {index} of {len(self.weights)}")
        self.index = index
        self.order = interleave(self.weights)
        self.stopped: set[int] = set()
        """The shards whose slots this one takes over."""
        self.last_k: int | None = None
        """The last slot this shard started in (None: none yet)."""
        self.mine: deque[int] = deque(maxlen=REMEMBER)
        """This shard's recent slots, taken over ones included."""
        self._idle_since: dict[int, float] = {}
        self._idle_seen: dict[int, int] = {}
        self._heirs: dict[frozenset[int], Heirs] = {}

    @property
    def portion(self) -> float:
        """The part of the slots this shard starts in: its own and its part of the stopped
        shards' (the heirs split them by their weights)."""
        sending = sum(w for i, w in enumerate(self.weights) if i not in self.stopped)
        return self.weights[self.index] / sending

    def owner(self, k: int, rate: float) -> int:
        """Who sends in slot ``k`` as this shard sees it: the round robin's owner, or when
        that shard stopped, its heir (see :class:`Heirs`)."""
        cycle, place = divmod(self._position(k, rate), len(self.order))
        shard = self.order[place]
        if shard not in self.stopped:
            return shard
        stopped = frozenset(self.stopped)
        heirs = self._heirs.get(stopped)
        if heirs is None:
            heirs = self._heirs[stopped] = Heirs.of(self.order, self.weights, stopped)
        return heirs.heir(cycle, place)

    def next_slot(self, wall: float, rate: float) -> Slot:
        """The first slot of this shard at or after ``wall`` (a start up to :data:`LATE`
        of a slot behind its time still takes it) and after the last one it took."""
        k = math.ceil(wall * rate - 0.5 - LATE)
        if self.last_k is not None:
            k = max(k, self.last_k + 1)
        for _ in range(len(self.order) + 2 * math.ceil(rate) + 2):
            if self.owner(k, rate) == self.index:
                own = self._owned(k, rate)
                return Slot(k, (k + 0.5 + (0 if own else CLAIM_LAG)) / rate, not own)
            k += 1
        raise AssertionError("a round robin gives every shard a slot in each period")

    def take(self, slot: Slot, rate: float, cost: int = 1) -> None:
        """This shard started in ``slot``; a request of ``cost`` images uses its next
        ``cost - 1`` slots as well."""
        self.last_k = slot.k
        self.mine.append(slot.k)
        for _ in range(max(0, cost - 1)):
            extra = self.next_slot(0.0, rate)
            self.last_k = extra.k
            self.mine.append(extra.k)

    def give_back(self) -> None:
        """A 429 on this shard: the shards it took over may be back; start afresh."""
        self.stopped.clear()
        self._idle_since.clear()
        self._idle_seen.clear()

    def heard(
        self,
        now: float,
        started: float,
        rate: float,
        capacity: int,
        remaining: int,
        reset_s: float,
        window_s: float,
        admitted: bool,
    ) -> None:
        """An answer to the start at wall-clock ``started``, whose window (``window_s``
        long) resets ``reset_s`` later with ``remaining`` of ``capacity`` left: whether the
        owners of the slots before it in that window sent theirs."""
        opened = started + reset_s - window_s
        first = math.ceil(opened * rate - 0.5)
        mine = sum(1 for k in self.mine if first <= k and (k + 0.5) / rate <= started + 1e-9)
        before = [
            k for k in range(first, math.ceil(started * rate - 0.5 - LATE)) if k not in self.mine
        ]
        others = [self.owner(k, rate) for k in before]
        others = [shard for shard in others if shard != self.index]
        if not others:
            return
        spent = capacity - remaining - (mine if admitted else mine - 1)
        if spent <= 0:
            for shard in set(others):
                self._idle_since.setdefault(shard, now)
                self._idle_seen[shard] = self._idle_seen.get(shard, 0) + 1
        elif spent >= len(others) or len(set(others)) == 1:
            for shard in set(others):
                self._idle_since.pop(shard, None)
                self._idle_seen.pop(shard, None)
                self.stopped.discard(shard)
        for shard, since in self._idle_since.items():
            if now - since >= IDLE_AFTER_S and self._idle_seen[shard] >= IDLE_SEEN:
                self.stopped.add(shard)

    def _owned(self, k: int, rate: float) -> bool:
        return self.order[self._position(k, rate) % len(self.order)] == self.index

    def _position(self, k: int, rate: float) -> int:
        """Slot ``k``'s place in the round robin: in order, but reversed within every odd
        second, so that no shard is always first in its windows."""
        second = math.floor((k + 0.5) / rate)
        if second % 2 == 0:
            return k
        first = math.ceil(second * rate - 0.5)
        last = math.ceil((second + 1) * rate - 0.5) - 1
        return first + last - k
