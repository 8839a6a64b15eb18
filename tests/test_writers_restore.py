"""A restore's two halves: the copy from the cache, then (when the memo does not know it
all) the inspection in the pool sized to the cores, handed over without the event loop.

A build's event loop is busy with every other job; the inspection of a restored file
must not wait for it between the copy and the pool. These tests hold the loop on purpose
(a blocking wait inside a coroutine) and check that the restore gets through anyway, and
that whatever the two halves raise reaches the caller.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.output import OutputTree
from pipeline.runner.delivery import Delivery
from pipeline.runner.writers import Writers

HELD = 60.0
"""How long a test holds the loop waiting for the pool at most: a guard against a hang,
never reached when the restore works (the wait ends on the event itself)."""


@pytest.fixture
def writers(tmp_path: Path) -> Iterator[Writers]:
    made = Writers(Delivery(OutputTree(tmp_path / "output"), {}, embed_metadata=False), 8)
    yield made
    made.close()


def test_the_inspection_reaches_the_pool_while_the_loop_is_busy(writers: Writers) -> None:
    """The copy's leftover work starts in a pool thread while the loop is held."""
    started = threading.Event()
    ran_in: list[str] = []

    def inspect() -> str:
        ran_in.append(threading.current_thread().name)
        started.set()
        return "inspected"

    def copy() -> Callable[[], str]:
        ran_in.append(threading.current_thread().name)
        return inspect

    async def build() -> str | None:
        restore = asyncio.ensure_future(writers.restore(copy))
        await asyncio.sleep(0)  # the copy is submitted; from here on the loop is held
        assert started.wait(HELD), "the inspection waited for the event loop"
        return await restore

    assert asyncio.run(build()) == "inspected"
    assert [name.rsplit("_", 1)[0] for name in ran_in] == ["assetpipe-copy", "assetpipe-local"]


def test_a_copy_that_knows_it_all_or_misses_needs_no_pool(writers: Writers) -> None:
    """A copy whose inspection the memo knew returns the outcome itself; a miss is None."""
    assert asyncio.run(writers.restore(lambda: "outcome")) == "outcome"
    assert asyncio.run(writers.restore(lambda: None)) is None


@pytest.mark.parametrize("half", ["copy", "inspection"])
def test_what_either_half_raises_reaches_the_build(writers: Writers, half: str) -> None:
    def fail() -> None:
        raise OSError(f"the {half} failed")

    work = fail if half == "copy" else lambda: fail
    with pytest.raises(OSError, match=f"the {half} failed"):
        asyncio.run(writers.restore(work))
