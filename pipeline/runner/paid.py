"""What happens to a paid image before anything else can go wrong: its record, its exact
delivered bytes, and what to tell the user when the account itself fails.

Kept apart from the scheduler because it is the money path: every function here is pure
(bytes and records in, bytes and records out), so it is read and tested without a loop,
and the scheduler only decides *when* it runs (in a worker thread, before the request's
slot is given up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL.Image import Image

from pipeline import postprocess
from pipeline.hashing import sha256_bytes
from pipeline.jobs import ApiJob, ImageResult, ProviderFailure
from pipeline.runner.budget import Pricing
from pipeline.runner.guards import UnusableImage, size_note
from pipeline.runner.journal import JournalLine
from pipeline.store import CacheRecord, ResultStore

ADOPTED_NOTE = (
    "another machine shared its image for this request first; it is delivered instead "
    "of this call's (paid for, and kept by no cache), so every machine has the same pixels"
)


@dataclass(frozen=True, slots=True)
class Kept:
    """What the store kept for a key, to deliver: our bytes, or another machine's."""

    data: bytes
    original: bytes | None
    meta: Mapping[str, Any]
    adopted: bool = False
    """The store kept another writer's result (a shared store keeps the first one)."""
    sha256: str | None = None
    """The sha256 of ``data`` (known: the store names its blobs by it)."""


def kept(
    store: ResultStore,
    record: CacheRecord,
    data: bytes,
    original: bytes | None,
    meta: Mapping[str, Any],
) -> Kept:
    """What to deliver after ``store.commit`` returned ``record`` for our ``data``.

    A shared store keeps the first result committed under a key; when another machine
    got there first, ``record`` is its result and its bytes are delivered, read back by
    their sha256, so that every machine delivers the same pixels for the key. Ours are
    delivered only when the record names them, or when the winner's bytes cannot be read
    (the layered store has already copied them locally, so that is a damaged cache)."""
    sha = sha256_bytes(data)
    if record.blob == sha:
        return Kept(data, original, meta, sha256=sha)
    theirs = store.read_blob(record.blob)
    if theirs is None:
        return Kept(data, original, meta, sha256=sha)
    theirs_original = store.read_blob(record.original) if record.original else theirs
    return Kept(theirs, theirs_original, record.meta or {}, adopted=True, sha256=record.blob)


def paid_meta(job: ApiJob, result: ImageResult, cost: float, notes: list[str]) -> dict[str, Any]:
    """The cache record's metadata for a paid result: what the API said and what it cost.

    ``notes`` is the list the record keeps; :func:`deliverable` may still add to it before
    the record is committed."""
    return {
        "usage": result.usage.as_dict() if result.usage else None,
        "cost_usd": cost,
        "request_id": result.request_id,
        "returned_size": result.size,
        "model": job.model,
        "notes": notes,
        "batch_id": result.batch_id,
    }


def deliverable(
    job: ApiJob, data: bytes, notes: list[str], *, decode: bool = True
) -> tuple[bytes, postprocess.Sample | None]:
    """The delivered bytes of a paid image (``data``): exactly the job's size and format
    (see :func:`deliver_paid`), and the sample of their pixels when the delivery decoded
    them anyway, so they are not decoded again to be inspected.

    With ``decode`` False, an image whose header says it already is the job's size and
    format is delivered as it is without a pixel decoded (the sample is None): whoever
    writes it decodes it then, off the request's slot (see ``Maker._deliver_paid``)."""
    delivered, image = deliver_paid_decoded(
        data,
        job.size,
        job.requested_size,
        job.format,
        delivery_compression(job),
        notes,
        decode=decode,
    )
    return delivered, postprocess.sample(image) if image is not None else None


def delivery_compression(job: ApiJob) -> int | None:
    """The compression the job's file is encoded with (None: the encoder's default)."""
    compression = job.params.get("output_compression")
    return int(compression) if compression else None


def deliver_paid(
    data: bytes,
    size: tuple[int, int],
    requested: tuple[int, int],
    fmt: str,
    compression: int | None,
    notes: list[str],
) -> bytes:
    """``data`` (a paid image) at exactly ``size`` in ``fmt``.

    The image is measured (header only) before any pixel is decoded; an image that cannot
    be delivered raises :class:`UnusableImage`. A larger-than-requested image is delivered
    with a note appended to ``notes``.
    """
    return deliver_paid_decoded(data, size, requested, fmt, compression, notes)[0]


def deliver_paid_decoded(
    data: bytes,
    size: tuple[int, int],
    requested: tuple[int, int],
    fmt: str,
    compression: int | None,
    notes: list[str],
    *,
    decode: bool = True,
) -> tuple[bytes, Image | None]:
    """:func:`deliver_paid`, plus the delivered pixels when they are known (see
    :func:`pipeline.postprocess.deliver_decoded`). With ``decode`` False, ``data`` comes
    back undecoded (pixels None) when its header says it is ``size`` in ``fmt``. An SVG is
    sanitized and a GIF kept as it came (:func:`pipeline.postprocess.deliver_non_raster`)."""
    if fmt in postprocess.NON_RASTER_FORMATS:
        try:
            return postprocess.deliver_non_raster(data, size, fmt, notes)
        except postprocess.ImageDecodeError as exc:
            raise UnusableImage(str(exc)) from exc
    try:
        returned, found = postprocess.peek(data)
        warning = size_note(returned, requested)
        if not decode and returned == size and found == postprocess.normalize_format(fmt):
            delivered: tuple[bytes, Image | None] = (data, None)
        else:
            delivered = postprocess.deliver_decoded(data, size[0], size[1], fmt, compression)
    except postprocess.ImageDecodeError as exc:
        raise UnusableImage(str(exc)) from exc
    if warning:
        notes.append(warning)
    return delivered


def account_advice(failure: ProviderFailure) -> str:
    """What to do when the account failed (quota, key, permission): no job can succeed."""
    if failure.kind == "quota":
        return (
            "the account is out of quota (insufficient_quota): no new jobs were started. "
            "Check the plan and billing page of your OpenAI organization, then build again; "
            "finished images are kept."
        )
    if failure.kind == "auth":
        return (
            "the API key was rejected (401): check OPENAI_API_KEY (or AZURE_OPENAI_API_KEY) "
            "and the organization/project it belongs to. No new jobs were started."
        )
    if failure.details.get("access") == "preview":
        return (
            f"the organization has no preview access: {failure.message} — SVG and GIF "
            "output need access to the preview for the model: ask for it in the OpenAI "
            "organization settings, or build those assets as png on another model. Not "
            "retried; no new jobs were started, finished images are kept."
        )
    return (
        f"access denied (403): {failure.message} — GPT image models need a verified "
        "organization and model access for the project. No new jobs were started."
    )


def write_failure_advice(exc: Exception) -> str:
    """What to do when a file could not be written: no further paid image could be kept."""
    return (
        f"{exc}. No new jobs were started: free disk space or fix the folder "
        "(permissions, a file where a folder should be), then build again; "
        "images already in the cache are not paid for again."
    )


def keep_paid_line(
    store: ResultStore, pricing: Pricing, line: JournalLine, result: ImageResult
) -> None:
    """Commit a paid batch line no job of this build has asked for (the spec may have
    changed since it was sent): it is in the cache, under its request's key, if the spec
    comes back. Nothing paid for is thrown away."""
    if store.lookup(line.request) is not None:
        return
    notes: list[str] = []
    try:
        delivered = deliver_paid(
            result.data, line.size, line.requested, line.format, line.compression, notes
        )
    except UnusableImage:  # nothing deliverable to keep
        return
    meta = {
        "usage": result.usage.as_dict() if result.usage else None,
        "cost_usd": pricing.actual_for(line.model, line.estimate, result.usage),
        "request_id": result.request_id,
        "returned_size": result.size,
        "model": line.model,
        "notes": notes,
        "batch_id": result.batch_id,
    }
    store.commit(line.request, delivered, result.data, meta)
