"""Content hashing: the contract behind every cache key.

A cache key is ``sha256(KEY_PREFIX + canonical_json(payload))``. Canonical JSON sorts
keys, uses compact separators and keeps non-ASCII characters as they are, so the same
request always hashes the same way whatever the order it was written in. Changing any
of this changes every key and makes every cached result a miss: bump ``KEY_VERSION``
when that is intended.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY_VERSION = 1
KEY_PREFIX = f"assetpipe-cache-key-v{KEY_VERSION}\n"

_CHUNK = 1 << 20


def canonical_json(value: Any) -> str:
    """Serialize ``value`` the one way the cache relies on."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large images do not sit in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_key(payload: Mapping[str, Any]) -> str:
    """The cache key of a request payload: versioned sha256 of its canonical JSON."""
    return canonical_key(canonical_json(payload))


def canonical_key(canonical: str) -> str:
    """The cache key of the payload whose canonical JSON is ``canonical``."""
    return sha256_bytes((KEY_PREFIX + canonical).encode("utf-8"))


@dataclass(frozen=True, slots=True, eq=False)
class CacheRequest:
    """What a cached result was made from, and the key that follows from it.

    Stores take this, never a bare key: the key is computed here from the payload, and a
    store keeps the payload beside the result, so a record whose stored request does not
    hash to the key it sits under is recognisably planted (or damaged) and is a miss. No
    key read from a file (a stored plan, a journal, a bucket) can make a store file a
    result under a request it was not made from.
    """

    payload: Mapping[str, Any]
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", content_key(self.payload))

    @classmethod
    def hashed_before(cls, payload: Mapping[str, Any], key: str) -> CacheRequest:
        """The request for ``payload`` whose key this process already computed from an
        equal payload (:mod:`pipeline.jobs.api_keys` remembers them): never for a key read
        from anywhere, which is exactly what this class exists to refuse."""
        request = object.__new__(cls)
        object.__setattr__(request, "payload", payload)
        object.__setattr__(request, "key", key)
        return request

    def __str__(self) -> str:
        return self.key[:12]

    def __eq__(self, other: object) -> bool:
        """Two requests are the same when their keys are: the key is the request."""
        return isinstance(other, CacheRequest) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)
