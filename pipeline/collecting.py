"""Pausing Python's cyclic garbage collector while many long-lived objects are made.

Planning 100,000 jobs, or assessing them, makes millions of objects that all live on
(jobs, specs, prompts, states) and form no reference cycles among them, yet each counts
towards the next collection, and each older collection walks the whole heap just made:
a tenth to a third of the time, for nothing. What is freed meanwhile is still freed at
once (reference counting); a cycle (an exception's traceback) waits for the collector,
which runs again as soon as the block ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


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
