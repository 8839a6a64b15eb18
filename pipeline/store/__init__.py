"""Where paid results are kept: the ``ResultStore`` protocol and its implementations.

The runner and freshness take any :class:`ResultStore`; the composition root
(``pipeline.api``) picks one: :class:`LocalStore`, the folder under ``.assetpipe/cache``,
or, when a team shares a cache, a :class:`LayeredStore` of the local store over the shared
S3 one (:func:`open_layered`). Maintenance (``stats``, ``gc``, ``clear``, ``prepare``) belongs
to the concrete stores, not to the protocol.

``pipeline.store.remote`` (the S3 store) is not imported here: it needs ``obstore``, which
only the ``s3`` extra installs. :func:`open_layered` imports it when a shared cache is
configured, and raises :class:`S3SupportMissing` when the extra is missing.
"""

from pipeline.store.base import (
    REMOTE_MODES,
    CacheRecord,
    CacheStats,
    CountedStore,
    RemoteMode,
    RemoteUnavailable,
    ResultStore,
    S3SupportMissing,
    encode_meta,
    is_blob_name,
    parse_record,
)
from pipeline.store.layered import LayeredStore, TierStats, open_layered
from pipeline.store.local import LocalStore
from pipeline.store.memo import (
    Inspection,
    InspectionMemo,
    KeptFile,
    LocalMemo,
    NoMemo,
    is_webp,
)
from pipeline.store.sqlite_index import CacheIndexError

__all__ = [
    "REMOTE_MODES",
    "CacheIndexError",
    "CacheRecord",
    "CacheStats",
    "CountedStore",
    "Inspection",
    "InspectionMemo",
    "KeptFile",
    "LayeredStore",
    "LocalMemo",
    "LocalStore",
    "NoMemo",
    "RemoteMode",
    "RemoteUnavailable",
    "ResultStore",
    "S3SupportMissing",
    "TierStats",
    "encode_meta",
    "is_blob_name",
    "is_webp",
    "open_layered",
    "parse_record",
]
