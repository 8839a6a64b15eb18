"""What the runner checks before it trusts an API image, a cache entry or a write.

An API answer and ``.assetpipe/`` are untrusted input (see the threat model in
docs/reliability.md), and a disk can fill up mid-build. These helpers keep those judgements
out of the scheduler's flow: whether a returned image may be delivered, what a cache entry's
recorded notes and cost are worth, and how a failed write is told apart from any other local
error.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.errors import PipelineError
from pipeline.runner.outcome import Outcome

MAX_NOTES = 10
"""Warnings kept per job (from the cache, which is untrusted, as from the provider)."""
NOTE_CHECK = "response"
"""The name of the failed check that records a warning about a job's API answer."""


class LocalWriteError(PipelineError):
    """A file assetpipe must write (a cache entry, a delivered file) could not be written."""


class UnusableImage(Exception):
    """An API image that must not be delivered (wrong container, too large, too small)."""


@contextlib.contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn a failed write of ``what`` (disk full, a file where a folder should be, the
    cache database) into a :class:`LocalWriteError` that names it."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise LocalWriteError(f"could not write {what}: {exc}") from exc


def size_note(returned: tuple[int, int], requested: tuple[int, int]) -> str | None:
    """What is wrong with an API image of ``returned`` pixels for a ``requested`` size.

    An image smaller than asked on either side would be scaled up to the target, blurrier
    than what was paid for: that raises :class:`UnusableImage` and fails the job. A larger
    one is only scaled down, so it is delivered, with the returned note (a failed check).
    None when the size is as requested (or no size was requested).
    """
    rw, rh = requested
    if not rw or not rh or returned == requested:
        return None
    gw, gh = returned
    if gw < rw or gh < rh:
        raise UnusableImage(
            f"the API returned a {gw}x{gh} image for a {rw}x{rh} request; assetpipe does "
            "not scale a smaller image up to the target"
        )
    return f"the API returned {gw}x{gh} for a {rw}x{rh} request; it was scaled down"


def cached_notes(value: object) -> list[str]:
    """The notes recorded in a cache entry (untrusted): strings only, a few, bounded."""
    if not isinstance(value, list):
        return []
    return [n[:2000] for n in value if isinstance(n, str)][:MAX_NOTES]


def cached_cost(value: object) -> float:
    """A cost read back from the cache: a finite, non-negative number, else 0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number >= 0:
            return number
    return 0.0


def cached_fields(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome fields a cache record's metadata gives a copied result (the call that
    made it: usage, cost, request id, echoed size), with the cost checked."""
    return {
        "usage": meta.get("usage"),
        "cost_usd": cached_cost(meta.get("cost_usd", 0.0)),
        "request_id": meta.get("request_id"),
        "returned_size": meta.get("returned_size"),
    }


def with_notes(outcome: Outcome, notes: list[str]) -> Outcome:
    """``outcome`` with each warning about its API answer recorded as a failed check."""
    if notes:
        found = [c for c in outcome.checks or () if c.get("name") != NOTE_CHECK]
        found += [{"name": NOTE_CHECK, "ok": False, "detail": n, "value": None} for n in notes]
        outcome.checks = found
    return outcome
