"""When Python's cyclic garbage collector runs: not while long-lived objects are made.

Planning 100,000 jobs, or assessing them, makes millions of objects that all live on
(jobs, specs, prompts, states) and form no reference cycles among them, yet each counts
towards the next collection, and each older collection walks the whole heap just made:
a tenth to a third of the time, for nothing. A command's start is the same: importing
assetpipe, its libraries and the OpenAI SDK makes ~200,000 objects that live as long as
the process, and the collections they set off walk them again and again (a tenth of a
second of a build's start). What is freed meanwhile is still freed at once (reference
counting); a cycle (an exception's traceback) waits for the collector, which runs again
as soon as the block ends, or once the command settles into its long work.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_QUIET: list[bool] = []
"""Holds ``True`` from :func:`start_quietly` until :func:`settle`."""


@contextlib.contextmanager
def no_collections() -> Iterator[None]:
    """No cyclic collection within the block (the collector's state is restored after)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def start_quietly() -> None:
    """No cyclic collection from now until :func:`settle`: for the ``assetpipe`` command's
    start (imports, settings, the plan), which only makes objects that live on. A short
    command may end before it settles; its few cycles go with the process."""
    if not _QUIET and gc.isenabled():
        gc.disable()
        _QUIET.append(True)


def settle() -> None:
    """The command begins its long work (a build's requests, a server, a watch): what was
    made so far is kept out of every later collection (``gc.freeze``: it lives as long as
    the command) and the collector runs again. Does nothing unless started quietly."""
    if _QUIET:
        _QUIET.clear()
        gc.freeze()
        gc.enable()
