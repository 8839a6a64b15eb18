"""The byte budget of a far bucket's downloads: memory stays bounded, nothing deadlocks.

Downloads run in threads, or as tasks on one event loop: each reserves its image's size
before reading its body, and a result's second image (the API's original) is reserved
while the first is held. Checked with real threads and a barrier (every download starts
at once), or tasks started together, never with a clock: a deadline exists only so that
a deadlock fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import threading

from pipeline.store.inflight import ByteBudget, LoopBudget

DEADLINE_S = 30.0
LIMIT = 100


def run_downloads(budget: ByteBudget, sizes: list[tuple[int, ...]]) -> None:
    """One thread a download, all released together; each reserves its sizes in turn."""
    start = threading.Barrier(len(sizes))

    def download(parts: tuple[int, ...]) -> None:
        start.wait()
        with budget.holding() as reserve:
            for size in parts:
                reserve(size)

    threads = [threading.Thread(target=download, args=(parts,)) for parts in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads), "downloads deadlocked"


def test_single_images_never_hold_more_than_the_budget() -> None:
    budget = ByteBudget(LIMIT)
    run_downloads(budget, [(size,) for size in (40, 30, 60, 10, 90, 50, 20, 70) * 4])
    assert budget.peak <= LIMIT
    assert budget.used == 0


def test_an_image_larger_than_the_budget_goes_alone() -> None:
    budget = ByteBudget(LIMIT)
    run_downloads(budget, [(250,), (30,), (40,), (250,), (10,)])
    assert budget.peak == 250
    assert budget.used == 0


def test_second_images_take_one_overdraft_and_never_deadlock() -> None:
    """Every download holds its first image and asks for a second that does not fit:
    waiting for the budget there could wait forever; one of them at a time goes over."""
    budget = ByteBudget(LIMIT)
    run_downloads(budget, [(45, 60)] * 12)
    assert budget.peak <= LIMIT + 60
    assert budget.used == 0


def run_awaited(budget: LoopBudget, sizes: list[tuple[int, ...]]) -> None:
    """One task a download on one event loop, all started together; each reserves its
    sizes in turn and yields to the others between them."""

    async def download(parts: tuple[int, ...]) -> None:
        async with budget.holding() as reserve:
            for size in parts:
                await reserve(size)
                await asyncio.sleep(0)  # a body being read: the others run meanwhile

    async def all_of_them() -> None:
        await asyncio.wait_for(asyncio.gather(*(download(parts) for parts in sizes)), DEADLINE_S)

    asyncio.run(all_of_them())


def test_on_an_event_loop_single_images_never_hold_more_than_the_budget() -> None:
    budget = LoopBudget(LIMIT)
    run_awaited(budget, [(size,) for size in (40, 30, 60, 10, 90, 50, 20, 70) * 4])
    assert LIMIT - 10 <= budget.peak <= LIMIT, "downloads waited although there was room"
    assert budget.used == 0


def test_on_an_event_loop_an_image_larger_than_the_budget_goes_alone() -> None:
    budget = LoopBudget(LIMIT)
    run_awaited(budget, [(250,), (30,), (40,), (250,), (10,)])
    assert budget.peak == 250
    assert budget.used == 0


def test_on_an_event_loop_second_images_take_one_overdraft_and_never_deadlock() -> None:
    budget = LoopBudget(LIMIT)
    run_awaited(budget, [(45, 60)] * 12)
    assert budget.peak <= LIMIT + 60
    assert budget.used == 0


def test_on_an_event_loop_a_cancelled_download_gives_its_bytes_back() -> None:
    """A download cancelled while it holds bytes (a build that stops) gives them back,
    and the download waiting for them goes on."""
    budget = LoopBudget(LIMIT)

    async def scenario() -> None:
        holding = asyncio.Event()

        async def big() -> None:
            async with budget.holding() as reserve:
                await reserve(80)
                holding.set()
                await asyncio.Event().wait()  # never set: only a cancel ends it

        async def waiting() -> None:
            async with budget.holding() as reserve:
                await reserve(60)

        first = asyncio.create_task(big())
        await holding.wait()
        second = asyncio.create_task(waiting())
        await asyncio.sleep(0)
        assert not second.done(), "60 more bytes do not fit beside 80"
        first.cancel()
        await asyncio.wait_for(second, DEADLINE_S)

    asyncio.run(scenario())
    assert budget.used == 0
