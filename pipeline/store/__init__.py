"""Where paid results are kept: the ``ResultStore`` protocol and its implementations.

The runner and freshness take any :class:`ResultStore`; the composition root (``api``,
``build``) picks one. Today that is :class:`LocalStore`, the folder under
``.assetpipe/cache``; a layered store (local over the shared S3 cache) is meant to drop in
behind the same protocol. Maintenance (``stats``, ``gc``, ``clear``, ``prepare``) belongs
to the local store, not to the protocol.
"""

from pipeline.store.base import (
    CacheRecord,
    CacheStats,
    ResultStore,
    encode_meta,
    is_blob_name,
    parse_record,
)
from pipeline.store.local import LocalStore
from pipeline.store.sqlite_index import CacheIndexError

__all__ = [
    "CacheIndexError",
    "CacheRecord",
    "CacheStats",
    "LocalStore",
    "ResultStore",
    "encode_meta",
    "is_blob_name",
    "parse_record",
]
