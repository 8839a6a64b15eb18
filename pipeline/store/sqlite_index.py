"""The local store's index: one SQLite table mapping cache keys to records' columns.

``index.db`` holds plain text columns (key, blob, original) and the metadata as JSON
text; nothing in it is unpickled or executed. It is untrusted input: a file that is not
exactly an assetpipe index (another table, a view, a trigger, another format version) is
never queried. Reading it treats such a file as an empty cache, with a warning; writing to
it, or collecting garbage against it, is an error (:class:`CacheIndexError`), since
treating it as empty there would lose paid results.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pipeline.errors import EXIT_USAGE, PipelineError
from pipeline.fsutil import refuse_link

log = logging.getLogger("assetpipe.cache")

INDEX_FILE = "index.db"
SCHEMA_VERSION = 1
_SCHEMA = (
    "CREATE TABLE entries (key TEXT PRIMARY KEY NOT NULL, blob TEXT NOT NULL, "
    "original TEXT, meta TEXT NOT NULL) WITHOUT ROWID"
)
SIDE_FILES = ("-wal", "-shm", "-journal")
"""What SQLite writes next to the index (each must be a plain file, never a link)."""
_EMPTY = "empty"

Row = tuple[object, object, object]
"""A record's stored columns as read: blob, original, meta (unchecked)."""


class CacheIndexError(PipelineError):
    """The cache index cannot be used: not an assetpipe index, or damaged (exit 2)."""

    exit_code = EXIT_USAGE


class EntryUnreadable(Exception):
    """SQLite failed to read one entry (its message says why); the entry is a miss."""


class _Unusable(Exception):
    """The index file is not an assetpipe index (internal; becomes a warning or an error)."""


_INSERT = "INSERT OR REPLACE INTO entries (key, blob, original, meta) VALUES (?, ?, ?, ?)"


class _Batch:
    """Rows written together: set once they are in the index, or failed with ``error``."""

    def __init__(self) -> None:
        self.led = False
        """Whether a thread has taken it on (the first to queue a row in it)."""
        self.done = threading.Event()
        self.error: Exception | None = None


class SqliteIndex:
    """The index file of a local store, opened on first use; reading never creates it.

    One connection shared by the worker threads, used under :attr:`lock`. ``check_links``
    runs before every open: the store decides which of its paths may not be links.
    """

    def __init__(self, path: Path, check_links: Callable[[], None]):
        self.path = path
        self.lock = threading.RLock()
        self._check_links = check_links
        self._db: sqlite3.Connection | None = None
        self._durable = True
        """Whether the writer waits for the disk (``PRAGMA synchronous``): FULL as opened."""
        self._queue_lock = threading.Lock()
        self._queued: list[tuple[str, str, str | None, str]] = []
        """Rows of copies waiting for the writer (see :meth:`_put_copy`)."""
        self._batch = _Batch()
        """Tells the threads that queued the rows of :attr:`_queued` when they are written."""
        self._unusable: str | None = None
        """Why the index cannot be used, once found out."""

    def close(self) -> None:
        """Close the connection (the next use opens it again)."""
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None
                self._durable = True

    def prepare(self) -> None:
        """Create the index when missing; CacheIndexError when it cannot be written."""
        self._writer()

    def _reader(self, *, warn: bool = True) -> sqlite3.Connection | None:
        """The index to read; None when there is none yet, or it cannot be used (then,
        unless ``warn`` is off, with a warning)."""
        with self.lock:
            if self._db is None and self._unusable is None:
                try:
                    self._db = self._open(create=False)
                except _Unusable as exc:
                    self._unusable = self._message(str(exc))
                    if warn:
                        log.warning("%s; treating the cache as empty", self._unusable)
            return self._db

    def _writer(self) -> sqlite3.Connection:
        """The index to write, created when missing; one that is not ours is an error."""
        with self.lock:
            if self._db is None:
                if self._unusable is not None:
                    raise CacheIndexError(self._unusable)
                try:
                    db = self._open(create=True)
                except _Unusable as exc:
                    self._unusable = self._message(str(exc))
                    raise CacheIndexError(self._unusable) from None
                if db is None:  # pragma: no cover - create=True always opens or raises
                    raise CacheIndexError(self._message("it could not be created"))
                self._db = db
            return self._db

    def _open(self, *, create: bool) -> sqlite3.Connection | None:
        self._check_links()
        info = refuse_link(self.path, "the cache index")
        if info is None and not create:
            return None
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise _Unusable("it is not a regular file")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
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

    def _message(self, problem: str) -> str:
        return (
            f"the cache index {self.path} cannot be used ({problem}); move it away, "
            "or run `assetpipe cache clear` (the next build pays again for what output/ lacks)"
        )

    # -- entries ----------------------------------------------------------------------------

    def row(self, key: str) -> Row | None:
        """The stored columns for ``key``; None when absent or the index is unusable
        (EntryUnreadable when SQLite fails on it)."""
        with self.lock:
            db = self._reader()
            if db is None:
                return None
            try:
                row = db.execute(
                    "SELECT blob, original, meta FROM entries WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise EntryUnreadable(str(exc)) from None
        return None if row is None else (row[0], row[1], row[2])

    def put(
        self, key: str, blob: str, original: str | None, meta: str, *, durable: bool = True
    ) -> None:
        """Write (or replace) the entry for ``key``; it is in the index when this returns.

        ``durable=False`` does not wait for the disk (an entry that can be made again
        without paying: a copy of a shared one), so a power cut may lose it but never
        damages the index; such entries written by many threads at once go in together,
        in one transaction for all those waiting (see :meth:`_put_copy`)."""
        row = (key, blob, original, meta)
        if not durable:
            self._put_copy(row)
            return
        with self.lock:
            db = self._writer()
            self._wait_for_disk(db, True)
            db.execute(_INSERT, row)

    def _put_copy(self, row: tuple[str, str, str | None, str]) -> None:
        """Group commit: the row joins those waiting, and the first thread to queue a
        row since the last write leads: once the writer is free, it writes every row
        queued by then in one transaction, while the others wait for their batch alone.
        A shared cache's hits are copied by a hundred threads at once; a transaction
        each, or each thread taking the writer in turn, made them queue (~2 ms a row on
        two cores); a few transactions in all let them through."""
        with self._queue_lock:
            self._queued.append(row)
            batch = self._batch
            leads = not batch.led
            batch.led = True
        if leads:
            with self.lock:
                self._write_queued()
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error

    def _write_queued(self) -> None:
        """Write every queued row in one transaction (under :attr:`lock`), and tell the
        threads that queued them how it went."""
        with self._queue_lock:
            rows, batch = self._queued, self._batch
            self._queued, self._batch = [], _Batch()
        try:
            db = self._writer()
            self._wait_for_disk(db, False)
            with _transaction(db):
                db.executemany(_INSERT, rows)
        except Exception as exc:  # each waiting thread raises it
            batch.error = exc
        except BaseException:  # not written: the waiting threads must not think it was
            batch.error = CacheIndexError(f"the write to the cache index {self.path} stopped")
            raise
        finally:
            batch.done.set()

    def count(self) -> int:
        """How many entries there are (0, with a warning, when they cannot be counted)."""
        with self.lock:
            db = self._reader()
            try:
                if db is not None:
                    return int(db.execute("SELECT count(*) FROM entries").fetchone()[0])
            except sqlite3.Error as exc:
                log.warning("cannot count the entries of %s (%s)", self.path, exc)
        return 0

    def entries(self) -> list[tuple[object, Row]]:
        """Every entry's key (as stored, to delete it by) and columns; CacheIndexError when
        the index exists but cannot be read (an unreadable index is not an empty one)."""
        with self.lock:
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
                raise CacheIndexError(self._message(str(exc))) from None
        return [(key, (blob, original, meta)) for key, blob, original, meta in rows]

    def delete(self, keys: Iterable[object]) -> int:
        """Delete these entries in one transaction; returns how many keys were given."""
        batch = [(key,) for key in keys]
        with self.lock:
            db = self._reader(warn=False)
            if db is None or not batch:
                return 0
            self._wait_for_disk(db, True)
            with _transaction(db):
                db.executemany("DELETE FROM entries WHERE key = ?", batch)
        return len(batch)

    def _wait_for_disk(self, db: sqlite3.Connection, durable: bool) -> None:
        """Set whether the writer's transactions wait for the disk; said only when it
        changes, so a run of copies (not durable) costs one statement, not two each."""
        if self._durable is not durable:
            db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable


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
