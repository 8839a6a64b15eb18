"""The byte budget of a far bucket's downloads: memory stays bounded, nothing deadlocks.

Downloads run in threads: each reserves its image's size before reading its body, and a
result's second image (the API's original) is reserved while the first is held. Checked
with real threads and a barrier (every download starts at once), never with a clock:
a deadline exists only so that a deadlock fails the test instead of hanging it.
"""

from __future__ import annotations

import threading

from pipeline.store.inflight import ByteBudget

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
