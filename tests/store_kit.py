"""Requests for store tests: a store takes a :class:`~pipeline.hashing.CacheRequest`,
never a bare key, and keeps the request in each record's metadata (``meta["request"]``).

``req("k1")`` is a request of its own for each name; :func:`meta_text` is the metadata
JSON a well-formed record of a request holds, for tests that plant raw records.
:func:`shared_store` and :func:`layered` open a shared cache as a build does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.hashing import CacheRequest
from pipeline.store import LayeredStore, LocalStore, RemoteMode


def req(name: str) -> CacheRequest:
    """A request of its own for each ``name`` (its key is computed from the payload)."""
    return CacheRequest({"test": name})


def kept(request: CacheRequest, **fields: Any) -> dict[str, Any]:
    """The metadata a store keeps for a result of ``request``: ``fields`` plus the request."""
    return {**fields, "request": dict(request.payload)}


def meta_text(request: CacheRequest, **fields: Any) -> str:
    """The stored metadata JSON of a well-formed record of ``request``."""
    return json.dumps(kept(request, **fields))


def shared_store(url: str, environ: Mapping[str, str], mode: RemoteMode = "read-write") -> Any:
    """The shared cache at ``url`` as a build opens it (its scheme's row of the table in
    ``pipeline.api.stores``), configured from ``environ`` alone."""
    from pipeline.api.stores import open_remote
    from pipeline.store.remote import ObjectStore

    store = open_remote(url, mode, environ)
    assert isinstance(store, ObjectStore), store
    return store


def layered(
    local: LocalStore, url: str, mode: RemoteMode = "read-write", environ: Mapping[str, str] = {}
) -> LayeredStore:
    """``local`` over the shared cache at ``url``, as a build layers them."""
    return LayeredStore(local, shared_store(url, environ, mode), mode)
