"""What a cached API result delivers: a copy of its bytes, or another size made from them.

Restoring a file from the cache is a copy of verified bytes plus a manifest line; what
inspecting them found comes from the memo (:mod:`pipeline.store.memo`). The API's own
bytes (kept when delivery changed them) are read only when they are needed: to keep
them beside the file (``keep_original``), or for their C2PA verdict when the memo does
not know it.

A record's delivered bytes are at the size of the job that paid for it; another job with
the same request (so the same key) may deliver another size. Its file is delivered from
the API's bytes, a pure function of them and the job's size, format and compression,
kept in the cache under that delivery's own key (:func:`~pipeline.jobs.delivery_request`),
so it is made once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pipeline import postprocess
from pipeline.hashing import CacheRequest
from pipeline.jobs import ApiJob, delivery_request
from pipeline.runner.delivery import OriginalFacts
from pipeline.runner.paid import deliver_paid, delivery_compression
from pipeline.store import CacheRecord, Inspection, InspectionMemo, ResultStore

MISSING_ORIGINAL_NOTE = (
    "the API's own bytes are missing from the cache: this size was made from another "
    "size's file; `assetpipe build --force` asks again"
)

SMALLER_NOTE = (
    "the cached image is smaller than this job asks for (it would have to be scaled up); "
    "it is not used, and the image is made again"
)

Keep = Callable[[CacheRequest, bytes], bytes]
"""Commits a delivery of a request; returns the bytes to deliver (the store's)."""


class Restored(NamedTuple):
    """What a cached result delivers for a job."""

    original: bytes | OriginalFacts | None
    """The API's bytes, what the memo knows of them when they differ and were not read,
    or None when there are none (or they are lost)."""
    data: bytes
    sha256: str | None = None
    """Of ``data``, when known (verified by the store)."""
    known: Inspection | None = None
    """What the memo knows of ``data`` when it was read (an empty inspection when it knows
    nothing), so the writer does not ask again; None when it was not read."""


def cached_delivery(
    job: ApiJob,
    record: CacheRecord,
    data: bytes,
    notes: list[str],
    store: ResultStore,
    memo: InspectionMemo,
    keep: Keep,
) -> Restored | None:
    """What the cached ``record`` (whose delivered bytes are ``data``) delivers for
    ``job``; None (a miss) when its bytes are smaller than the job asks for: they could
    only be scaled up, blurrier than what the request pays for, so the record is not
    what that request returned."""
    # Read once: an empty inspection (not None) tells the writer the memo was asked.
    known = memo.inspection(record.blob) or Inspection()
    if known.width is not None and known.height is not None:
        size = (known.width, known.height)
    else:
        size = postprocess.measure(data, postprocess.MAX_PIXELS)
    if record.original is None:  # the API's bytes, delivered as they are
        if size == job.size:
            return Restored(data, data, record.blob, known)
        if _smaller(size, job.requested_size):
            return None
        return Restored(data, redeliver(job, record.blob, data, notes, store, keep))
    facts = memo.inspection(record.original)
    if size == job.size and not job.keep_original and facts and facts.c2pa is not None:
        return Restored(OriginalFacts(record.original, facts.c2pa), data, record.blob, known)
    original = store.read_blob(record.original)
    if original is None:  # the record's own bytes still deliver its own size
        if size == job.size:
            return Restored(None, data, record.blob, known)
        if _smaller(size, job.size):
            return None
        notes.append(MISSING_ORIGINAL_NOTE)
        return Restored(None, redeliver(job, record.blob, data, notes, store, keep))
    if _smaller(postprocess.measure(original, postprocess.MAX_PIXELS), job.requested_size):
        return None
    if size == job.size:
        return Restored(original, data, record.blob, known)
    return Restored(original, redeliver(job, record.original, original, notes, store, keep))


def _smaller(have: tuple[int, int], want: tuple[int, int]) -> bool:
    """Whether an image of ``have`` pixels is smaller than ``want`` on either side."""
    return have[0] < want[0] or have[1] < want[1]


def redeliver(
    job: ApiJob, source_sha: str, source: bytes, notes: list[str], store: ResultStore, keep: Keep
) -> bytes:
    """``job``'s file from the API's bytes ``source``: from the cache, or made and kept."""
    compression = delivery_compression(job)
    asked = delivery_request(source_sha, job.size, job.format, compression)
    hit = store.get(asked)
    if hit is not None:
        return hit[1]
    return keep(asked, deliver_paid(source, job.size, (0, 0), job.format, compression, notes))
