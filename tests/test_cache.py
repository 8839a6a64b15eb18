"""The result cache: atomic commits, verified reads, corruption as a miss, maintenance."""

from __future__ import annotations

import logging

import pytest

from pipeline.cache import ResultCache
from pipeline.hashing import sha256_bytes


@pytest.fixture
def cache(tmp_path):
    with ResultCache(tmp_path / "cache") as c:
        yield c


def test_commit_then_get_returns_the_bytes_and_meta(cache):
    """A committed result comes back byte for byte with its metadata."""
    record = cache.commit("k1", b"delivered", b"original", {"request_id": "req_1"})
    hit = cache.get("k1")
    assert hit is not None
    got, data = hit
    assert data == b"delivered"
    assert got.blob == sha256_bytes(b"delivered")
    assert got.original == sha256_bytes(b"original")
    assert got.meta == {"request_id": "req_1"}
    assert record == got
    assert cache.read_blob(got.original) == b"original"


def test_identical_original_is_not_stored_twice(cache):
    """When delivery changed nothing, original is None (one blob)."""
    record = cache.commit("k", b"same", b"same")
    assert record.original is None
    assert cache.stats().blobs == 1


def test_missing_key_is_a_miss(cache):
    """An unknown key is None."""
    assert cache.get("nope") is None
    assert cache.lookup("nope") is None


def test_corrupt_blob_is_a_miss_with_a_warning(cache, caplog):
    """A blob whose bytes no longer hash to its name is a miss, logged, and removed."""
    record = cache.commit("k", b"good bytes")
    cache.blob_path(record.blob).write_bytes(b"bad bytes")
    with caplog.at_level(logging.WARNING, logger="assetpipe.cache"):
        assert cache.get("k") is None
    assert "corrupt" in caplog.text
    assert not cache.blob_path(record.blob).exists()


def test_missing_blob_is_a_miss(cache):
    """A record whose blob was deleted is a miss, not a crash."""
    record = cache.commit("k", b"bytes")
    cache.blob_path(record.blob).unlink()
    assert cache.lookup("k") is None


def test_unreadable_record_is_a_miss(cache):
    """A record of an unknown shape (another version) is a miss."""
    cache.index.set("k", {"v": 99})
    assert cache.lookup("k") is None


def test_gc_drops_broken_records_and_unused_blobs(cache):
    """gc removes a record without bytes and a blob no record names."""
    keep = cache.commit("keep", b"keep")
    broken = cache.commit("broken", b"broken")
    cache.blob_path(broken.blob).unlink()
    cache.put_blob(b"orphan")
    assert cache.gc() == (1, 1)
    assert cache.get("keep") is not None
    assert cache.stats().blobs == 1
    assert cache.read_blob(keep.blob) == b"keep"


def test_clear_deletes_everything(tmp_path):
    """clear removes the folder; a new cache there is empty."""
    folder = tmp_path / "cache"
    with ResultCache(folder) as c:
        c.commit("k", b"x")
        c.clear()
    assert not folder.exists()
    with ResultCache(folder) as c:
        assert c.get("k") is None


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomic writes do not leave mkstemp's private 0600 mode on delivered files."""
    import os

    from pipeline.fsutil import write_atomic

    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "a.png"
    write_atomic(target, b"x")
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
