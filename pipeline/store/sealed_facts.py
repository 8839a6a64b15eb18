"""What inspecting an image found, shared with the team's cache and sealed with a secret.

Restoring an image another machine paid for costs more CPU than anything else a restore
does: decoding it (a 1024x1024 PNG takes ~6 ms on a small CI machine), checking it,
hashing it for near-duplicates and drawing its thumbnail (~8 ms in all; reading it back
instead roughly halves the CPU an assembly of 400 such images takes). What that work
finds depends on the pixels alone, and the machine that paid for the image has done it.
With a team secret, that machine shares what it found beside the image, and every
machine with the same secret reads it back instead of doing the work again (a PNG's
facts under the name of its pixels, which the delivered file shares whatever text it is
stamped with; another format's under the image's own sha256, since it is delivered as it
is)::

    <prefix>/assetpipe-v1/facts/<sha256 of the image>.json
    {"format": 1, "blob": <sha256>, "pixels": <the pixels' name, or null>,
     "inspection": "<the memo's record of those pixels, as JSON text>",
     "thumbnail": "<the WebP thumbnail, base64>", "mac": "<HMAC-SHA256, hex>"}

Shared as plain data, this would let whoever can write the bucket make an image that
fails its checks pass them, or show a reviewer a thumbnail that is not the file. So every
object carries an HMAC-SHA256 over all it says, made with a key derived from a secret the
team's machines hold in their environment (:data:`SECRET_VARIABLE`), never in the project
and never in the bucket. An object the secret did not seal, or one that says anything the
memo would not keep, is ignored (with one warning) and the image is inspected as ever.
Whoever holds the secret and may write the bucket can already choose which image a key
delivers, so the secret gives nobody a power they did not have; without it, write access
to the bucket cannot forge a verdict.

Only what depends on the pixels alone is shared (their size, the checks by
configuration, the perceptual hash, the thumbnail): never a C2PA verdict, which depends
on the reading machine's trust settings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Final, NamedTuple

from pipeline.errors import UsageError
from pipeline.hashing import sha256_bytes
from pipeline.store.base import is_blob_name
from pipeline.store.memo import (
    MAX_RECORD_BYTES,
    Inspection,
    encode_inspection,
    is_webp,
    parse_inspection,
)

SECRET_VARIABLE: Final = "ASSETPIPE_REMOTE_CACHE_SECRET"  # noqa: S105 - a name, not a secret
MIN_SECRET_CHARS: Final = 32
"""What ``openssl rand -hex 16`` prints: 128 bits written in hex."""
FACTS_FORMAT: Final = 1
MAX_THUMBNAIL_BYTES: Final = 512 * 1024
"""A gallery thumbnail is a 256-pixel WebP file: tens of kilobytes."""
MAX_FACTS_BYTES: Final = MAX_RECORD_BYTES + MAX_THUMBNAIL_BYTES * 4 // 3 + 4096
"""The largest object read back: a memo record, a thumbnail in base64, the framing."""
_KEYS: Final = frozenset({"format", "blob", "pixels", "inspection", "thumbnail", "mac"})
_MAC: Final = re.compile(r"[0-9a-f]{64}")
_DOMAIN: Final = b"assetpipe shared facts v1"


class SharedFacts(NamedTuple):
    """What one machine found inspecting an image's pixels, as another one reads it."""

    pixels: str | None
    """The name of the pixels (:func:`pipeline.postprocess.pixels.pixel_digest`); None
    for an image whose pixels have no name (not a PNG): the facts are of its bytes."""
    inspection: Inspection
    """What depends on those pixels alone; its ``thumbnail`` is the thumbnail's sha256."""
    thumbnail: bytes
    """The gallery thumbnail, a WebP file."""


class FactsRefused(ValueError):
    """A shared object that is not what :meth:`TeamSeal.seal` makes with this secret."""


class TeamSeal:
    """Seals and opens shared inspections with a key derived from the team's secret.

    The secret itself is not kept (only the derived key), and nothing about it is ever
    printed: ``repr`` hides it too."""

    def __init__(self, secret: str):
        if len(secret) < MIN_SECRET_CHARS:
            raise UsageError(
                f"{SECRET_VARIABLE} is {len(secret)} characters long; a team secret needs "
                f"at least {MIN_SECRET_CHARS} (`openssl rand -hex 32` prints one): set the "
                "same value on every machine of the team, as a CI secret"
            )
        self._key = hmac.new(secret.encode(), _DOMAIN, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "TeamSeal(<secret hidden>)"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TeamSeal | None:
        """The seal of :data:`SECRET_VARIABLE`, or None when it is not set (or empty)."""
        secret = environ.get(SECRET_VARIABLE, "")
        return cls(secret) if secret else None

    def _mac(self, blob: str, pixels: str | None, inspection: bytes, thumbnail: bytes) -> str:
        signed = hmac.new(self._key, digestmod=hashlib.sha256)
        named = (pixels or "").encode()
        for part in (blob.encode(), named, inspection, sha256_bytes(thumbnail).encode()):
            signed.update(len(part).to_bytes(8, "big"))
            signed.update(part)
        return signed.hexdigest()

    def seal(self, blob: str, facts: SharedFacts) -> bytes:
        """The object to share for the image named ``blob`` (its sha256). ValueError for
        facts another machine could not take (a C2PA verdict, a thumbnail that is not the
        one the inspection names, anything over the caps)."""
        inspection = facts.inspection
        if inspection.c2pa is not None or inspection.c2pa_verdict is not None:
            raise ValueError("C2PA verdicts are not shared: they depend on the reader")
        if inspection.thumbnail != sha256_bytes(facts.thumbnail):
            raise ValueError("the thumbnail is not the one the inspection names")
        if not is_webp(facts.thumbnail) or len(facts.thumbnail) > MAX_THUMBNAIL_BYTES:
            raise ValueError("the thumbnail is not a WebP file under the size cap")
        if not (is_blob_name(blob) and _named(facts.pixels)):
            raise ValueError("an image and its pixels are named by sha256 digests")
        text = encode_inspection(facts.pixels or blob, inspection)
        if len(text) > MAX_RECORD_BYTES:
            raise ValueError("the inspection is over the memo's record cap")
        body = {
            "format": FACTS_FORMAT,
            "blob": blob,
            "pixels": facts.pixels,
            "inspection": text.decode(),
            "thumbnail": base64.b64encode(facts.thumbnail).decode(),
            "mac": self._mac(blob, facts.pixels, text, facts.thumbnail),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def open(self, blob: str, data: bytes) -> SharedFacts:
        """What the object ``data``, read as the facts of the image ``blob``, says;
        FactsRefused (saying why) unless this secret sealed exactly that."""
        if len(data) > MAX_FACTS_BYTES:
            raise FactsRefused("it is over the size cap")
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            raise FactsRefused("it is not JSON") from None
        if not isinstance(body, dict) or set(body) != _KEYS or not _is_format(body["format"]):
            raise FactsRefused("it is not in the format this version writes")
        pixels, text, encoded, mac = (body[k] for k in ("pixels", "inspection", "thumbnail", "mac"))
        if body["blob"] != blob or not _named(pixels):
            raise FactsRefused("it names another image")
        if not all(isinstance(v, str) for v in (text, encoded, mac)) or not _MAC.fullmatch(mac):
            raise FactsRefused("it is not in the format this version writes")
        try:
            thumbnail = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise FactsRefused("its thumbnail is not base64") from None
        inspection_bytes = text.encode()
        if not hmac.compare_digest(mac, self._mac(blob, pixels, inspection_bytes, thumbnail)):
            raise FactsRefused(
                f"it was not sealed with this {SECRET_VARIABLE} (is it the team's secret?)"
            )
        inspection = parse_inspection(pixels or blob, inspection_bytes)
        if inspection is None or inspection.c2pa is not None or inspection.c2pa_verdict:
            raise FactsRefused("its inspection is not one the memo keeps")
        if not is_webp(thumbnail) or inspection.thumbnail != sha256_bytes(thumbnail):
            raise FactsRefused("its thumbnail is not the one it names")
        return SharedFacts(pixels, inspection, thumbnail)


def _named(pixels: object) -> bool:
    """Whether ``pixels`` names pixels (a sha256 digest) or says they have no name."""
    return pixels is None or (isinstance(pixels, str) and is_blob_name(pixels))


def _is_format(value: object) -> bool:
    """Whether ``value`` is :data:`FACTS_FORMAT` itself (JSON's ``true`` equals 1 too)."""
    return type(value) is int and value == FACTS_FORMAT
