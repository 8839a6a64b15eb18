"""The content-addressed result cache: a memo of every paid call.

Image bytes live as blobs named by their sha256 under ``blobs/``; a diskcache index maps
each cache key (a hash of the full request, see ``pipeline.hashing``) to a record that
names the blobs and keeps what the API said (usage, request id, echoed size). A result is
committed the moment it arrives: blobs first (atomic renames), then one index write (a
SQLite transaction), so a crash never leaves a record pointing at missing bytes. A record
whose blob is missing or does not hash to its name is a miss with a warning, never a crash.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache

from pipeline.fsutil import write_atomic
from pipeline.hashing import sha256_bytes

log = logging.getLogger("assetpipe.cache")

RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """What the cache keeps for one key."""

    blob: str
    """sha256 of the delivered bytes (what goes to ``output/``)."""
    original: str | None = None
    """sha256 of the bytes exactly as the API returned them, when they differ."""
    meta: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "v": RECORD_VERSION,
            "blob": self.blob,
            "original": self.original,
            "meta": dict(self.meta or {}),
        }


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What ``assetpipe cache stats`` shows."""

    entries: int
    blobs: int
    bytes: int


class ResultCache:
    """Cache index plus blob store under one folder (``.assetpipe/cache``)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.blob_dir = folder / "blobs"
        self._index: diskcache.Cache | None = None

    @property
    def index(self) -> diskcache.Cache:
        """The diskcache index, opened on first use so read-only commands stay cheap."""
        if self._index is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._index = diskcache.Cache(
                str(self.folder / "index"), eviction_policy="none", size_limit=2**62
            )
        return self._index

    def close(self) -> None:
        """Close the index."""
        if self._index is not None:
            self._index.close()
            self._index = None

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blobs ------------------------------------------------------------------------------

    def blob_path(self, sha: str) -> Path:
        """Where the blob with this sha256 lives."""
        return self.blob_dir / sha[:2] / sha

    def put_blob(self, data: bytes) -> str:
        """Store bytes; returns their sha256. Idempotent."""
        sha = sha256_bytes(data)
        path = self.blob_path(sha)
        if not path.exists():
            write_atomic(path, data)
        return sha

    def read_blob(self, sha: str) -> bytes | None:
        """The bytes of a blob, or None when missing or corrupt (with a warning)."""
        path = self.blob_path(sha)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if sha256_bytes(data) != sha:
            log.warning("cache blob %s is corrupt; treating it as missing", sha[:12])
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return data

    # -- records ----------------------------------------------------------------------------

    def commit(
        self,
        key: str,
        delivered: bytes,
        original: bytes | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CacheRecord:
        """Store a result under ``key``: blobs first, then the index record."""
        original_sha = self.put_blob(original) if original is not None else None
        blob = self.put_blob(delivered)
        record = CacheRecord(
            blob=blob, original=original_sha if original_sha != blob else None, meta=meta
        )
        self.index.set(key, record.as_dict())
        return record

    def lookup(self, key: str) -> CacheRecord | None:
        """The record for ``key`` if its blob is intact; a broken record is a miss."""
        raw = self.index.get(key)
        if raw is None:
            return None
        if not isinstance(raw, dict) or raw.get("v") != RECORD_VERSION or "blob" not in raw:
            log.warning("cache entry %s is unreadable; it will be made again", key[:12])
            return None
        if not self.blob_path(raw["blob"]).is_file():
            log.warning("cache entry %s lost its image; it will be made again", key[:12])
            return None
        return CacheRecord(blob=raw["blob"], original=raw.get("original"), meta=raw.get("meta"))

    def get(self, key: str) -> tuple[CacheRecord, bytes] | None:
        """The record and delivered bytes for ``key``, verified; None on a miss."""
        record = self.lookup(key)
        if record is None:
            return None
        data = self.read_blob(record.blob)
        if data is None:
            log.warning("cache entry %s has a corrupt image; it will be made again", key[:12])
            return None
        return record, data

    # -- maintenance ------------------------------------------------------------------------

    def _blob_files(self) -> Iterator[Path]:
        if self.blob_dir.is_dir():
            yield from (p for p in self.blob_dir.glob("*/*") if p.is_file())

    def stats(self) -> CacheStats:
        """Entries, blobs and bytes on disk."""
        files = list(self._blob_files())
        return CacheStats(
            entries=len(self.index) if self.folder.exists() else 0,
            blobs=len(files),
            bytes=sum(p.stat().st_size for p in files),
        )

    def gc(self) -> tuple[int, int]:
        """Drop records whose blob is gone and blobs no record names; returns both counts."""
        referenced: set[str] = set()
        dropped = 0
        for key in list(self.index.iterkeys()):
            record = self.lookup(key)
            if record is None:
                self.index.delete(key)
                dropped += 1
                continue
            referenced.add(record.blob)
            if record.original:
                referenced.add(record.original)
        removed = 0
        for path in self._blob_files():
            if path.name not in referenced and not path.name.startswith("."):
                path.unlink()
                removed += 1
        return dropped, removed

    def clear(self) -> None:
        """Delete every entry and blob."""
        self.close()
        if self.folder.exists():
            shutil.rmtree(self.folder)
