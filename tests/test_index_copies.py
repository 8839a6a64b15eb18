"""The local index under a crowd of copies: a shared cache's hits are copied into the local
store by a hundred threads at once, and their rows go in together (group commit), each
in the index when its ``put`` returns, a failure said to every thread it concerns, and a
paid result's row still waiting for the disk.

Where what goes in together matters, the test holds the writer itself while the threads
queue, so it is decided by the test, not by how the threads happen to be scheduled.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.store.sqlite_index import CacheIndexError, SqliteIndex

ROWS = 24


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SqliteIndex]:
    made = SqliteIndex(tmp_path / "index.db", lambda: None)
    made.prepare()
    try:
        yield made
    finally:
        made.close()


def statements(index: SqliteIndex) -> list[str]:
    """Every statement the index's connection runs from now on."""
    seen: list[str] = []
    db = index._writer()
    db.set_trace_callback(seen.append)
    return seen


def queued_while_held(
    index: SqliteIndex,
    put: Callable[[int], None],
    rows: int,
    held: threading.RLock | None = None,
) -> list[Future[None]]:
    """``put(i)`` for each row from its own thread while the test holds the writer (the
    index's lock, or ``held``); returns once every row is written or failed (each thread
    first queues its row, then waits for the writer or for its batch)."""
    pool = ThreadPoolExecutor(rows)
    with held if held is not None else index.lock:
        futures = [pool.submit(put, i) for i in range(rows)]
        deadline = time.monotonic() + 60
        while len(index._queued) < rows:  # the event waited on: every row queued
            assert time.monotonic() < deadline, "the copies never queued"
            time.sleep(0.001)
    pool.shutdown(wait=True)
    return futures


def copy(index: SqliteIndex, i: int) -> None:
    index.put(f"key{i}", f"{i:064x}", None, "{}", durable=False)


def test_rows_of_copies_queued_together_go_in_one_transaction(index: SqliteIndex) -> None:
    seen = statements(index)
    futures = queued_while_held(index, lambda i: copy(index, i), ROWS)
    assert [f.result() for f in futures] == [None] * ROWS
    assert index.count() == ROWS
    assert [index.row(f"key{i}") for i in range(ROWS)] == [
        (f"{i:064x}", None, "{}") for i in range(ROWS)
    ]
    assert seen.count("BEGIN IMMEDIATE") == 1, seen
    assert seen.count("PRAGMA synchronous = NORMAL") == 1


def test_a_failed_write_is_raised_in_every_thread_whose_row_it_held(
    index: SqliteIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unusable() -> sqlite3.Connection:
        raise CacheIndexError("the cache index cannot be written (planted)")

    monkeypatch.setattr(index, "_writer", unusable)
    futures = queued_while_held(index, lambda i: copy(index, i), ROWS)
    errors = [f.exception() for f in futures]
    assert all(isinstance(e, CacheIndexError) for e in errors), errors
    monkeypatch.undo()
    assert index.count() == 0
    copy(index, 0)  # the next copy is not stuck behind the failed batch
    assert index.row("key0") == (f"{0:064x}", None, "{}")


def test_a_copy_returns_once_its_row_is_in_the_index(index: SqliteIndex) -> None:
    """Without the test holding the writer: many threads, each reading its own row back
    as soon as its put returns."""

    def copy_then_read(i: int) -> object:
        copy(index, i)
        return index.row(f"key{i}")

    with ThreadPoolExecutor(32) as pool:
        found = list(pool.map(copy_then_read, range(200)))
    assert found == [(f"{i:064x}", None, "{}") for i in range(200)]


def test_a_paid_row_after_copies_waits_for_the_disk_again(index: SqliteIndex) -> None:
    seen = statements(index)
    for i in range(3):
        copy(index, i)
    index.put("paid", "f" * 64, None, "{}")
    copy(index, 9)
    index.delete(["key0"])
    assert [s for s in seen if s.startswith("PRAGMA synchronous")] == [
        "PRAGMA synchronous = NORMAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA synchronous = FULL",
    ]
    db = index._writer()
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert index.row("paid") == ("f" * 64, None, "{}")


def test_only_the_thread_leading_a_batch_takes_the_writer(index: SqliteIndex) -> None:
    """The first thread to queue a row leads its batch; the others wait for the batch, not
    for the writer, so they do not take it in turn one after the other once it is free."""
    writer = index.lock
    takes: list[str] = []

    class Counted:
        def __enter__(self) -> None:
            takes.append(threading.current_thread().name)
            writer.acquire()

        def __exit__(self, *exc: object) -> None:
            writer.release()

    index.lock = Counted()  # type: ignore[assignment]
    try:
        futures = queued_while_held(index, lambda i: copy(index, i), ROWS, held=writer)
    finally:
        index.lock = writer
    assert [f.exception() for f in futures] == [None] * ROWS
    assert len(set(takes)) == 1, takes  # (the writer is taken again inside, by the same thread)
    assert index.count() == ROWS
