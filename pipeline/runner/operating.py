"""The file of an API job with ``ops:``: made from the API's image, once, and kept.

An asset's operations run on its delivered image, so their result is a pure function of
the API's bytes, the delivery (size, format, compression) and the operations; it is kept
in the cache under exactly that (:func:`~pipeline.runner.freshness.operated_delivery`).
The paid image stays filed under its request's key, untouched: changing an operation
makes this file again from the cached image and never asks the provider for a new one.
"""

from __future__ import annotations

from typing import NamedTuple

from pipeline.hashing import sha256_bytes
from pipeline.jobs import ApiJob
from pipeline.postprocess.fitting import deliver_operated
from pipeline.runner.freshness import operated_delivery
from pipeline.runner.paid import delivery_compression
from pipeline.runner.restoring import Keep, Restored
from pipeline.store import CacheRecord, InspectionMemo, ResultStore


class Operating(NamedTuple):
    """What making an operated file uses: the cache, the memo (expensive operations keep
    their results there) and how a made file is committed."""

    store: ResultStore
    memo: InspectionMemo
    keep: Keep


def operated_file(
    job: ApiJob, source: bytes, sha: str | None, using: Operating
) -> tuple[bytes, str]:
    """The file of ``job`` and its sha256, from the API's image ``source`` (whose sha256
    is ``sha`` when known): from the cache, else made and committed."""
    asked = operated_delivery(job, sha or sha256_bytes(source))
    hit = using.store.get(asked)
    if hit is not None:
        return hit[1], hit[0].blob
    width, height = job.size
    made = deliver_operated(
        source, width, height, job.format, delivery_compression(job), job.ops, using.memo
    )
    kept = using.keep(asked, made)
    return kept, sha256_bytes(kept)


def restore_operated(
    job: ApiJob, record: CacheRecord, found: Restored, using: Operating
) -> Restored:
    """What the cached ``record`` delivers for ``job``, given what it delivers without
    the operations (``found``): the operated file from the cache, else made from the
    API's bytes, read only then (or, when those are lost, from the plain file)."""
    source_sha = record.original or record.blob
    hit = using.store.get(operated_delivery(job, source_sha))
    if hit is not None:
        data, sha = hit[1], hit[0].blob
    else:
        source = found.original if isinstance(found.original, bytes) else None
        if source is None:
            source = using.store.read_blob(source_sha)
        if source is None:  # the API's bytes are lost: the delivered ones must do
            source, source_sha = found.data, found.sha256 or sha256_bytes(found.data)
        data, sha = operated_file(job, source, source_sha, using)
    return Restored(found.original, data, sha, using.memo.inspection(sha))
