"""Watching a batch until it is over: one poller for image batches and judge batches.

A batch takes minutes to hours, so it is asked about with a growing delay (each wait
half again as long as the last, up to a ceiling) rather than at a fixed short interval
that would spend requests for nothing. A failure worth retrying (a 5xx, a dropped
connection) is a reason to ask again later, not to give the batch up; under
``--no-wait`` the batch is asked about once and left to the next build whatever it
answered. An unknown batch (:class:`~pipeline.jobs.batch.BatchNotFound`) is the
caller's to handle: what it means differs for a batch this build created and one an
earlier build left in the journal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from pipeline.jobs import ProviderFailure
from pipeline.jobs.batch import BatchInfo, BatchNotFound

GROWTH = 1.5
"""Each wait is this many times the last, up to the ceiling."""


class PollOptions(Protocol):
    """How a batch is watched (both batchers' options have these)."""

    @property
    def wait(self) -> bool:
        """False for ``--no-wait``: ask once, leave the batch to the next build."""

    @property
    def poll_s(self) -> float:
        """The first wait between two polls."""

    @property
    def max_poll_s(self) -> float:
        """The longest wait between two polls."""


async def until_done(
    info: BatchInfo,
    retrieve: Callable[[str], Awaitable[BatchInfo]],
    sleep: Callable[[float], Awaitable[object]],
    options: PollOptions,
    seen: Callable[[BatchInfo], None] | None = None,
) -> BatchInfo:
    """Ask about ``info``'s batch until it is over (once under ``--no-wait``) and
    return what was last heard; ``seen`` is told every answer."""
    wait = options.wait
    delay = options.poll_s
    while True:
        try:
            info = await retrieve(info.id)
        except BatchNotFound:
            raise  # a ProviderFailure too, but not one to wait out
        except ProviderFailure as failure:
            if not failure.retryable or not wait:
                return info
        if seen is not None:
            seen(info)
        if info.is_terminal or not wait:
            return info
        await sleep(delay)
        delay = min(options.max_poll_s, delay * GROWTH)
