"""A required shared cache lost in the middle of a build stops the paying.

``remote_cache: {required: true}`` (the CI recipe sets it on the shards) means: never pay
for what the team's bucket holds because it could not be read. A bucket that cannot be
read at the start is exit 2 before anything is planned; one that goes away while its
images are being copied stops the build from paying too: each image not copied yet would
otherwise be paid for again. Through the real CLI against SeaweedFS, with a proxy in
front that stops answering the image downloads (``tests/refusing_proxy.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectTree
from refusing_proxy import RefusingProxy
from s3servers import S3Server
from test_shared_facts_refused import NEW, SPEC, machine, reach

from pipeline.errors import EXIT_USAGE


def required(tree: ProjectTree, url: str) -> ProjectTree:
    settings = f"provider: openai\nremote_cache: {{url: {url}, required: true}}\n"
    tree.gen({"assetpipe.yaml": settings})
    return tree


def downloads(verb: str, path: str) -> bool:
    return verb == "GET" and "/blobs/" in path


@pytest.mark.parametrize("is_required", [True, False])
def test_a_required_cache_lost_mid_build_stops_the_paying(
    tmp_path: Path,
    run: Any,
    api: Any,
    seaweedfs_s3: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    is_required: bool,
) -> None:
    """Machine B reads A's six records, then every image download is cut off: with the
    cache required, none of A's six images is paid for again (B's own new image may
    have been paid before the cache was lost: it was never in the bucket), the build
    says why it stopped and exits 2; without, B pays for them all and exits 0."""
    url = seaweedfs_s3.url()
    reach(seaweedfs_s3, seaweedfs_s3.endpoint, monkeypatch)
    assert run("build", project_dir=machine(tmp_path / "a", url).root).code == 0
    billed = api.billed_images
    b = machine(tmp_path / "b", url, SPEC + NEW)
    if is_required:
        required(b, url)
    with RefusingProxy(seaweedfs_s3.endpoint, downloads, hang_up=True) as server:
        reach(seaweedfs_s3, server.endpoint, monkeypatch)
        result = run("build", "--json", project_dir=b.root)
    assert server.refused, "the images were asked for"
    document = json.loads(result.out)
    counts = document["counts"]
    if not is_required:
        assert result.code == 0, result.err
        assert counts == {"generated": 7}
        assert api.billed_images == billed + 7
        return
    assert result.code == EXIT_USAGE, result.err
    assert api.billed_images - billed <= 1, "only B's own new image may have been paid"
    assert counts.get("skipped", 0) >= 6 and sum(counts.values()) == 7, counts
    assert document["stop_reason"].startswith(f"stopped paying: the required shared cache {url}")
    assert result.err.count("cannot be used") == 1, result.err
    # Said in a few words: the method, the client's retries and the cause, no URL or dump.
    said = "GET failed after 2 retries: HTTP error: error sending request (the connection "
    assert f"cannot be used ({said}closed before an answer))" in result.err, result.err
    assert "has no usable image" not in result.err, "nothing more is said of a lost cache"


def test_a_required_cache_that_refuses_a_write_stops_the_paying(
    tmp_path: Path, run: Any, api: Any, seaweedfs_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine A's credentials may read the bucket but not write its records: its first
    paid image cannot reach the team (which would pay for it again), so A pays for no
    other, keeps that one in its own cache, and exits 2."""
    url = seaweedfs_s3.url()
    a = required(machine(tmp_path / "a", url), url)
    records = lambda verb, path: verb == "PUT" and "/records/" in path  # noqa: E731
    with RefusingProxy(seaweedfs_s3.endpoint, records) as policy:
        reach(seaweedfs_s3, policy.endpoint, monkeypatch)
        result = run("build", "--json", "--concurrency", "1", project_dir=a.root)
    assert policy.refused, "a record was offered"
    assert result.code == EXIT_USAGE, result.err
    document = json.loads(result.out)
    assert document["counts"] == {"generated": 1, "skipped": 5}
    assert api.billed_images == 1
    assert "refused a write (HTTP 403 AccessDenied)" in document["stop_reason"]
