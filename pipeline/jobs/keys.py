"""The stable names of jobs: ids, output paths and cache keys.

Users select jobs by id (``--only 'icons/*'``), tools find files by path, and the cache
finds results by key; all three must stay put between runs, so they live here (the keys
of API jobs, which a plan makes by the 100,000, in :mod:`pipeline.jobs.api_keys`).
A change to a key's payload makes every user pay again for every image:
``tests/test_hashing.py`` pins literal keys so such a change cannot slip in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.hashing import CacheRequest
from pipeline.jobs.job import ApiJob, JobBase, OpCall, RenditionOp
from pipeline.jobs.provider import ParamValue

EXTENSIONS = {"png": "png", "webp": "webp", "jpeg": "jpg", "svg": "svg", "gif": "gif"}


def job_id(collection: str, asset: str, variant: int, *, numbered: bool = False) -> str:
    """``collection/asset`` for variant 1, ``collection/asset#k`` after; every variant is
    ``#k`` when ``numbered`` (a picked asset, whose own id is its approved image)."""
    return f"{collection}/{asset}" + (f"#{variant}" if variant > 1 or numbered else "")


def output_path(
    collection: str,
    asset: str,
    variant: int,
    rendition: tuple[int, int] | None,
    fmt: str,
    *,
    numbered: bool = False,
) -> str:
    """``collection/asset[.vK][@WxH].ext``; ``.v1`` too when ``numbered``
    (a picked asset's own path holds its approved image)."""
    name = asset + (f".v{variant}" if variant > 1 or numbered else "")
    if rendition is not None:
        name += f"@{rendition[0]}x{rendition[1]}"
    return f"{collection}/{name}.{EXTENSIONS[fmt]}"


def rendition_request(source_sha: str, op: RenditionOp) -> CacheRequest:
    """A rendition: its source image's sha256 plus its operations (the ``ops`` key only
    when it has some, so the keys of renditions without them never changed)."""
    payload: dict[str, object] = {"rendition": op.as_dict(), "source": source_sha}
    if op.ops:
        payload["ops"] = _ops(op.ops)
    return CacheRequest(payload)


def rendition_cache_key(source_sha: str, op: RenditionOp) -> str:
    """The cache key of a rendition."""
    return rendition_request(source_sha, op).key


def sheet_request(
    params: Mapping[str, ParamValue], frames: Sequence[tuple[str, str]]
) -> CacheRequest:
    """A sheet: its options and each frame's (name, sha256), in order."""
    return CacheRequest({"sheet": dict(params), "frames": [list(f) for f in frames]})


def delivery_request(
    source_sha: str,
    size: tuple[int, int],
    fmt: str,
    compression: int | None,
    ops: Sequence[OpCall] = (),
) -> CacheRequest:
    """An API image delivered at a size its request's record does not hold (two jobs
    asking the same request for different sizes), or through an asset's ``ops``: the
    sha256 of the API's bytes plus the delivery, of which the file is a pure function."""
    delivery = {"width": size[0], "height": size[1], "format": fmt, "compression": compression}
    payload: dict[str, object] = {"delivery": delivery, "source": source_sha}
    if ops:
        payload["ops"] = _ops(ops)
    return CacheRequest(payload)


def operated_key(request_key: str, job: ApiJob) -> str:
    """What the manifest records for an API job whose file goes through ``ops``: the key
    of its request's key plus the delivery and the operations (one this process computed
    from the job: a key read from anywhere never comes here). Known without the cache (a
    manifest entry stays up to date after ``cache clear``) and never a key of the store:
    the paid image stays filed under the request, so changing an operation pays nothing."""
    return CacheRequest(_operated_payload(request_key, job)).key


def _operated_payload(request_key: str, job: ApiJob) -> dict[str, object]:
    size, fmt = job.size, job.format
    delivery = {"width": size[0], "height": size[1], "format": fmt}
    return {"request": request_key, "delivery": delivery, "ops": _ops(job.ops)}


def _ops(ops: Sequence[OpCall]) -> list[dict[str, object]]:
    """Operations as keys hash them: in order, each with its parameters and version."""
    return [call.as_dict() for call in ops]


def signed_key(request_key: str, signing: str) -> str:
    """What the manifest records for a job whose re-encoded file is signed with C2PA
    credentials: the key of its request's key plus the fingerprint of the credentials
    (their certificate chain and algorithm, never the key), so a new certificate makes
    the file again and an unchanged one keeps it. Never used without signing: keys then
    stay as they always were."""
    return CacheRequest({"request": request_key, "signing": signing}).key


def signature_request(unsigned_sha: str, parents: Sequence[str], signing: str) -> CacheRequest:
    """A signed file in the cache: the sha256 of the bytes signed, of each ingredient
    (in order) and the credentials' fingerprint decide it. Signing is not repeatable
    (each manifest has its own id), so the first signature is kept and delivered again."""
    return CacheRequest({"sign": unsigned_sha, "parents": list(parents), "signing": signing})


def pick_request(sha256: str) -> CacheRequest:
    """An asset's approved image: only its bytes decide it."""
    return CacheRequest({"pick": sha256})


def pick_cache_key(sha256: str) -> str:
    """The key of an asset's approved image."""
    return pick_request(sha256).key


def frame_name(job: JobBase) -> str:
    """A frame's key in a sheet's atlas: the file name of the image it comes from."""
    return job.output_path.rsplit("/", 1)[-1]
