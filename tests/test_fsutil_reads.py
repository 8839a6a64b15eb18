"""Capped reads of untrusted files (``fsutil.read_regular`` / ``read_open``): the whole
file, or ``OSError`` past the cap, and never a buffer the size of the cap set aside for a
small file (a 256 MB cap must not cost 256 MB to read a 1 KB manifest)."""

from __future__ import annotations

import errno
import os
import tracemalloc
from pathlib import Path

import pytest

from pipeline.fsutil import READ_CHUNK, read_open, read_regular
from pipeline.output.manifest import read_manifest_bytes


def test_a_file_is_read_whole_up_to_its_cap(tmp_path: Path):
    """Small, exactly at the cap, and larger than one chunk: all of it."""
    for size in (0, 10, READ_CHUNK + 3):
        path = tmp_path / f"f{size}"
        path.write_bytes(os.urandom(size))
        assert read_regular(path, size) == path.read_bytes()


def test_a_file_over_its_cap_is_refused(tmp_path: Path):
    """One byte over is ``EFBIG``, named by the path."""
    path = tmp_path / "big"
    path.write_bytes(b"x" * 11)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as caught:
            read_open(fd, 10, str(path))
    finally:
        os.close(fd)
    assert caught.value.errno == errno.EFBIG


def test_reading_a_small_file_under_a_large_cap_sets_aside_only_its_size(tmp_path: Path):
    """A 1 KB file read under a 256 MB cap, by both readers: memory stays near 1 KB."""
    path = tmp_path / "manifest.json"
    path.write_bytes(b"{}" * 512)
    tracemalloc.start()
    try:
        read_regular(path, 256 * 1024 * 1024)
        read_manifest_bytes(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
