"""The shared cache (see the threat model in docs/reliability.md) against real S3 servers:
moto and SeaweedFS.

Each test is a small team: machines are LocalStores in their own folders, each layered
over its own connection to one bucket prefix. No mocks: every request goes to a server
(the fixtures are in ``tests/s3servers.py``, loaded by conftest), or to a port where
nothing listens.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest
from s3servers import S3Server, closed_endpoint, run_moto
from store_kit import kept as stored_meta
from store_kit import layered, req, shared_store

from pipeline.errors import EXIT_USAGE, PipelineError, UsageError
from pipeline.hashing import sha256_bytes
from pipeline.store import (
    CacheRecord,
    LayeredStore,
    LocalStore,
    RemoteMode,
    RemoteUnavailable,
    ResultStore,
    S3SupportMissing,
)
from pipeline.store.shared_format import (
    MAX_RECORD_BYTES,
    SharedURL,
    blob_path,
    decode_record,
    encode_record,
    parse_url,
    record_path,
)

REQ = req("a")
KEY = REQ.key
META = {"request_id": "req_a", "cost_usd": 0.02, "model": "gpt-image-1"}
STORED = stored_meta(REQ, **META)
"""The metadata a store keeps for a result of ``REQ`` committed with ``META``."""


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's AWS settings: each store is given its server's."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


class Team:
    """Machines sharing one prefix of one server's bucket."""

    def __init__(self, server: S3Server, tmp_path: Path, **environ: str):
        self.server = server
        self.tmp_path = tmp_path
        self.url = server.url()
        self.environ = {**server.environ(), **environ}
        self.stores: list[LayeredStore] = []

    def machine(self, name: str, mode: RemoteMode = "read-write", **environ: str) -> LayeredStore:
        """A machine with an empty local cache, layered over the shared prefix."""
        local = LocalStore(self.tmp_path / name / "cache")
        store = layered(local, self.url, mode, {**self.environ, **environ})
        self.stores.append(store)
        return store

    @property
    def root(self) -> str:
        return f"{parse_url(self.url).prefix}/assetpipe-v1"

    def objects(self) -> dict[str, tuple[int, str | None]]:
        """Every object this team's prefix holds."""
        return self.server.objects(self.root)

    def put(self, name: str, data: bytes) -> None:
        """Write an object below the team's layout root, as a tamperer would."""
        obstore.put(self.server.raw(), f"{self.root}/{name}", data)

    def close(self) -> None:
        for store in self.stores:
            store.close()


@pytest.fixture
def team(s3_server: S3Server, tmp_path: Path) -> Iterator[Team]:
    """A team on each server in turn."""
    shared = Team(s3_server, tmp_path)
    yield shared
    shared.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# -- what machines share ----------------------------------------------------------------------


def test_machine_b_gets_machine_a_result_with_no_writes(team: Team) -> None:
    """A result machine A committed comes to machine B byte for byte, with the same
    record; B reads without writing a single object, and keeps a local copy."""
    a = team.machine("a")
    record = a.commit(REQ, b"delivered", b"as returned", META)
    assert record == CacheRecord(sha256_bytes(b"delivered"), sha256_bytes(b"as returned"), STORED)
    before = team.objects()
    assert set(before) == {
        f"{team.root}/{record_path(KEY)}",
        f"{team.root}/{blob_path(record.blob)}",
        f"{team.root}/{blob_path(str(record.original))}",
    }
    b = team.machine("b")
    assert b.lookup(REQ) == record
    assert b.local.lookup(REQ) is None, "a lookup (plan) downloads nothing"
    assert b.get(REQ) == (record, b"delivered")
    assert b.read_blob(str(record.original)) == b"as returned"
    assert team.objects() == before
    assert b.local.get(REQ) == (record, b"delivered")
    assert b.local.read_blob(str(record.original)) == b"as returned"


def test_stores_meet_the_protocol_and_count_both_tiers(team: Team) -> None:
    """Both stores are ResultStores; ``tiers`` counts the local folder and the bucket."""
    a = team.machine("a")
    assert isinstance(a, ResultStore)
    assert isinstance(a.remote, ResultStore)
    a.commit(REQ, b"one", None, META)
    a.commit(req("b"), b"two!")
    local, shared = a.tiers()
    assert (local.tier, local.stats) == ("local", shared.stats)
    assert (shared.tier, shared.where, shared.mode) == ("shared", team.url, "read-write")
    assert shared.stats is not None
    assert (shared.stats.entries, shared.stats.blobs, shared.stats.bytes) == (2, 2, 7)


def test_the_first_writer_wins_and_the_loser_adopts_its_bytes(team: Team) -> None:
    """Two machines paid for one key: the second gets the first one's record, replaces
    its own local result by the first one's bytes, and uploads nothing of its own."""
    first = team.machine("first").commit(REQ, b"first image", None, META)
    second = team.machine("second")
    kept = second.commit(REQ, b"second image", None, {"request_id": "req_b"})
    assert kept == first
    assert second.local.get(REQ) == (first, b"first image")
    blobs = {name.rpartition("/")[2] for name in team.objects() if "/blobs/" in name}
    assert blobs == {first.blob}


def test_read_only_mode_writes_no_object(team: Team) -> None:
    """A read-only machine keeps what it pays for locally and writes nothing shared, but
    reads what others shared."""
    shared = team.machine("ci").commit(REQ, b"from ci")
    before = team.objects()
    laptop = team.machine("laptop", "read-only")
    record = laptop.commit(req("c"), b"laptop's own", b"laptop original", META)
    assert laptop.local.get(req("c")) == (record, b"laptop's own")
    assert team.objects() == before
    assert laptop.get(REQ) == (shared, b"from ci")
    assert team.objects() == before
    with pytest.raises(RemoteUnavailable, match="read-only"):
        laptop.remote.commit(req("d"), b"x")


def test_the_layered_store_keeps_the_store_contract(team: Team) -> None:
    """What every store does (tests/test_store_protocol.py), through both tiers: an
    original equal to the delivered bytes is not named, misses are None, metadata no
    record may hold is a ValueError that leaves nothing behind, anywhere."""
    a = team.machine("a")
    assert a.commit(REQ, b"same", b"same") == CacheRecord(
        sha256_bytes(b"same"), None, stored_meta(REQ)
    )
    assert a.lookup(req("b")) is None
    assert a.get(req("b")) is None
    assert a.read_blob(sha256_bytes(b"absent")) is None
    assert a.read_blob("../../etc/passwd") is None
    before = team.objects()
    with pytest.raises(ValueError, match="is not what a record may hold"):
        a.commit(req("c"), b"x", None, {"cost_usd": "1.00"})
    assert a.lookup(req("c")) is None
    assert team.objects() == before


# -- untrusted bucket contents ----------------------------------------------------------------


def test_a_tampered_blob_is_a_miss_with_a_warning(
    team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes that do not hash to their name are refused: B misses (and would pay
    again), never delivers them, and copies nothing locally."""
    record = team.machine("a").commit(REQ, b"the real image")
    team.put(blob_path(record.blob), b"something else")
    b = team.machine("b")
    assert b.get(REQ) is None
    assert b.read_blob(record.blob) is None
    assert b.local.lookup(REQ) is None
    assert f"shared cache image {record.blob[:12]} is corrupt" in " ".join(warnings_of(caplog))


X = sha256_bytes(b"x")
WELL = stored_meta(REQ)
"""The metadata of a well-formed record of ``REQ``: planted records keep it unless their
metadata is what they test."""


@pytest.mark.parametrize(
    "planted",
    [
        {"format": 1, "key": KEY, "blob": "../../victim", "original": None, "meta": WELL},
        {"format": 1, "key": KEY, "blob": X, "original": "/etc/pw", "meta": WELL},
        {"format": 1, "key": req("b").key, "blob": X, "original": None, "meta": WELL},
        {"format": 2, "key": KEY, "blob": X, "original": None, "meta": WELL},
        {"format": 1, "key": KEY, "blob": X, "meta": stored_meta(REQ, cost_usd="free")},
        "[" * 100_000,
    ],
    ids=["blob-path", "original-path", "other-key", "other-format", "bad-meta", "deep"],
)
def test_a_planted_record_is_refused(
    team: Team, caplog: pytest.LogCaptureFixture, planted: object
) -> None:
    """A record naming a path, stored under another key, of another format, with
    metadata of the wrong types or nested to exhaust the parser, is a miss with a
    warning, even though the bytes it names are there."""
    team.machine("a").commit(req("other"), b"x")
    body = planted if isinstance(planted, str) else json.dumps(planted)
    team.put(record_path(KEY), body.encode())
    b = team.machine("b")
    assert b.lookup(REQ) is None
    assert b.get(REQ) is None
    assert f"shared cache entry {KEY[:12]} is unreadable" in warnings_of(caplog)[0]


@pytest.mark.parametrize("request_kept", ["another-request", "no-request"])
def test_a_record_not_made_from_its_request_is_refused(
    team: Team, caplog: pytest.LogCaptureFixture, request_kept: str
) -> None:
    """A shared record under ``KEY`` that names ``KEY`` and a blob that is there, but whose
    stored request does not hash to ``KEY`` (another request's record copied under it, or
    one keeping no request at all), is a miss with a warning: B never delivers it nor
    copies it locally, and the record it was copied from still reads back."""
    theirs = req("theirs")
    record = team.machine("a").commit(theirs, b"their image", None, META)
    copied = json.loads(encode_record(theirs.key, record))
    copied["key"] = KEY
    if request_kept == "no-request":
        del copied["meta"]["request"]
    else:
        assert copied["meta"]["request"] == dict(theirs.payload)
    team.put(record_path(KEY), json.dumps(copied).encode())
    b = team.machine("b")
    assert b.lookup(REQ) is None
    assert b.get(REQ) is None
    assert b.local.lookup(REQ) is None
    assert warnings_of(caplog) == [
        f"shared cache entry {KEY[:12]} is unreadable or was not made from its request; ignoring it"
    ]
    assert b.get(theirs) == (record, b"their image")


def test_records_are_capped_before_parsing_and_carry_no_secrets() -> None:
    """A record larger than the cap is not parsed; a stored record holds blob names and
    metadata only."""
    record = CacheRecord(sha256_bytes(b"x"), None, STORED)
    body = encode_record(KEY, record)
    assert json.loads(body) == {
        "format": 1,
        "key": KEY,
        "blob": record.blob,
        "original": None,
        "meta": STORED,
    }
    assert decode_record(KEY, body) == record
    padded = body[:-1] + b" " * MAX_RECORD_BYTES + b"}"
    assert json.loads(padded) == json.loads(body)
    assert decode_record(KEY, padded) is None


def test_an_oversized_blob_is_not_downloaded(
    team: Team, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob over the size cap is a miss with a warning."""
    record = team.machine("a").commit(REQ, b"twenty bytes of data")
    monkeypatch.setattr("pipeline.store.remote.MAX_BLOB_BYTES", 10)
    b = team.machine("b")
    assert b.get(REQ) is None
    assert warnings_of(caplog) == [
        f"image {record.blob[:12]} in the shared cache is over 10 bytes; ignoring it",
        f"shared cache entry {KEY[:12]} has no usable image; ignoring it",
    ]


def test_a_damaged_record_is_replaced_by_the_next_writer(
    team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    """A record that cannot be read is replaced (conditionally on its ETag) by the next
    writer, whose result then reaches everyone."""
    team.put(record_path(KEY), b"not json")
    record = team.machine("a").commit(REQ, b"repaired", None, META)
    assert f"replacing the damaged shared cache entry {KEY[:12]}" in warnings_of(caplog)
    assert team.machine("b").get(REQ) == (record, b"repaired")


# -- a remote that fails ----------------------------------------------------------------------


def test_a_down_remote_is_one_warning_and_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the endpoint: every read misses, every commit keeps the local
    result, and the user is told once."""
    environ = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    environ["AWS_ENDPOINT_URL"] = closed_endpoint()
    store = layered(LocalStore(tmp_path / "cache"), "s3://shared/team", environ=environ)
    assert store.lookup(REQ) is None
    assert store.get(REQ) is None
    record = store.commit(REQ, b"paid for", None, META)
    assert store.commit(req("b"), b"also paid") == CacheRecord(
        sha256_bytes(b"also paid"), None, stored_meta(req("b"))
    )
    assert store.get(REQ) == (record, b"paid for")
    warnings = warnings_of(caplog)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("the shared cache s3://shared/team cannot be used (")
    assert store.tiers()[1].stats is None


def test_a_remote_that_goes_down_mid_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Results shared before the server stopped stay local; after it, reads miss and
    commits stay local, with a warning."""
    with run_moto() as server:
        url = server.url()
        store = layered(LocalStore(tmp_path / "cache"), url, environ=server.environ())
        before = store.commit(REQ, b"before")
    assert store.get(REQ) == (before, b"before")
    assert store.get(req("b")) is None
    after = store.commit(req("c"), b"after")
    assert store.local.get(req("c")) == (after, b"after")
    assert any("cannot be used" in w for w in warnings_of(caplog))


def test_a_remote_that_refuses_writes(
    seaweedfs_s3: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials that may only read: commits stay local with one warning, reads
    still come from the shared cache."""
    team = Team(seaweedfs_s3, tmp_path)
    shared = team.machine("ci").commit(REQ, b"from ci")
    assert seaweedfs_s3.reader is not None
    key, secret = seaweedfs_s3.reader
    reader = team.machine("reader", AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    before = team.objects()
    for n in range(3):
        record = reader.commit(req(str(n)), b"mine %d" % n)
        assert reader.local.get(req(str(n))) == (record, b"mine %d" % n)
    assert team.objects() == before
    assert reader.get(REQ) == (shared, b"from ci")
    warnings = warnings_of(caplog)
    assert len(warnings) == 1, warnings
    assert "refused a write (HTTP 403 AccessDenied)" in warnings[0]
    team.close()


def test_wrong_credentials_are_a_warning_and_misses(
    seaweedfs_s3: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A secret the server does not know: reads miss and commits stay local."""
    team = Team(seaweedfs_s3, tmp_path)
    team.machine("ci").commit(REQ, b"from ci")
    wrong = team.machine("wrong", AWS_SECRET_ACCESS_KEY="not-the-secret")
    assert wrong.get(REQ) is None
    record = wrong.commit(req("b"), b"paid")
    assert wrong.local.get(req("b")) == (record, b"paid")
    assert warnings_of(caplog) == [
        f"the shared cache {team.url} cannot be used "
        "(HTTP 403 SignatureDoesNotMatch); going on without it"
    ]
    assert "not-the-secret" not in caplog.text
    team.close()


def test_credentials_that_may_not_list_still_share(
    seaweedfs_s3: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A key that may read and write objects but not list the bucket (a minimal policy)
    shares results as well: a forbidden listing says nothing about the objects, and each
    machine says once that it cannot tell a missing image from a forbidden one."""
    assert seaweedfs_s3.unlisted is not None
    key, secret = seaweedfs_s3.unlisted
    team = Team(seaweedfs_s3, tmp_path, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    a = team.machine("a")
    assert a.get(REQ) is None
    record = a.commit(REQ, b"shared without listing", None, META)
    assert team.machine("b").get(REQ) == (record, b"shared without listing")
    said = warnings_of(caplog)
    assert len(said) == 2 and all("refused to list its prefix" in w for w in said)
    assert "HTTP 403 AccessDenied" in str(a.tiers()[1].problem)
    team.close()


# -- many writers -----------------------------------------------------------------------------


def test_twenty_concurrent_writers_agree_on_one_image(
    seaweedfs_s3: S3Server, tmp_path: Path
) -> None:
    """Twenty machines commit different bytes under one key at once: one record object
    is left, and every machine's commit returns it and delivers its bytes locally.

    On SeaweedFS only: moto's conditional create is a check-then-put (``If-None-Match``
    is checked before the object is stored, without a lock), so concurrent creates there
    can both succeed; the sequential race test above runs on both servers."""
    team = Team(seaweedfs_s3, tmp_path)
    machines = [team.machine(f"m{i}") for i in range(20)]
    images = [b"image of machine %d" % i for i in range(20)]
    results: list[CacheRecord | None] = [None] * 20
    start = threading.Barrier(20)

    def write(i: int) -> None:
        start.wait()
        results[i] = machines[i].commit(REQ, images[i], None, {"request_id": f"req_{i}"})

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = {r.blob for r in results if r is not None}
    assert len(winners) == 1, winners
    winner = next(r for r in results if r is not None)
    assert all(r == winner for r in results)
    winning_bytes = images[[sha256_bytes(i) for i in images].index(winner.blob)]
    records = [n for n in team.objects() if "/records/" in n]
    assert records == [f"{team.root}/{record_path(KEY)}"]
    for machine in machines:
        assert machine.local.get(REQ) == (winner, winning_bytes)
    assert team.machine("late").get(REQ) == (winner, winning_bytes)
    team.close()


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://bucket/x", "must be one of s3://bucket/prefix, gs://bucket/prefix"),
        ("s3://AKIA:secret@bucket/x", "must not hold credentials"),
        ("s3://b/x", "is not a bucket name"),
        ("s3://bucket/../x", "cannot be part of a prefix"),
        ("s3://bucket/a\x1b[31m", "cannot be part of a prefix"),
    ],
)
def test_a_bad_url_is_a_usage_error(url: str, message: str) -> None:
    """A URL that is not s3://bucket/prefix is a usage error that echoes no secret and no
    control character."""
    with pytest.raises(UsageError, match=message) as info:
        shared_store(url, {})
    assert "secret" not in str(info.value)
    assert "\x1b" not in str(info.value)


def test_urls_name_a_bucket_and_a_prefix() -> None:
    """Prefixes are normalised (no empty segments); a bare bucket has none."""
    assert parse_url("s3://team-cache/assets//v2/") == SharedURL("s3", "team-cache", "assets/v2")
    assert parse_url("s3://team-cache") == SharedURL("s3", "team-cache", "")
    assert shared_store("s3://team-cache/x/", {}).root == "x/assetpipe-v1"


def test_without_obstore_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """With obstore missing, using a shared cache is an error the CLI prints (exit 2)
    saying what to install; the store package itself imports without it."""
    monkeypatch.setitem(sys.modules, "obstore", None)
    monkeypatch.delitem(sys.modules, "pipeline.store.remote")
    with pytest.raises(S3SupportMissing, match=r"pip install 'assetpipe\[s3\]'") as info:
        importlib.import_module("pipeline.store.remote")
    assert isinstance(info.value, PipelineError)
    assert info.value.exit_code == EXIT_USAGE
    code = "import sys, pipeline.store, pipeline.store.layered; print('obstore' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
