"""How many bytes of shared images a store downloads at once.

Downloading a plan's cached results from a far bucket is bound by the round trip, not by
bandwidth, so many downloads should be asked at once; but each holds its image in memory
until it is written to the local cache, and real images weigh megabytes. Counting
downloads cannot serve both: 32 at once is 80 MB of real images but leaves small ones
waiting on round trips. :class:`ByteBudget` counts bytes instead: a download learns its
image's size from the answer's headers and waits there, before reading the body, until
the bytes already held leave room for it. :class:`LoopBudget` is the same budget for
downloads awaited on one event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

AsyncReserve = Callable[[int], Awaitable[None]]
"""A :class:`LoopBudget`'s ``reserve``: awaited with an image's size before its body is
read."""


class _Counted:
    """The bytes a budget holds, and when one more image fits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        """The most bytes held at once so far."""

    def _fits(self, size: int) -> bool:
        return self.used + size <= self.limit

    def _room_for(self, size: int) -> bool:
        """Whether a first image of ``size`` may be held now (alone, when it is larger
        than the whole budget)."""
        return self.used == 0 or self._fits(size)

    def _take(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)


class ByteBudget(_Counted):
    """At most ``limit`` bytes of downloads held at once, give or take one image.

    A download holds what it reserved until its ``with`` block ends. An image larger than
    the whole budget waits until nothing else is held, then goes alone. A download that
    already holds an image and needs another (a result's delivered and original bytes)
    never waits for the budget, which could wait forever on downloads waiting in turn for
    it: it takes the one overdraft, so memory stays under ``limit`` plus one image.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._cond = threading.Condition()
        self._overdraft = threading.Lock()

    @contextlib.contextmanager
    def holding(self) -> Iterator[Callable[[int], None]]:
        """A ``reserve(size)`` for one download; everything it reserved is given back
        when the block ends."""
        held = 0
        overdrawn = False

        def reserve(size: int) -> None:
            nonlocal held, overdrawn
            size = max(0, size)
            if held and not overdrawn:
                with self._cond:
                    fits = self._fits(size)
                if not fits:
                    self._overdraft.acquire()
                    overdrawn = True
            with self._cond:
                if not held:
                    self._cond.wait_for(lambda: self._room_for(size))
                self._take(size)
            held += size

        try:
            yield reserve
        finally:
            with self._cond:
                self.used -= held
                self._cond.notify_all()
            if overdrawn:
                self._overdraft.release()


class LoopBudget(_Counted):
    """:class:`ByteBudget` for downloads awaited on one event loop: the same rules (an
    image larger than the budget goes alone, a second image takes the one overdraft),
    awaited instead of blocking, so the loop that frees the bytes is never held up by a
    download waiting for them. Used from that loop alone."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        """Downloads waiting for room, woken (all) whenever bytes are given back."""
        self._overdraft = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[AsyncReserve]:
        """An awaitable ``reserve(size)`` for one download; everything it reserved is
        given back when the block ends (cancelled or not)."""
        held = 0
        overdrawn = False

        async def reserve(size: int) -> None:
            nonlocal held, overdrawn
            size = max(0, size)
            if held and not overdrawn and not self._fits(size):
                await self._overdraft.acquire()
                overdrawn = True
            while not held and not self._room_for(size):
                room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiting.append(room)
                await room
            self._take(size)
            held += size

        try:
            yield reserve
        finally:
            self.used -= held
            if overdrawn:
                self._overdraft.release()
            while self._waiting:  # each checks again; one cancelled meanwhile is done
                room = self._waiting.popleft()
                if not room.done():
                    room.set_result(None)
