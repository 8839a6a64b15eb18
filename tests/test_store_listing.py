"""Listing the shared cache (``cache stats``, and the first request of every store) is
read by assetpipe, page by page and capped, never whole into memory.

obstore reads a listing answer whole before it parses it: against an endpoint whose
answer never ends, a process grew to gigabytes, and one whose address space was capped
aborted. Hostile endpoints are threads of this process (``tests/s3servers.py``); that the
requests assetpipe signs itself are the ones real servers accept is checked on moto and
SeaweedFS, which verifies signatures.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import time

import obstore
import pytest
from processes import PINNED_TODAY
from s3servers import HostileS3, S3Server, bucket_client, closed_endpoint, run_hostile_s3
from store_kit import shared_store

from pipeline.store import CacheStats, RemoteUnavailable
from pipeline.store import s3_listing as remote_module
from pipeline.store.s3_listing import LIST_PAGE_BYTES

ADDRESS_SPACE = 2 * 1024**3
PEAK_RSS_BOUND = 1024**3
"""What the whole CLI may have resident after an endless listing: a fraction of what it
would take to buffer one (the cap on a page is 8 MiB)."""
CAPPED_CLI = (
    "import resource, sys\n"
    f"resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))\n"
    "from pipeline.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(f'peak_rss_kib={peak}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)
"""The assetpipe command line with its address space capped at 2 GiB, saying its peak RSS
once the command is done (it does not when it is killed or aborts)."""
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's AWS settings: each store is given its server's."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def assert_hung_up_early(hostile: HostileS3) -> None:
    """The client hung up on every hostile answer long before its end: what it sent past
    the cap only filled the sockets' buffers."""
    assert hostile.answers, "no listing was answered"
    for sent, hung_up in hostile.answers:
        assert hung_up, f"the client read all {sent} bytes"
        assert sent < LIST_PAGE_BYTES + 64 * MIB, sent


# -- a hostile endpoint -----------------------------------------------------------------------


@pytest.mark.parametrize("probe_ok", [False, True], ids=["first-listing", "stats-listing"])
def test_an_endless_listing_ends_cache_stats_with_a_clear_message_in_bounded_memory(
    project, probe_ok
):
    """``cache stats`` against an endpoint whose listing answer never ends, in a process
    whose address space is capped at 2 GiB: it exits 0 saying the listing was over the
    cap (for the store's first listing, or for the count's after a sane one), hangs up
    after about 8 MiB, and stays far under the cap (before, it aborted past 2 GiB)."""
    project.gen({"assetpipe.yaml": "remote_cache:\n  url: s3://shared/team\n"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with run_hostile_s3("endless", probe_ok=probe_ok) as hostile:
        proc = subprocess.run(
            [sys.executable, "-c", CAPPED_CLI, "cache", "stats", "--project", str(project.root)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**env, **hostile.environ(), "ASSETPIPE_TODAY": PINNED_TODAY},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    shared = proc.stdout.splitlines()[-1]
    why = "cannot be listed" if probe_ok else "cannot be used"
    assert shared.startswith("shared s3://shared/team (read-write): cannot be counted ("), shared
    assert f"{why} (a listing answer is over 8 MiB; it was not read further)" in shared
    assert_hung_up_early(hostile)
    assert len(hostile.listings) == 1 + probe_ok
    peak = re.search(r"peak_rss_kib=(\d+)", proc.stderr)
    assert peak is not None, proc.stderr[-3000:]
    assert int(peak.group(1)) * 1024 < PEAK_RSS_BOUND


def test_an_endless_first_listing_is_one_warning_and_the_store_goes_unused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A build's store lists once before its first read: an endless answer there is one
    warning, and the store is asked nothing more (reads miss)."""
    with run_hostile_s3("endless") as hostile:
        store = shared_store(hostile.url(), hostile.environ())
        assert store.read_blob(hashlib.sha256(b"x").hexdigest()) is None
        assert store.read_blob(hashlib.sha256(b"y").hexdigest()) is None
    assert warnings_of(caplog) == [
        "the shared cache s3://shared/team cannot be used (a listing answer is over 8 MiB; "
        "it was not read further); going on without it"
    ]
    assert len(hostile.listings) == 1
    assert_hung_up_early(hostile)


def test_a_listing_that_pages_forever_stops_at_the_page_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every page says another follows: the count stops after LIST_PAGES pages with a
    clear error, having asked for one page more than that and no other."""
    monkeypatch.setattr(remote_module, "LIST_PAGES", 5)
    monkeypatch.setattr(remote_module, "LIST_PAGE_KEYS", 10)
    with run_hostile_s3("pages", probe_ok=True) as hostile:
        store = shared_store(hostile.url(), hostile.environ())
        with pytest.raises(RemoteUnavailable) as info:
            store.stats()
    assert str(info.value) == (
        "the shared cache s3://shared/team cannot be listed "
        "(a listing is over 5 pages; it was not read further)"
    )
    pages = hostile.listings[1:]
    assert len(pages) == 6
    assert [p.get("continuation-token") for p in pages] == [None] + [
        f"page+{n}/=" for n in range(2, 7)
    ]
    assert {p["max-keys"] for p in pages} == {"10"}


@pytest.mark.parametrize("mode", ["trickle-body", "trickle-headers"])
def test_a_trickled_listing_is_cut_off_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """An answer of one byte at a time (so no single read times out), in its body or
    already in its headers, is cut off when the page's time is up."""
    monkeypatch.setattr(remote_module, "LIST_PAGE_SECONDS", 1.0)
    with run_hostile_s3(mode, probe_ok=True) as hostile:
        store = shared_store(hostile.url(), hostile.environ())
        started = time.monotonic()
        with pytest.raises(RemoteUnavailable, match=r"a listing answer took over 1 s"):
            store.stats()
        took = time.monotonic() - started
    assert took < 30, took
    assert_hung_up_early(hostile)


# -- real servers accept what assetpipe signs -------------------------------------------------


def plant(server: S3Server, root: str) -> CacheStats:
    """Records, blobs and a stray object under ``root``; what a count must find."""
    raw = server.raw()
    for n in range(3):
        obstore.put(raw, f"{root}/records/{n:064x}.json", b"{}")
    blobs = [b"one", b"three", b"seventeen bytes!!"]
    for data in blobs:
        obstore.put(raw, f"{root}/blobs/{hashlib.sha256(data).hexdigest()}", data)
    obstore.put(raw, f"{root}/blobs/not-a-blob", b"stray")
    return CacheStats(entries=3, blobs=3, bytes=sum(map(len, blobs)))


def test_counting_pages_through_a_real_server(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two names: the count follows every continuation token the server gives
    (signed as it wants them) and finds what was planted, as obstore lists it."""
    monkeypatch.setattr(remote_module, "LIST_PAGE_KEYS", 2)
    url = s3_server.url()
    store = shared_store(url, s3_server.environ())
    planted = plant(s3_server, store.root)
    assert len(s3_server.objects(store.root)) == 7
    assert store.stats() == planted


def test_a_prefix_with_signs_is_signed_as_the_server_wants(s3_server: S3Server) -> None:
    """A prefix with characters that the signature must encode is listed whole."""
    url = s3_server.url(f"t-{os.urandom(4).hex()}=a+b~c")
    store = shared_store(url, s3_server.environ())
    planted = plant(s3_server, store.root)
    assert store.stats() == planted


def test_a_session_token_goes_with_the_listing(
    seaweedfs_s3: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """AWS_SESSION_TOKEN is sent and signed with the listing: SeaweedFS, which knows no
    such session, refuses it as it refuses obstore's own requests with that token."""
    environ = {**seaweedfs_s3.environ(), "AWS_SESSION_TOKEN": "a-session-token"}
    url = seaweedfs_s3.url()
    store = shared_store(url, environ)
    with pytest.raises(RemoteUnavailable) as info:
        store.stats()
    assert "(HTTP 403 InvalidAccessKeyId)" in str(info.value)
    with pytest.raises(Exception, match="InvalidAccessKeyId"):
        obstore.list_with_delimiter(
            bucket_client(
                seaweedfs_s3.endpoint,
                seaweedfs_s3.bucket,
                seaweedfs_s3.access_key,
                seaweedfs_s3.secret_key,
                session_token="a-session-token",
            )
        )


def test_a_signature_seaweedfs_refuses_is_the_same_warning(
    seaweedfs_s3: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A secret the server does not know: the first listing is refused with the same
    warning as before assetpipe signed it, and the secret is in no message."""
    url = seaweedfs_s3.url()
    wrong = shared_store(url, seaweedfs_s3.environ(secret="not-the-secret"))
    assert wrong.read_blob(hashlib.sha256(b"x").hexdigest()) is None
    assert warnings_of(caplog) == [
        f"the shared cache {url} cannot be used "
        "(HTTP 403 SignatureDoesNotMatch); going on without it"
    ]
    assert "not-the-secret" not in caplog.text


def test_credentials_that_may_not_list_still_read_and_say_why_they_cannot_count(
    seaweedfs_s3: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A key that may read but not list: reads go on (the 403 says nothing about the
    objects), one warning says that a missing image and a forbidden one now look alike,
    and the count says it was refused."""
    assert seaweedfs_s3.unlisted is not None
    key, secret = seaweedfs_s3.unlisted
    url = seaweedfs_s3.url()
    admin = shared_store(url, seaweedfs_s3.environ())
    data = b"shared without listing"
    sha = hashlib.sha256(data).hexdigest()
    obstore.put(seaweedfs_s3.raw(), f"{admin.root}/blobs/{sha}", data)
    store = shared_store(url, seaweedfs_s3.environ(key, secret))
    assert store.read_blob(sha) == data
    with pytest.raises(RemoteUnavailable, match=r"cannot be listed \(HTTP 403 AccessDenied\)"):
        store.stats()
    assert warnings_of(caplog) == [
        f"the shared cache {url} refused to list its prefix (HTTP 403 AccessDenied); lookups "
        "go on, but a missing image and a forbidden one look alike: if these credentials "
        "cannot read objects either, every lookup is a miss and images the bucket holds are "
        "paid for again"
    ]
    assert store.health() is not None and "refused to list its prefix" in store.health()


def test_a_missing_bucket_and_a_closed_port_are_said_plainly(
    seaweedfs_s3: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    """No such bucket, and nothing listening: one warning each, in plain words."""
    environ = seaweedfs_s3.environ()
    absent = shared_store("s3://no-such-bucket/team", environ)
    assert absent.read_blob(hashlib.sha256(b"x").hexdigest()) is None
    down = shared_store("s3://shared/team", {**environ, "AWS_ENDPOINT_URL": closed_endpoint()})
    assert down.read_blob(hashlib.sha256(b"x").hexdigest()) is None
    assert warnings_of(caplog) == [
        "the shared cache s3://no-such-bucket/team cannot be used (no bucket "
        "'no-such-bucket'); going on without it",
        "the shared cache s3://shared/team cannot be used (list request failed: "
        "[Errno 111] Connection refused); going on without it",
    ]
