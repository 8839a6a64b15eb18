"""A delivered file signed once and kept: the cache-aware side of C2PA signing.

A signature is not repeatable (each manifest has its own id and time), so a file signed
again would get new bytes, a new sha256, and every file made from it a new key. The
first signature is kept in the result cache under :func:`~pipeline.jobs.signature_request`
(the bytes signed, the ingredients, the credentials' fingerprint) and delivered again on
every rebuild; the ingredients' bytes are read only when a file is signed for the first
time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.jobs.keys import signature_request
from pipeline.postprocess.c2pa_read import mime_type
from pipeline.postprocess.c2pa_sign import Parent, Signing, sign
from pipeline.postprocess.decoding import MAX_PIXELS, measure

Lookup = Callable[[CacheRequest], bytes | None]
"""The cached bytes of a request, or None."""
Keep = Callable[[CacheRequest, bytes], bytes]
"""Commits bytes under a request; returns what to deliver (the store's)."""


def signed_file(
    signing: Signing,
    data: bytes,
    title: str,
    parent_shas: Sequence[str],
    parents: Callable[[], Sequence[Parent]],
    lookup: Lookup,
    keep: Keep,
    *,
    edited: bool = False,
    composite: bool = False,
) -> bytes:
    """``data`` signed with ``signing``, naming ``parents`` (whose sha256 are
    ``parent_shas``; read only when the cache does not hold the signed file yet)."""
    asked = signature_request(sha256_bytes(data), parent_shas, signing.fingerprint)
    hit = lookup(asked)
    if hit is not None:
        return hit
    sources = list(parents())
    actions = [] if composite else actions_between(sources[0].data if sources else None, data)
    if edited:
        actions.append("c2pa.edited")
    made = sign(signing, data, title, sources, actions, composite=composite)
    return keep(asked, made)


def actions_between(source: bytes | None, data: bytes) -> list[str]:
    """The C2PA actions that made ``data`` from ``source``, read from their headers:
    ``c2pa.cropped`` (the shape changed), ``c2pa.resized`` (the pixel size changed),
    ``c2pa.converted`` (the format changed)."""
    if source is None:
        return []
    (w1, h1), (w2, h2) = measure(source, MAX_PIXELS), measure(data, MAX_PIXELS)
    actions = []
    if w1 * h2 != w2 * h1:
        actions.append("c2pa.cropped")
    if (w1, h1) != (w2, h2):
        actions.append("c2pa.resized")
    if mime_type(source) != mime_type(data):
        actions.append("c2pa.converted")
    return actions
