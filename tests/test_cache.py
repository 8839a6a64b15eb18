"""The local result store: atomic commits, verified reads, corruption as a miss, maintenance.

The index is plain data (SQLite, text columns, JSON metadata): every row is validated as it
is read, so a planted or damaged row is a miss with a warning, never a crash, and a blob
name that is not a sha256 never becomes a path.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3

import pytest
from store_kit import kept, meta_text, req

from pipeline.fsutil import LinkRefused
from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.store import CacheIndexError, CacheStats, LocalStore

GOOD = sha256_bytes(b"good")
K = req("k")
WELL_FORMED = meta_text(K)
"""The metadata of a well-formed record of ``K``: rows planted under ``K.key`` keep it
unless their metadata is what they test."""


def plant(cache: LocalStore, key: object, blob: object, original: object, meta: object) -> None:
    """Write one row into the index as a hand (or an attacker) would, bypassing commit."""
    with sqlite3.connect(cache.index_path) as db:
        db.execute(
            "INSERT OR REPLACE INTO entries (key, blob, original, meta) VALUES (?, ?, ?, ?)",
            (key, blob, original, meta),
        )
    db.close()


@pytest.fixture
def cache(tmp_path):
    with LocalStore(tmp_path / "cache") as c:
        yield c


def test_commit_then_get_returns_the_bytes_and_meta(cache):
    """A committed result comes back byte for byte with its metadata."""
    record = cache.commit(req("k1"), b"delivered", b"original", {"request_id": "req_1"})
    hit = cache.get(req("k1"))
    assert hit is not None
    got, data = hit
    assert data == b"delivered"
    assert got.blob == sha256_bytes(b"delivered")
    assert got.original == sha256_bytes(b"original")
    assert got.meta == kept(req("k1"), request_id="req_1")
    assert record == got
    assert cache.read_blob(got.original) == b"original"


def test_identical_original_is_not_stored_twice(cache):
    """When delivery changed nothing, original is None (one blob)."""
    record = cache.commit(K, b"same", b"same")
    assert record.original is None
    assert cache.stats().blobs == 1


def test_missing_key_is_a_miss(cache):
    """An unknown key is None."""
    assert cache.get(req("nope")) is None
    assert cache.lookup(req("nope")) is None


def test_corrupt_blob_is_a_miss_with_a_warning(cache, caplog):
    """A blob whose bytes no longer hash to its name is a miss, logged, and removed."""
    record = cache.commit(K, b"good bytes")
    cache.blob_path(record.blob).write_bytes(b"bad bytes")
    with caplog.at_level(logging.WARNING, logger="assetpipe.cache"):
        assert cache.get(K) is None
    assert "corrupt" in caplog.text
    assert not cache.blob_path(record.blob).exists()


def test_missing_blob_is_a_miss(cache):
    """A record whose blob was deleted is a miss, not a crash."""
    record = cache.commit(K, b"bytes")
    cache.blob_path(record.blob).unlink()
    assert cache.lookup(K) is None


@pytest.mark.parametrize(
    ("blob", "original", "meta"),
    [
        ("../../victim", None, WELL_FORMED),
        (GOOD.upper(), None, WELL_FORMED),
        (GOOD[:63], None, WELL_FORMED),
        (GOOD + "0", None, WELL_FORMED),
        (b"\x00" * 64, None, WELL_FORMED),
        (64, None, WELL_FORMED),
        (GOOD, "../../victim", WELL_FORMED),
        (GOOD, 7, WELL_FORMED),
        (GOOD, None, "[1, 2]"),
        (GOOD, None, "not json"),
        (GOOD, None, WELL_FORMED.encode()),
        (GOOD, None, "[" * 100_000 + "]" * 100_000),
        (GOOD, None, meta_text(K, cost_usd="free")),
        (GOOD, None, meta_text(K, cost_usd=True)),
        (GOOD, None, meta_text(K, usage=5)),
        (GOOD, None, meta_text(K, atlas={"x": 1})),
    ],
    ids=[
        "blob-path",
        "blob-uppercase",
        "blob-short",
        "blob-long",
        "blob-bytes",
        "blob-integer",
        "original-path",
        "original-integer",
        "meta-not-an-object",
        "meta-not-json",
        "meta-bytes",
        "meta-too-deep",
        "meta-cost-text",
        "meta-cost-bool",
        "meta-usage-number",
        "meta-atlas-object",
    ],
)
def test_malformed_row_is_a_miss_with_a_warning(cache, caplog, blob, original, meta):
    """A row whose blob or original is not 64 lowercase hex digits, or whose metadata is
    not a JSON object of the expected types, is a miss with one warning (though looked up
    twice), never a crash; gc drops it and deletes nothing else."""
    cache.commit(req("other"), b"good")
    plant(cache, K.key, blob, original, meta)
    with caplog.at_level(logging.WARNING, logger="assetpipe.cache"):
        assert cache.lookup(K) is None
        assert cache.get(K) is None
    assert caplog.messages == [
        f"cache entry {K.key[:12]} is unreadable or was not made from its request; "
        "it will be made again"
    ]
    assert cache.gc() == (1, 0)
    assert cache.stats() == CacheStats(entries=1, blobs=1, bytes=4)


def test_blob_names_that_are_not_a_sha256_never_become_paths(cache, tmp_path):
    """read_blob of a path-like name is None without touching the file it names; blob_path
    refuses it outright."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    assert cache.read_blob("../../victim") is None
    assert victim.read_bytes() == b"mine"
    with pytest.raises(ValueError, match=r"not a blob name: '\.\./\.\./victim'"):
        cache.blob_path("../../victim")


def test_well_formed_row_of_a_known_blob_is_read_back(cache):
    """A row written by hand in the documented format (plain text columns, JSON meta)
    reads back as the same record: the format is plain data anyone can inspect."""
    cache.prepare()
    blob = cache.put_blob(b"good")
    plant(cache, K.key, blob, None, json.dumps(kept(K, request_id="req_9", cost_usd=0.25)))
    record = cache.lookup(K)
    assert record is not None
    assert (record.blob, record.original, dict(record.meta or {})) == (
        GOOD,
        None,
        kept(K, request_id="req_9", cost_usd=0.25),
    )


def test_a_row_not_made_from_its_request_is_a_miss_though_its_blob_is_there(cache, caplog):
    """A row whose metadata keeps a request that hashes to another key (a record copied
    under another request's key), and one whose metadata keeps no request at all, are
    misses with a warning (once, though looked up twice) even though the blob they name
    is there: a key is never taken from the index, only computed from the request. The
    row it was copied from still reads back, and gc drops the two planted rows only."""
    theirs, ours, bare = req("theirs"), req("ours"), req("bare")
    record = cache.commit(theirs, b"their image", None, {"request_id": "req_1"})
    with sqlite3.connect(cache.index_path) as db:
        row = db.execute(
            "SELECT blob, original, meta FROM entries WHERE key = ?", (theirs.key,)
        ).fetchone()
    db.close()
    plant(cache, ours.key, *row)
    plant(cache, bare.key, record.blob, None, json.dumps({"request_id": "req_1"}))
    assert json.loads(row[2])["request"] == dict(theirs.payload)
    with caplog.at_level(logging.WARNING, logger="assetpipe.cache"):
        for request in (ours, bare):
            assert cache.lookup(request) is None
            assert cache.get(request) is None
    assert caplog.messages == [
        f"cache entry {planted.key[:12]} is unreadable or was not made from its request; "
        "it will be made again"
        for planted in (ours, bare)
    ]
    assert cache.read_blob(record.blob) == b"their image"
    assert cache.get(theirs) == (record, b"their image")
    assert cache.gc() == (2, 0)
    assert cache.get(theirs) == (record, b"their image")


def test_commit_files_a_result_under_its_requests_key_and_nothing_else(cache):
    """commit computes the key from the request: the index holds one row, under
    ``CacheRequest(payload).key``, keeping the request itself in its metadata."""
    payload = {"provider": "preview", "prompt": "a stone", "variant": 1}
    cache.commit(CacheRequest(payload), b"a stone", None, {"request_id": "req_1"})
    with sqlite3.connect(cache.index_path) as db:
        rows = db.execute("SELECT key, meta FROM entries").fetchall()
    db.close()
    assert [key for key, _ in rows] == [CacheRequest(dict(payload)).key]
    assert json.loads(rows[0][1]) == {"request_id": "req_1", "request": payload}
    assert cache.lookup(CacheRequest(payload)) is not None


def test_commit_refuses_metadata_it_could_not_read_back(cache):
    """What commit writes, lookup accepts: metadata of the wrong type is refused up front."""
    with pytest.raises(
        ValueError, match=f"cache metadata of {K.key[:12]} is not what a record may hold"
    ):
        cache.commit(K, b"x", None, {"cost_usd": "1.00"})
    assert cache.lookup(K) is None


def test_index_that_is_not_ours_is_ignored_on_read_and_refused_on_write(tmp_path, caplog):
    """An index file with another schema (a view, a trigger, another table) is never
    queried: reads warn once and miss, gc and commit raise CacheIndexError."""
    folder = tmp_path / "cache"
    folder.mkdir()
    with sqlite3.connect(folder / "index.db") as db:
        db.execute("CREATE TABLE entries (key TEXT, blob TEXT, original TEXT, meta TEXT)")
        db.execute("CREATE VIEW extra AS SELECT 1")
    db.close()
    with LocalStore(folder) as cache:
        with caplog.at_level(logging.WARNING, logger="assetpipe.cache"):
            assert cache.lookup(K) is None
            assert cache.lookup(req("k2")) is None
        assert len(caplog.messages) == 1
        assert caplog.messages[0].startswith(
            f"the cache index {folder / 'index.db'} cannot be used (it is not an assetpipe "
            "cache index: it holds table entries, view extra)"
        )
        with pytest.raises(CacheIndexError, match="it holds table entries, view extra"):
            cache.gc()
        with pytest.raises(CacheIndexError, match="move it away, or run `assetpipe cache clear`"):
            cache.commit(K, b"x")


def test_file_that_is_not_a_database_is_a_miss_not_a_crash(tmp_path, caplog):
    """Garbage in index.db (not SQLite at all) reads as an empty cache with a warning."""
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "index.db").write_bytes(b"\x80\x04garbage that is no database" * 100)
    with LocalStore(folder) as cache, caplog.at_level(logging.WARNING, "assetpipe.cache"):
        assert cache.get(K) is None
        assert cache.stats().entries == 0
    assert caplog.messages == [
        f"the cache index {folder / 'index.db'} cannot be used (file is not a database); "
        "move it away, or run `assetpipe cache clear` (the next build pays again for what "
        "output/ lacks); treating the cache as empty"
    ]


def test_reading_an_absent_index_creates_nothing(tmp_path):
    """Lookups and stats on a cache folder without an index write no file (plan and check
    promise no writes)."""
    folder = tmp_path / "cache"
    folder.mkdir()
    with LocalStore(folder) as cache:
        assert cache.lookup(K) is None
        assert cache.stats().entries == 0
    assert list(folder.iterdir()) == []


def test_linked_blob_folder_is_skipped_by_gc_and_stats(cache, tmp_path, caplog):
    """A link under blobs/ (a folder or a file) is neither followed, counted nor deleted."""
    cache.commit(K, b"keep")
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = "ab" + "0" * 62
    (outside / planted).write_bytes(b"not a blob of this cache")
    (cache.blob_dir / "ab").symlink_to(outside)
    victim = tmp_path / "victim"
    victim.write_bytes(b"mine")
    sub = cache.blob_path(GOOD).parent
    sub.mkdir(parents=True, exist_ok=True)
    (sub / GOOD).symlink_to(victim)
    with caplog.at_level(logging.WARNING, logger="assetpipe.cache"):
        assert cache.stats().blobs == 1
        assert cache.gc() == (0, 0)
    assert (outside / planted).read_bytes() == b"not a blob of this cache"
    assert victim.read_bytes() == b"mine"
    assert (sub / GOOD).is_symlink()
    assert f"skipping the symbolic link {cache.blob_dir / 'ab'} in the cache" in caplog.messages
    assert f"skipping the symbolic link {sub / GOOD} in the cache" in caplog.messages
    assert cache.read_blob(GOOD) is None


def test_linked_cache_folder_is_refused(tmp_path):
    """The cache folder itself as a link is an error naming it; clear deletes nothing."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"mine")
    (tmp_path / "cache").symlink_to(outside)
    with LocalStore(tmp_path / "cache") as cache:
        with pytest.raises(LinkRefused, match=r"refusing to use the symbolic link .*cache \("):
            cache.lookup(K)
        with pytest.raises(LinkRefused, match="the result cache"):
            cache.clear()
    assert (outside / "precious").read_bytes() == b"mine"


def test_gc_drops_broken_records_and_unused_blobs(cache):
    """gc removes a record without bytes and a blob no record names."""
    keep = cache.commit(req("keep"), b"keep")
    broken = cache.commit(req("broken"), b"broken")
    cache.blob_path(broken.blob).unlink()
    cache.put_blob(b"orphan")
    assert cache.gc() == (1, 1)
    assert cache.get(req("keep")) is not None
    assert cache.stats().blobs == 1
    assert cache.read_blob(keep.blob) == b"keep"


def test_clear_deletes_everything(tmp_path):
    """clear removes the folder; a new cache there is empty."""
    folder = tmp_path / "cache"
    with LocalStore(folder) as c:
        c.commit(K, b"x")
        c.clear()
    assert not folder.exists()
    with LocalStore(folder) as c:
        assert c.get(K) is None


def test_commits_from_many_threads_all_land(cache):
    """Worker threads commit through one cache at once; every result is there afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: cache.commit(req(f"k{i}"), f"data {i}".encode()), range(64)))
    assert cache.stats().entries == 64
    assert [cache.get(req(f"k{i}"))[1] for i in range(64)] == [
        f"data {i}".encode() for i in range(64)
    ]


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes give delivered files the mode any new file gets (0666 less the
    umask), not a temporary file's private 0600."""
    from pipeline.fsutil import write_atomic

    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "a.png"
    write_atomic(target, b"x")
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_an_atomic_write_steps_over_a_planted_temporary_name(tmp_path, monkeypatch):
    """The temporary file is created by the write alone: a file or a link already under
    the name it would take (a crash's leftover, or a plant) is neither written through
    nor truncated; the next name is taken."""
    import itertools

    from pipeline import fsutil

    monkeypatch.setattr(fsutil, "_TEMPORARIES", itertools.count())
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    stem = f".a.png.{os.getpid()}"
    (tmp_path / f"{stem}.0.tmp").symlink_to(victim)
    (tmp_path / f"{stem}.1.tmp").write_bytes(b"a leftover")
    fsutil.write_atomic(tmp_path / "a.png", b"new")
    assert (tmp_path / "a.png").read_bytes() == b"new"
    assert victim.read_bytes() == b"keep me"
    assert (tmp_path / f"{stem}.1.tmp").read_bytes() == b"a leftover"
    assert not (tmp_path / f"{stem}.2.tmp").exists(), "renamed into place"
