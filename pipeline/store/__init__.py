"""Where paid results are kept: the ``ResultStore`` protocol and its implementations.

The runner and freshness take any :class:`ResultStore`; the composition root
(``pipeline.api``) picks one: :class:`LocalStore`, the folder under ``.assetpipe/cache``,
or, when a team shares a cache, a :class:`LayeredStore` of the local store over the
shared one (:func:`open_layered`), an ``ObjectStore`` over S3, GCS, Azure or a shared
folder that ``pipeline.api.stores`` builds from the ``remote_cache`` URL. Maintenance
(``stats``, ``gc``, ``clear``, ``prepare``) belongs to the concrete stores, not to the
protocol.

``pipeline.store.remote`` and ``pipeline.store.backends`` are not imported here: they
need ``obstore``, which only the ``s3`` extra installs; building a shared store without
it raises :class:`S3SupportMissing`.
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
