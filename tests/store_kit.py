"""Requests for store tests: a store takes a :class:`~pipeline.hashing.CacheRequest`,
never a bare key, and keeps the request in each record's metadata (``meta["request"]``).

``req("k1")`` is a request of its own for each name; :func:`meta_text` is the metadata
JSON a well-formed record of a request holds, for tests that plant raw records.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.hashing import CacheRequest


def req(name: str) -> CacheRequest:
    """A request of its own for each ``name`` (its key is computed from the payload)."""
    return CacheRequest({"test": name})


def kept(request: CacheRequest, **fields: Any) -> dict[str, Any]:
    """The metadata a store keeps for a result of ``request``: ``fields`` plus the request."""
    return {**fields, "request": dict(request.payload)}


def meta_text(request: CacheRequest, **fields: Any) -> str:
    """The stored metadata JSON of a well-formed record of ``request``."""
    return json.dumps(kept(request, **fields))
