"""The local result store: a memo of every paid call on disk (``.assetpipe/cache``).

Image bytes live as blobs named by their sha256 under ``blobs/``; an SQLite index
(``index.db``, see :mod:`pipeline.store.sqlite_index`) maps each cache key (a hash of the
full request, see ``pipeline.hashing``) to a record that names the blobs and keeps what
the API said (usage, request id, echoed size) as a JSON object. A result is committed the
moment it arrives: blobs first (atomic renames), then one index row (an SQLite
transaction), so a crash never leaves a record pointing at missing bytes.

The folder is untrusted input (it may come from a shared drive or a CI artifact): nothing
in it is unpickled or executed, every record is validated as it is read, blob names must be
64 lowercase hex digits, and symbolic links are refused (the folder, ``blobs/``, the index)
or skipped with a warning (inside ``blobs/``). An unreadable record, or a blob that is
missing or does not hash to its name, is a miss with a warning, never a crash.

Besides the :class:`~pipeline.store.base.ResultStore` operations, this store has what only
a folder on disk has: file paths (:meth:`LocalStore.blob_path`), :meth:`~LocalStore.prepare`
before a build's first paid call, the maintenance behind ``assetpipe cache``, and the memo
of local work on delivered images (:attr:`LocalStore.memo`, :mod:`pipeline.store.memo`),
which ``cache clear`` empties with the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.fsutil import LinkRefused, probe_writable, refuse_link, write_atomic
from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.store.base import (
    CacheRecord,
    CacheStats,
    SaidOnce,
    encode_meta,
    is_blob_name,
    parse_record,
    with_request,
)
from pipeline.store.memo import LocalMemo
from pipeline.store.sqlite_index import (
    INDEX_FILE,
    SIDE_FILES,
    CacheIndexError,
    EntryUnreadable,
    SqliteIndex,
)

log = logging.getLogger("assetpipe.cache")


class LocalStore:
    """Cache index plus blob store under one folder (``.assetpipe/cache``).

    Safe to share between the runner's worker threads: one SQLite connection, used under
    a lock. The index is opened on first use; reading never creates it.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.blob_dir = folder / "blobs"
        self.index_path = folder / INDEX_FILE
        self._index = SqliteIndex(self.index_path, self._check_links)
        self._said = SaidOnce(log)
        self.memo = LocalMemo(folder / "memo")
        """What inspecting delivered images found, and their thumbnails (``memo/``)."""

    def _warn_once(self, message: str) -> None:
        """Log a problem with an entry once, though a build looks the entry up twice."""
        self._said.warn(message)

    def close(self) -> None:
        """Close the index."""
        self._index.close()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders ----------------------------------------------------------------------------

    def _check_links(self) -> None:
        """Refuse a link as the cache folder, the folder holding it, ``blobs/`` or the index."""
        refuse_link(self.folder.parent, "the cache folder")
        refuse_link(self.folder, "the result cache")
        refuse_link(self.blob_dir, "the cache's image folder")
        for suffix in ("", *SIDE_FILES):
            refuse_link(self.folder / f"{INDEX_FILE}{suffix}", "the cache index")

    def prepare(self) -> None:
        """Create the folders and the index and make sure both can be written.

        A build calls this before its first paid call, so a link, a damaged index or a
        full disk stops it before paying rather than after.
        """
        self._check_links()
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._index.prepare()
        probe_writable(self.blob_dir, "cache folder", "--cache-dir")

    # -- blobs ------------------------------------------------------------------------------

    def blob_path(self, sha: str) -> Path:
        """Where the blob with this sha256 lives (ValueError for anything but a sha256).

        Local only: callers typed against ``ResultStore`` read bytes, never paths.
        """
        if not is_blob_name(sha):
            raise ValueError(f"not a blob name: {sha!r}")
        return self.blob_dir / sha[:2] / sha

    def put_blob(self, data: bytes, *, durable: bool = True, sha: str | None = None) -> str:
        """Store bytes; returns their sha256. Idempotent. ``durable=False`` skips the
        fsync, for bytes that can be read again elsewhere (a copy of a shared result:
        one lost to a crash fails its sha256 and is downloaded again). ``sha`` is the
        bytes' sha256 when the caller has just checked it (bytes read by that name from a
        store that verifies what it returns): they are not hashed again. A wrong one
        would only make a blob that fails its check when read, a miss like any other."""
        if sha is None or not is_blob_name(sha):
            sha = sha256_bytes(data)
        path = self.blob_path(sha)
        refuse_link(self.folder, "the result cache")
        refuse_link(self.blob_dir, "the cache's image folder")
        refuse_link(path.parent, "a folder of cached images")
        info = refuse_link(path, "a cached image")
        if info is None or not stat.S_ISREG(info.st_mode):
            write_atomic(path, data, fsync=durable)
        return sha

    def read_blob(self, sha: str) -> bytes | None:
        """The bytes of a blob, or None when missing, not a plain file, or corrupt."""
        if not is_blob_name(sha):
            return None
        path = self.blob_path(sha)
        try:
            refuse_link(self.blob_dir, "the cache's image folder")
            refuse_link(path.parent, "a folder of cached images")
        except LinkRefused as exc:
            log.warning("%s; treating cached image %s as missing", exc, sha[:12])
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                log.warning("cache blob %s is not a regular file; ignoring it", sha[:12])
                return None
            data = handle.read()
        if sha256_bytes(data) != sha:
            log.warning("cache blob %s is corrupt; treating it as missing", sha[:12])
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return data

    def _has_blob(self, sha: str) -> bool:
        path = self.blob_path(sha)
        try:
            refuse_link(path.parent, "a folder of cached images")
            info = path.lstat()
        except (OSError, LinkRefused):
            return False
        return stat.S_ISREG(info.st_mode)

    # -- records ----------------------------------------------------------------------------

    def commit(
        self,
        request: CacheRequest,
        delivered: bytes,
        original: bytes | None = None,
        meta: Mapping[str, Any] | None = None,
        *,
        durable: bool = True,
        verified: CacheRecord | None = None,
    ) -> CacheRecord:
        """Store a result of ``request`` under its key: blobs first, then the index row
        (``durable``: see :meth:`put_blob`). ``verified`` is the record the bytes were
        just read by, from a store that checked each one against its name (a shared
        hit): its names are used instead of hashing the bytes again."""
        key = request.key
        kept = with_request(request, meta)
        text = encode_meta(key, kept)
        named = (verified.blob, verified.original) if verified is not None else (None, None)
        original_sha = (
            self.put_blob(original, durable=durable, sha=named[1]) if original is not None else None
        )
        blob = self.put_blob(delivered, durable=durable, sha=named[0])
        record = CacheRecord(
            blob=blob, original=original_sha if original_sha != blob else None, meta=kept
        )
        self._index.put(key, record.blob, record.original, text, durable=durable)
        return record

    def forget(self, key: str) -> None:
        """Drop the entry for ``key`` (its blobs stay until ``cache gc``): a paid image
        committed before it was decoded, that then could not be. The next build asks for it
        again, as it would had it never been committed."""
        self._index.delete([key])

    def lookup(self, request: CacheRequest) -> CacheRecord | None:
        """The record for ``request`` if it is well-formed, was made from that request,
        and its blob is there; else a miss."""
        key = request.key
        try:
            row = self._index.row(key)
        except EntryUnreadable as exc:
            self._warn_once(f"cache entry {key[:12]} is unreadable ({exc}); it will be made again")
            return None
        if row is None:
            return None
        record = parse_record(key, *row)
        if record is None:
            self._warn_once(
                f"cache entry {key[:12]} is unreadable or was not made from its request; "
                "it will be made again"
            )
            return None
        if not self._has_blob(record.blob):
            self._warn_once(f"cache entry {key[:12]} lost its image; it will be made again")
            return None
        return record

    def get(self, request: CacheRequest) -> tuple[CacheRecord, bytes] | None:
        """The record and delivered bytes for ``request``, verified; None on a miss."""
        record = self.lookup(request)
        if record is None:
            return None
        data = self.read_blob(record.blob)
        if data is None:
            log.warning("cache entry %s has a corrupt image; it will be made again", request)
            return None
        return record, data

    # -- maintenance ------------------------------------------------------------------------

    def _blob_files(self) -> Iterator[os.DirEntry[str]]:
        """Every blob-named plain file under ``blobs/``; links there are skipped, with a
        warning, and never followed."""
        self._check_links()
        try:
            top = list(os.scandir(self.blob_dir))
        except (FileNotFoundError, NotADirectoryError):
            return
        for folder in sorted(top, key=lambda e: e.name):
            if folder.is_symlink():
                log.warning("skipping the symbolic link %s in the cache", folder.path)
                continue
            if not folder.is_dir(follow_symlinks=False):
                continue
            with os.scandir(folder.path) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        log.warning("skipping the symbolic link %s in the cache", entry.path)
                    elif (
                        entry.is_file(follow_symlinks=False)
                        and is_blob_name(entry.name)
                        and entry.name[:2] == folder.name
                    ):
                        yield entry

    def stats(self) -> CacheStats:
        """Entries, blobs and bytes on disk (links are not followed, nor counted)."""
        files = list(self._blob_files())
        return CacheStats(
            entries=self._index.count(),
            blobs=len(files),
            bytes=sum(e.stat(follow_symlinks=False).st_size for e in files),
        )

    def gc(self) -> tuple[int, int]:
        """Drop records that are unreadable or lost their blob, then blobs no record names;
        returns both counts. An index that cannot be read is an error, not an empty one:
        treating it as empty would delete every paid image."""
        referenced: set[str] = set()
        with self._index.lock:
            self._check_links()
            broken: list[object] = []
            for key, row in self._index.entries():
                record = parse_record(str(key), *row)
                if record is None or not self._has_blob(record.blob):
                    broken.append(key)
                    continue
                referenced.add(record.blob)
                if record.original:
                    referenced.add(record.original)
            dropped = self._index.delete(broken)
        removed = 0
        for entry in list(self._blob_files()):
            if entry.name not in referenced:
                Path(entry.path).unlink()
                removed += 1
        return dropped, removed

    def clear(self) -> None:
        """Delete every entry and blob (links to elsewhere are refused, never followed)."""
        self.close()
        refuse_link(self.folder.parent, "the cache folder")
        info = refuse_link(self.folder, "the result cache")
        if info is None:
            return
        if not stat.S_ISDIR(info.st_mode):
            raise CacheIndexError(
                f"the result cache {self.folder} is a file, not a folder; remove it by hand"
            )
        shutil.rmtree(self.folder)
