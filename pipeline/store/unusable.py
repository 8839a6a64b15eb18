"""A shared cache that is configured but cannot even be set up here.

A variable the store needs is not set (an Azure account name), a shared folder is not
mounted, a credential file cannot be read: like a remote that does not answer, that is a
warning and misses, never a failed build (a pull request from a fork has no secrets), and
exit 2 only where the shared cache is required. This store says why once, asks nothing
of any network, and holds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pipeline.hashing import CacheRequest
from pipeline.store.base import CacheRecord, CacheStats, RemoteUnavailable

log = logging.getLogger("assetpipe.cache")


class UnusableStore:
    """A :class:`~pipeline.store.base.ResultStore` for a shared cache at ``url`` that
    cannot be used for ``why``: every read misses, every write is RemoteUnavailable."""

    def __init__(self, url: str, why: str) -> None:
        self.url = url
        self.problem = f"the shared cache {url} cannot be used ({why}); going on without it"
        log.warning("%s", self.problem)

    def __str__(self) -> str:
        return self.url

    def health(self) -> str:
        """Why this shared cache cannot be read: always."""
        return self.problem

    def lookup(self, request: CacheRequest) -> CacheRecord | None:
        """A miss."""
        return None

    def get(self, request: CacheRequest) -> tuple[CacheRecord, bytes] | None:
        """A miss."""
        return None

    def read_blob(self, sha: str) -> bytes | None:
        """A miss."""
        return None

    def commit(
        self,
        request: CacheRequest,
        delivered: bytes,
        original: bytes | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CacheRecord:
        """RemoteUnavailable, already said."""
        raise RemoteUnavailable(self.problem, logged=True)

    def stats(self) -> CacheStats:
        """RemoteUnavailable: there is nothing to count."""
        raise RemoteUnavailable(self.problem, logged=True)

    def close(self) -> None:
        """Nothing is held."""
