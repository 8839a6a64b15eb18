"""An image restored from a shared cache is hashed no more often than it must be.

Machine B's restore of what machine A shared checks each image against its name once, as
it arrives from the shared cache. Copying it into the local cache does not hash it again
(its name was just checked), the restore takes the bytes the download checked instead of
reading them back (while they fit in memory: past that, read back and checked again, a
folder anyone may have changed since), and the C2PA verdict on the API's bytes does not
hash them when they are the delivered ones. What is counted is every ``hashlib.sha256``
made over the image's bytes, through the real stores (a ``file://`` shared folder) and
the real CLI.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectTree
from store_kit import layered, req

from pipeline.store import LocalStore

SPEC = """
    assets:
      - id: tile
        prompt: "A flat tile"
        size: 1024x1024
        quality: low
"""


def counting_sha256(
    monkeypatch: pytest.MonkeyPatch, watched: Callable[[], set[bytes]]
) -> Counter[bytes]:
    """Count ``hashlib.sha256(data)`` calls whose ``data`` is one of ``watched()``."""
    made: Counter[bytes] = Counter()
    real = hashlib.sha256

    def sha256(data: Any = b"", **options: Any) -> Any:
        if isinstance(data, bytes) and data in watched():
            made[data] += 1
        return real(data, **options)

    monkeypatch.setattr(hashlib, "sha256", sha256)
    return made


def test_a_shared_hit_goes_to_the_restore_without_being_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Downloaded and copied into the local cache: the delivered bytes and the API's bytes
    are each checked on arrival; the copy hashes nothing, and the build's ``get`` takes the
    bytes the download checked instead of reading them back from the disk. The API's
    bytes, read back by name, are checked again."""
    shared = tmp_path / "shared"
    shared.mkdir()
    url = shared.as_uri()
    delivered, original = b"delivered" * 20_000, b"as returned" * 20_000
    request = req("tile")
    with layered(LocalStore(tmp_path / "a"), url) as a:
        a.commit(request, delivered, original, {"request_id": "req_a"})
    made = counting_sha256(monkeypatch, lambda: {delivered, original})
    with layered(LocalStore(tmp_path / "b"), url, "read-only") as b:
        b.prefetch([request], fetch=True)
        hit = b.get(request)
        assert hit is not None and hit[1] == delivered
        assert b.read_blob(hit[0].original or "") == original
    assert made == {delivered: 1, original: 2}, "handed over, not read back from the disk"


def test_past_what_is_kept_in_memory_a_copy_is_read_back_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.store import prefetch

    shared = tmp_path / "shared"
    shared.mkdir()
    url = shared.as_uri()
    delivered = b"delivered" * 20_000
    request = req("tile")
    with layered(LocalStore(tmp_path / "a"), url) as a:
        a.commit(request, delivered, None, {"request_id": "req_a"})
    monkeypatch.setattr(prefetch, "HANDED_BYTES", len(delivered) - 1)
    made = counting_sha256(monkeypatch, lambda: {delivered})
    with layered(LocalStore(tmp_path / "b"), url, "read-only") as b:
        b.prefetch([request], fetch=True)
        hit = b.get(request)
        assert hit is not None and hit[1] == delivered
    assert made == {delivered: 2}, "not kept in memory: read back from the disk and checked"


def test_a_copy_handed_over_is_taken_once_and_a_later_commit_replaces_it(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    url = shared.as_uri()
    request = req("tile")
    with layered(LocalStore(tmp_path / "a"), url) as a:
        a.commit(request, b"theirs" * 1000, None, {"request_id": "req_a"})
    with layered(LocalStore(tmp_path / "b"), url, "read-only") as b:
        b.prefetch([request], fetch=True)
        b.prefetched.wait_for(request.key)
        assert b.prefetched.take(request.key) is not None
        assert b.prefetched.take(request.key) is None  # once: then the local store answers
        hit = b.get(request)
        assert hit is not None and hit[1] == b"theirs" * 1000
    with layered(LocalStore(tmp_path / "c"), url, "read-only") as c:
        c.prefetch([request], fetch=True)
        c.prefetched.wait_for(request.key)
        c.commit(request, b"ours" * 1000, None, {"request_id": "req_c"})
        hit = c.get(request)
        assert hit is not None and hit[1] == b"ours" * 1000, "what was handed over is forgotten"


def test_a_restored_image_is_hashed_once_from_bucket_to_output(
    tmp_path: Path, project: ProjectTree, run: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine B assembles what machine A paid for: its image is checked as it comes from
    the shared folder, and nowhere else (the copy into the local cache, the restore, the
    memo, the manifest and the C2PA verdict reuse that name)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    settings = f"remote_cache: {{url: {shared.as_uri()!r}}}\n"
    project.gen({"specs/tiles.yaml": SPEC, "assetpipe.yaml": settings})
    assert run("build", "--provider", "openai").code == 0
    billed = api.billed_images
    machine_b = ProjectTree(tmp_path / "b")
    machine_b.gen({"specs/tiles.yaml": SPEC, "assetpipe.yaml": settings, "templates/.keep": ""})
    blobs = {p.read_bytes() for p in (shared / "assetpipe-v1" / "blobs").iterdir()}
    assert len(blobs) == 1
    made = counting_sha256(monkeypatch, lambda: blobs)
    result = run("build", "--provider", "openai", "--json", project_dir=machine_b.root)
    assert result.code == 0, result.err
    assert json.loads(result.out)["counts"] == {"cached": 1}
    assert api.billed_images == billed
    assert list(made.values()) == [1]
    assert {p.read_bytes() for p in (machine_b / "output").rglob("*.png")} == blobs
