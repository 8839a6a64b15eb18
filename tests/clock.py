"""A clock for tests of pacing and retries: time moves only when the code sleeps."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Callable as ``clock()``; ``await sleep(s)`` records ``s`` and advances the time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
