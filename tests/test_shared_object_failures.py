"""A bucket that fails one object costs that object, never the whole shared cache.

S3 answers some requests with trouble of its own (500 InternalError, 503 SlowDown), and
one damaged object can keep failing after the client's retries. That object is then a
miss: the build pays for it alone, copies everything else, and still shares what it
paid for. A server failing object after object is still taken for down after a few, so a
dead one costs a few failed reads, not one a job. Through the real CLI against
SeaweedFS, with a proxy in front of it answering the chosen requests itself
(``tests/refusing_proxy.py``).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import obstore
import pytest
from refusing_proxy import RefusingProxy
from s3servers import S3Server, closed_endpoint
from test_shared_facts_refused import NEW, SPEC, machine, objects, reach

from pipeline.store.remote_failures import OBJECT_FAILURES, Failures
from pipeline.store.shared_format import reason


def test_one_object_that_keeps_failing_is_a_miss_alone(
    tmp_path: Path, run: Any, api: Any, seaweedfs_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One of A's records answers 500 to machine B, retries included: B pays for that
    image and its own new one, copies the other five, and shares the new one."""
    url = seaweedfs_s3.url()
    reach(seaweedfs_s3, seaweedfs_s3.endpoint, monkeypatch)
    assert run("build", project_dir=machine(tmp_path / "a", url).root).code == 0
    damaged = min(objects(seaweedfs_s3, url, "records")).rpartition("/")[2]
    billed = api.billed_images
    b = machine(tmp_path / "b", url, SPEC + NEW)
    one = lambda verb, path: verb == "GET" and path.endswith(f"/records/{damaged}")  # noqa: E731
    with RefusingProxy(seaweedfs_s3.endpoint, one, status=500, code="InternalError") as server:
        reach(seaweedfs_s3, server.endpoint, monkeypatch)
        result = run("build", "--json", project_dir=b.root)
    assert result.code == 0, result.err
    assert server.refused, "the damaged record was asked for"
    assert json.loads(result.out)["counts"] == {"cached": 5, "generated": 2}
    assert api.billed_images == billed + 2
    assert "failed to give an object (HTTP 500 InternalError)" in result.err
    assert f"/assetpipe-v1/records/{damaged}; -v names each)" in result.err, "named"
    assert "cannot be used" not in result.err
    assert len(objects(seaweedfs_s3, url, "records")) == 7, "B's new image is shared"


def test_a_server_failing_every_object_is_left_after_a_few(
    tmp_path: Path, run: Any, api: Any, seaweedfs_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every record answers 503: B pays for everything (there is nothing it can copy),
    says once that the shared cache cannot be used, and stops asking: no paid result
    makes it read a record again, as each would while the store is still trusted."""
    tiles = 3 * OBJECT_FAILURES
    spec = SPEC.replace("n: [1, 2, 3, 4, 5, 6]", f"n: {list(range(tiles))}")
    url = seaweedfs_s3.url()
    reach(seaweedfs_s3, seaweedfs_s3.endpoint, monkeypatch)
    assert run("build", project_dir=machine(tmp_path / "a", url, spec).root).code == 0
    billed = api.billed_images
    records = lambda verb, path: verb == "GET" and "/records/" in path  # noqa: E731
    with RefusingProxy(seaweedfs_s3.endpoint, records, status=503, code="SlowDown") as server:
        reach(seaweedfs_s3, server.endpoint, monkeypatch)
        result = run("build", "--json", project_dir=machine(tmp_path / "b", url, spec).root)
    assert result.code == 0, result.err
    assert json.loads(result.out)["counts"] == {"generated": tiles}
    assert api.billed_images == billed + tiles
    assert result.err.count("cannot be used") == 1, result.err
    assert f"{OBJECT_FAILURES} objects failed in a row" in result.err
    # Each record read once, with the client's retries (3 tries at most), before any
    # image was paid; a store still trusted would read each again to share the result.
    assert len(set(server.refused)) == tiles
    assert len(server.refused) <= 3 * tiles, server.refused


def test_a_write_the_server_fails_stays_local_and_the_rest_is_shared(
    tmp_path: Path, run: Any, api: Any, seaweedfs_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first record machine A shares answers 500, retries included: that result stays
    in A's cache, the other five are shared, and machine C pays only for the one."""
    url = seaweedfs_s3.url()
    first: list[str] = []

    def first_record(verb: str, path: str) -> bool:
        if verb != "PUT" or "/records/" not in path:
            return False
        if not first:
            first.append(path)
        return path == first[0]

    with RefusingProxy(seaweedfs_s3.endpoint, first_record, status=500, code="InternalError") as s:
        reach(seaweedfs_s3, s.endpoint, monkeypatch)
        result = run("build", "--concurrency", "1", project_dir=machine(tmp_path / "a", url).root)
    assert result.code == 0, result.err
    assert s.refused, "the first record was offered"
    assert "failed to take an object (HTTP 500 InternalError)" in result.err
    assert "cannot be used" not in result.err
    assert len(objects(seaweedfs_s3, url, "records")) == 5
    billed = api.billed_images
    reach(seaweedfs_s3, seaweedfs_s3.endpoint, monkeypatch)
    c = run("build", "--json", project_dir=machine(tmp_path / "c", url).root)
    assert c.code == 0, c.err
    assert json.loads(c.out)["counts"] == {"cached": 5, "generated": 1}
    assert api.billed_images == billed + 1


def _server_error(status: int, code: str) -> Exception:
    """An error as obstore words a server's answer (status line and S3 error body)."""
    return Exception(
        f"Generic S3 error: Error performing GET http://h/b/k: Server returned non-2xx status "
        f"code: {status} Error: <Error><Code>{code}</Code></Error>"
    )


def test_the_first_failing_object_is_named_and_verbose_logging_names_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One warning for a reason, naming the first object; at debug level (``-v``) a line
    for each; the same object failing again does not count towards the store's end."""
    failures = Failures("s3://team/x", "no bucket 'team'")
    with caplog.at_level(logging.DEBUG, logger="assetpipe.cache"):
        for path in ("x/records/a.json", "x/records/b.json", "x/records/a.json"):
            failures.read_failed(path, _server_error(500, "InternalError"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "the shared cache s3://team/x failed to give an object (HTTP 500 InternalError); each "
        "it fails to give is a miss, and the rest of the shared cache is still used (the "
        "first: x/records/a.json; -v names each)"
    ]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert [m.split(" failed on ")[1] for m in debug] == [
        "x/records/a.json (HTTP 500 InternalError)",
        "x/records/b.json (HTTP 500 InternalError)",
        "x/records/a.json (HTTP 500 InternalError)",
    ]
    assert failures.down is None, "two objects, one of them twice: not a down server"


def test_a_request_nothing_answers_is_said_with_its_cause() -> None:
    """Nothing listening: obstore's error, dump and URL, becomes the method, the retries
    and the operating system's word."""
    client = obstore.store.S3Store(
        "b",
        endpoint=closed_endpoint(),
        access_key_id="k",
        secret_access_key="s",
        region="us-east-1",
        client_options={"allow_http": True},
        retry_config={"max_retries": 1, "retry_timeout": timedelta(seconds=15)},
    )
    with pytest.raises(Exception, match="Error performing GET") as failed:
        obstore.get(client, "x/y")
    assert reason(failed.value) == (
        "GET failed after 1 retries: HTTP error: error sending request (Connection refused)"
    )
