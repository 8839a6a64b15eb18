"""The content-addressed result cache: a memo of every paid call.

Image bytes live as blobs named by their sha256 under ``blobs/``; an SQLite index
(``index.db``, one table of plain text columns) maps each cache key (a hash of the full
request, see ``pipeline.hashing``) to a record that names the blobs and keeps what the API
said (usage, request id, echoed size) as a JSON object. A result is committed the moment
it arrives: blobs first (atomic renames), then one index row (an SQLite transaction), so a
crash never leaves a record pointing at missing bytes.

The folder is untrusted input (it may come from a shared drive or a CI artifact): nothing
in it is unpickled or executed, every record is validated as it is read, blob names must be
64 lowercase hex digits, and symbolic links are refused (the folder, ``blobs/``, the index)
or skipped with a warning (inside ``blobs/``). An unreadable record, or a blob that is
missing or does not hash to its name, is a miss with a warning, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import EXIT_USAGE, PipelineError
from pipeline.fsutil import LinkRefused, probe_writable, refuse_link, write_atomic
from pipeline.hashing import sha256_bytes

log = logging.getLogger("assetpipe.cache")

INDEX_FILE = "index.db"
SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE entries (key TEXT PRIMARY KEY NOT NULL, blob TEXT NOT NULL, "
    "original TEXT, meta TEXT NOT NULL) WITHOUT ROWID"
)
_SIDE_FILES = ("-wal", "-shm", "-journal")
_EMPTY = "empty"
_BLOB_NAME = re.compile(r"[0-9a-f]{64}")
MAX_META_CHARS = 16 * 1024 * 1024
"""A record's JSON metadata is a few hundred bytes (a sheet's atlas a few kB); more is planted."""
_NUMBER = (int, float)
_META_TYPES: Mapping[str, tuple[type, ...]] = {
    "usage": (dict, type(None)),
    "cost_usd": _NUMBER,
    "request_id": (str, type(None)),
    "returned_size": (str, type(None)),
    "model": (str,),
    "kind": (str,),
    "atlas": (str,),
}
"""The metadata the runner reads back, and the types it relies on."""


class _Unusable(Exception):
    """The index file is not an assetpipe index (internal; becomes a warning or an error)."""


class CacheIndexError(PipelineError):
    """The cache index cannot be used: not an assetpipe index, or damaged (exit 2)."""

    exit_code = EXIT_USAGE


def is_blob_name(name: object) -> bool:
    """Whether ``name`` can name a blob: exactly 64 lowercase hex digits (a sha256)."""
    return isinstance(name, str) and _BLOB_NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """What the cache keeps for one key."""

    blob: str
    """sha256 of the delivered bytes (what goes to ``output/``)."""
    original: str | None = None
    """sha256 of the bytes exactly as the API returned them, when they differ."""
    meta: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What ``assetpipe cache stats`` shows."""

    entries: int
    blobs: int
    bytes: int


def _meta_ok(meta: object) -> bool:
    if not isinstance(meta, dict):
        return False
    for name, types in _META_TYPES.items():
        if name in meta:
            value = meta[name]
            if isinstance(value, bool) or not isinstance(value, types):
                return False
    return True


def parse_record(blob: object, original: object, meta: object) -> CacheRecord | None:
    """A record from the three stored columns, or None when any of them is malformed."""
    if not is_blob_name(blob) or not (original is None or is_blob_name(original)):
        return None
    if not isinstance(meta, str) or len(meta) > MAX_META_CHARS:
        return None
    try:
        parsed = json.loads(meta)
    except (ValueError, RecursionError):
        return None
    if not _meta_ok(parsed):
        return None
    return CacheRecord(
        blob=str(blob), original=None if original is None else str(original), meta=parsed
    )


class ResultCache:
    """Cache index plus blob store under one folder (``.assetpipe/cache``).

    Safe to share between the runner's worker threads: one SQLite connection, used under
    a lock. The index is opened on first use; reading never creates it.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.blob_dir = folder / "blobs"
        self.index_path = folder / INDEX_FILE
        self._db: sqlite3.Connection | None = None
        self._unusable: str | None = None
        """Why the index cannot be used, once found out."""
        self._lock = threading.RLock()
        self._warned: set[str] = set()

    def _warn_once(self, message: str) -> None:
        """Log a problem with an entry once, though a build looks the entry up twice."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def close(self) -> None:
        """Close the index."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> ResultCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders ----------------------------------------------------------------------------

    def _check_links(self) -> None:
        """Refuse a link as the cache folder, the folder holding it, ``blobs/`` or the index."""
        refuse_link(self.folder.parent, "the cache folder")
        refuse_link(self.folder, "the result cache")
        refuse_link(self.blob_dir, "the cache's image folder")
        for suffix in ("", *_SIDE_FILES):
            refuse_link(self.folder / f"{INDEX_FILE}{suffix}", "the cache index")

    def prepare(self) -> None:
        """Create the folders and the index and make sure both can be written.

        A build calls this before its first paid call, so a link, a damaged index or a
        full disk stops it before paying rather than after.
        """
        self._check_links()
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._writer()
        probe_writable(self.blob_dir, "cache folder", "--cache-dir")

    def _reader(self, *, warn: bool = True) -> sqlite3.Connection | None:
        """The index to read; None when there is none yet, or it cannot be used (then,
        unless ``warn`` is off, with a warning)."""
        with self._lock:
            if self._db is None and self._unusable is None:
                try:
                    self._db = self._open(create=False)
                except _Unusable as exc:
                    self._unusable = self._unusable_message(str(exc))
                    if warn:
                        log.warning("%s; treating the cache as empty", self._unusable)
            return self._db

    def _writer(self) -> sqlite3.Connection:
        """The index to write, created when missing; one that is not ours is an error."""
        with self._lock:
            if self._db is None:
                if self._unusable is not None:
                    raise CacheIndexError(self._unusable)
                try:
                    db = self._open(create=True)
                except _Unusable as exc:
                    self._unusable = self._unusable_message(str(exc))
                    raise CacheIndexError(self._unusable) from None
                if db is None:  # pragma: no cover - create=True always opens or raises
                    raise CacheIndexError(self._unusable_message("it could not be created"))
                self._db = db
            return self._db

    def _open(self, *, create: bool) -> sqlite3.Connection | None:
        self._check_links()
        info = refuse_link(self.index_path, "the cache index")
        if info is None and not create:
            return None
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise _Unusable("it is not a regular file")
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(
                self.index_path, timeout=30, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise _Unusable(str(exc)) from None
        try:
            problem = _adopt(db, create=create)
        except sqlite3.Error as exc:
            problem = str(exc)
        if problem is None:
            return db
        db.close()
        if problem == _EMPTY:
            return None
        raise _Unusable(problem)

    def _unusable_message(self, problem: str) -> str:
        return (
            f"the cache index {self.index_path} cannot be used ({problem}); move it away, "
            "or run `assetpipe cache clear` (the next build pays again for what output/ lacks)"
        )

    # -- blobs ------------------------------------------------------------------------------

    def blob_path(self, sha: str) -> Path:
        """Where the blob with this sha256 lives (ValueError for anything but a sha256)."""
        if not is_blob_name(sha):
            raise ValueError(f"not a blob name: {sha!r}")
        return self.blob_dir / sha[:2] / sha

    def put_blob(self, data: bytes) -> str:
        """Store bytes; returns their sha256. Idempotent."""
        sha = sha256_bytes(data)
        path = self.blob_path(sha)
        refuse_link(self.folder, "the result cache")
        refuse_link(self.blob_dir, "the cache's image folder")
        refuse_link(path.parent, "a folder of cached images")
        info = refuse_link(path, "a cached image")
        if info is None or not stat.S_ISREG(info.st_mode):
            write_atomic(path, data)
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
        key: str,
        delivered: bytes,
        original: bytes | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> CacheRecord:
        """Store a result under ``key``: blobs first, then the index row."""
        original_sha = self.put_blob(original) if original is not None else None
        blob = self.put_blob(delivered)
        record = CacheRecord(
            blob=blob,
            original=original_sha if original_sha != blob else None,
            meta=dict(meta or {}),
        )
        text = json.dumps(record.meta, ensure_ascii=False, sort_keys=True)
        if not _meta_ok(record.meta) or len(text) > MAX_META_CHARS:
            raise ValueError(f"cache metadata of {key[:12]} is not what a record may hold")
        with self._lock:
            self._writer().execute(
                "INSERT OR REPLACE INTO entries (key, blob, original, meta) VALUES (?, ?, ?, ?)",
                (key, record.blob, record.original, text),
            )
        return record

    def _row(self, key: str) -> tuple[object, object, object] | None:
        with self._lock:
            db = self._reader()
            if db is None:
                return None
            try:
                row = db.execute(
                    "SELECT blob, original, meta FROM entries WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.Error as exc:
                self._warn_once(
                    f"cache entry {key[:12]} is unreadable ({exc}); it will be made again"
                )
                return None
        return None if row is None else (row[0], row[1], row[2])

    def lookup(self, key: str) -> CacheRecord | None:
        """The record for ``key`` if it is well-formed and its blob is there; else a miss."""
        row = self._row(key)
        if row is None:
            return None
        record = parse_record(*row)
        if record is None:
            self._warn_once(f"cache entry {key[:12]} is unreadable; it will be made again")
            return None
        if not self._has_blob(record.blob):
            self._warn_once(f"cache entry {key[:12]} lost its image; it will be made again")
            return None
        return record

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
        entries = 0
        with self._lock:
            db = self._reader()
            try:
                if db is not None:
                    entries = int(db.execute("SELECT count(*) FROM entries").fetchone()[0])
            except sqlite3.Error as exc:
                log.warning("cannot count the entries of %s (%s)", self.index_path, exc)
        return CacheStats(
            entries=entries,
            blobs=len(files),
            bytes=sum(e.stat(follow_symlinks=False).st_size for e in files),
        )

    def gc(self) -> tuple[int, int]:
        """Drop records that are unreadable or lost their blob, then blobs no record names;
        returns both counts. An index that cannot be read is an error, not an empty one:
        treating it as empty would delete every paid image."""
        referenced: set[str] = set()
        dropped = 0
        with self._lock:
            self._check_links()
            db = self._reader(warn=False)
            if db is None and self._unusable is not None:
                raise CacheIndexError(self._unusable)
            try:
                rows = (
                    db.execute("SELECT key, blob, original, meta FROM entries").fetchall()
                    if db is not None
                    else []
                )
            except sqlite3.Error as exc:
                raise CacheIndexError(self._unusable_message(str(exc))) from None
            broken = []
            for key, *columns in rows:
                record = parse_record(*columns)
                if record is None or not self._has_blob(record.blob):
                    broken.append((key,))
                    continue
                referenced.add(record.blob)
                if record.original:
                    referenced.add(record.original)
            if db is not None and broken:
                with _transaction(db):
                    db.executemany("DELETE FROM entries WHERE key = ?", broken)
                dropped = len(broken)
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


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _adopt(db: sqlite3.Connection, *, create: bool) -> str | None:
    """Check that ``db`` is an assetpipe index (creating one in an empty file when allowed);
    returns what is wrong (:data:`_EMPTY` for an empty file opened to read), or None.
    The schema must be exactly ours: no views, no triggers, no other tables."""
    db.execute("PRAGMA trusted_schema = OFF")
    objects = db.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    if not objects:
        if not create:
            return _EMPTY if _empty_file(db) else "it has no entries table"
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        with _transaction(db):
            if not db.execute("SELECT 1 FROM sqlite_master").fetchall():
                db.execute(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        objects = db.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    if objects != [("table", "entries", _SCHEMA)]:
        names = ", ".join(sorted(f"{kind} {name}" for kind, name, _ in objects))
        return f"it is not an assetpipe cache index: it holds {names}"
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        return f"its format version is {version}, this assetpipe reads {SCHEMA_VERSION}"
    db.execute("PRAGMA synchronous = FULL")
    return None


def _empty_file(db: sqlite3.Connection) -> bool:
    """An index created but never written to (a crash at the first commit): no entries."""
    return int(db.execute("PRAGMA page_count").fetchone()[0]) == 0
