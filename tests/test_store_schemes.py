"""Shared caches by URL scheme: ``s3://``, ``gs://``, ``az://`` and ``file://``, one table in
``pipeline.api.stores``.

A shared folder is used for real (a folder under tmp_path, two machines over it). No GCS
or Azure server runs offline, so ``gs://`` and ``az://`` are checked as far as: the URL is
parsed, the right obstore client is built from the environment, nothing is asked of any
network while it is built, and what is missing is said by name. Their one request here
goes to a server of this test on 127.0.0.1 that answers 404 to everything.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from obstore.store import AzureStore, GCSStore, LocalStore
from store_kit import req, shared_store

from pipeline.api.stores import REMOTES, open_remote
from pipeline.errors import SpecError, UsageError
from pipeline.hashing import sha256_bytes
from pipeline.settings import resolve_settings
from pipeline.store import LayeredStore, RemoteUnavailable
from pipeline.store import LocalStore as CacheFolder
from pipeline.store.shared_format import URL_FORMS, SharedURL, parse_url
from pipeline.store.unusable import UnusableStore

CLOUD_PREFIXES = ("GOOGLE_", "AZURE_STORAGE_", "AZURE_CLIENT_", "AZURE_TENANT_", "AZURE_USE_")


@pytest.fixture(autouse=True)
def no_cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's Google or Azure settings (obstore reads them too)."""
    for name in list(os.environ):
        if name.startswith(CLOUD_PREFIXES) or name == "AZURE_FEDERATED_TOKEN_FILE":
            monkeypatch.delenv(name)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


class NotFound(BaseHTTPRequestHandler):
    """Answers every request 404 and remembers its path."""

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on 127.0.0.1 that answers 404 to everything it is asked."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def endpoint(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


# -- URLs -------------------------------------------------------------------------------------


def test_the_table_serves_every_url_form() -> None:
    """Every URL form settings accept has its row in the table, and no other."""
    assert set(REMOTES) == set(URL_FORMS) == {"s3", "gs", "az", "file"}


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("gs://team-assets/game//v2/", SharedURL("gs", "team-assets", "game/v2")),
        ("az://assets/team", SharedURL("az", "assets", "team")),
        ("S3://bucket", SharedURL("s3", "bucket", "")),
        ("file:///srv/team%20cache/", SharedURL("file", "/srv/team cache", "")),
        ("file://localhost/srv/x", SharedURL("file", "/srv/x", "")),
    ],
)
def test_urls_of_every_scheme_are_parsed(url: str, parsed: SharedURL) -> None:
    """Buckets, containers and folders with their prefixes, normalised."""
    assert parse_url(url) == parsed


@pytest.mark.parametrize("url", ["ftp://host/x", "http://bucket/x", "bucket/x", "gcs://b/x"])
def test_an_unknown_scheme_lists_the_ones_that_work(url: str) -> None:
    """Anything but the four schemes is a usage error naming them."""
    with pytest.raises(UsageError) as info:
        parse_url(url)
    assert str(info.value) == (
        "the shared cache must be one of s3://bucket/prefix, gs://bucket/prefix, "
        f"az://container/prefix, file:///absolute/folder; not {url!r}"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file://server/share", r"does not name a folder of this machine: write file:///"),
        ("file:relative", r"must be one of"),
        ("file:///srv/../etc", r"no \. or \.\. segments"),
        ("file:///srv/%0a", r"no \. or \.\. segments, no control characters"),
        ("file:///", r"is the root folder"),
        ("az://container@account/x", r"must not hold credentials or an account"),
        ("gs://b/x", r"'b' in 'gs://b/x' is not a bucket name"),
        ("az://c/x", r"'c' in 'az://c/x' is not a container name"),
    ],
)
def test_a_bad_url_says_what_would_be_right(url: str, message: str) -> None:
    """A folder URL must be absolute, of this machine, without . or ..; no URL holds an
    account or credentials."""
    with pytest.raises(UsageError, match=message):
        parse_url(url)


def test_settings_take_every_scheme_and_point_at_the_line_of_a_bad_one(project) -> None:
    """``remote_cache.url`` accepts gs://, az:// and file://; an unknown scheme is an error
    at its line of assetpipe.yaml, and from the environment names the variable."""
    project.gen({"assetpipe.yaml": "provider: preview\nremote_cache:\n  url: gs://assets/team\n"})
    assert resolve_settings(project.root, {}, {}).remote_cache == "gs://assets/team"
    environ = {"ASSETPIPE_REMOTE_CACHE": "file:///srv/share"}
    assert resolve_settings(project.root, {}, environ).remote_cache == "file:///srv/share"
    project.gen({"assetpipe.yaml": "provider: preview\nremote_cache:\n  url: ftp://host/x\n"})
    with pytest.raises(SpecError, match="must be one of s3://bucket/prefix") as info:
        resolve_settings(project.root, {}, {})
    assert info.value.location is not None
    assert (info.value.location.line, info.value.location.column) == (3, 8)
    with pytest.raises(UsageError, match=r"^ASSETPIPE_REMOTE_CACHE: the shared cache must be"):
        resolve_settings(project.root, {}, {"ASSETPIPE_REMOTE_CACHE": "http://host/x"})


# -- gs:// and az:// --------------------------------------------------------------------------


def fake_google_key(server: ThreadingHTTPServer) -> str:
    """A service account key that sends GCS requests unsigned to ``server``."""
    fields = {"client_email": "", "private_key": "", "private_key_id": ""}
    return json.dumps({"disable_oauth": True, "gcs_base_url": endpoint(server), **fields})


def test_gs_builds_a_gcs_client_without_asking_the_network(
    loopback: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """gs:// is obstore's GCSStore, configured from the GOOGLE_* variables; building it
    sends nothing; its first request (the probe) is the one that goes out, and a 404 is
    said as a missing bucket."""
    environ = {
        "GOOGLE_SERVICE_ACCOUNT_KEY": fake_google_key(loopback),
        "GOOGLE_BASE_URL": endpoint(loopback),
    }
    store = shared_store("gs://team-assets/game", environ)
    assert isinstance(store.backend.client, GCSStore)
    assert store.backend.client.config["bucket"] == "team-assets"
    assert store.root == "game/assetpipe-v1"
    assert loopback.paths == []  # type: ignore[attr-defined]
    assert store.health() == (
        "the shared cache gs://team-assets/game cannot be used (no bucket 'team-assets'); "
        "going on without it"
    )
    asked = [p.split("?")[0] for p in loopback.paths]  # type: ignore[attr-defined]
    assert asked == ["/team%2Dassets"]  # the bucket, as obstore escapes it


def test_gs_without_credentials_knows_which_variables_to_name() -> None:
    """No GOOGLE_* credentials: the store is still built (Google's own machines serve
    credentials from their metadata server), and the variables are what it will name
    when the bucket cannot be read; with one set, it names none."""
    store = shared_store("gs://team-assets/game", {})
    assert isinstance(store.backend.client, GCSStore)
    assert store._anonymous == (
        "no Google credentials are set: GOOGLE_APPLICATION_CREDENTIALS (a key or workload "
        "identity file), GOOGLE_SERVICE_ACCOUNT_KEY or GOOGLE_SERVICE_ACCOUNT"
    )
    with_key = shared_store("gs://team-assets/game", {"GOOGLE_BEARER_TOKEN": "t"})
    assert with_key._anonymous is None


def test_a_google_key_file_that_is_not_there_is_said_without_a_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """GOOGLE_APPLICATION_CREDENTIALS naming a missing file: one warning saying so, and a
    store that misses and refuses writes."""
    missing = tmp_path / "nope.json"
    store = open_remote(
        "gs://team-assets/x", environ={"GOOGLE_APPLICATION_CREDENTIALS": str(missing)}
    )
    assert isinstance(store, UnusableStore)
    assert f"Unable to open service account file from {missing}" in store.health()
    assert store.get(req("a")) is None
    with pytest.raises(RemoteUnavailable):
        store.commit(req("a"), b"x")
    assert warnings_of(caplog) == [store.health()]


def test_az_without_an_account_names_the_variable(caplog: pytest.LogCaptureFixture) -> None:
    """az:// needs AZURE_STORAGE_ACCOUNT_NAME: without it the shared cache is unusable,
    said once by name, before any request."""
    store = open_remote("az://assets/team", environ={})
    assert isinstance(store, UnusableStore)
    assert store.health() == (
        "the shared cache az://assets/team cannot be used (AZURE_STORAGE_ACCOUNT_NAME is "
        "not set); going on without it"
    )
    assert warnings_of(caplog) == [store.health()]


def test_az_builds_an_azure_client_without_asking_the_network(
    loopback: ThreadingHTTPServer,
) -> None:
    """az:// is obstore's AzureStore for the account and key of the AZURE_STORAGE_*
    variables; building it sends nothing, and a 404 is said as a missing container."""
    environ = {
        "AZURE_STORAGE_ACCOUNT_NAME": "studio",
        "AZURE_STORAGE_ACCOUNT_KEY": "c2VjcmV0",
        "AZURE_STORAGE_ENDPOINT": f"{endpoint(loopback)}/studio",
    }
    store = shared_store("az://assets/team", environ)
    assert isinstance(store.backend.client, AzureStore)
    config = store.backend.client.config
    assert (config["account_name"], config["container_name"]) == ("studio", "assets")
    assert store._anonymous is None
    assert loopback.paths == []  # type: ignore[attr-defined]
    assert store.health() == (
        "the shared cache az://assets/team cannot be used (no container 'assets'); "
        "going on without it"
    )
    assert len(loopback.paths) == 1  # type: ignore[attr-defined]
    assert "c2VjcmV0" not in store.health()


def test_a_required_az_cache_without_an_account_stops_before_paying(project, run, api) -> None:
    """``required: true`` with AZURE_STORAGE_ACCOUNT_NAME unset: exit 2 naming it and what
    to check, no traceback; without ``required``, ``cache stats`` says it and exits 0."""
    project.gen({"assetpipe.yaml": "provider: openai\nremote_cache:\n  url: az://assets/team\n"})
    stats = run("cache", "stats")
    assert stats.code == 0, stats.err
    assert "AZURE_STORAGE_ACCOUNT_NAME is not set" in stats.out.splitlines()[-1]
    settings = project.root / "assetpipe.yaml"
    settings.write_text(settings.read_text() + "  required: true\n")
    project.gen({"specs/s.yaml": 'assets:\n  - id: a\n    prompt: "a stone"\n'})
    built = run("build")
    assert built.code == 2, built.err
    assert "AZURE_STORAGE_ACCOUNT_NAME is not set" in built.err
    assert api.count() == 0
    assert "check its account (AZURE_STORAGE_ACCOUNT_NAME)" in built.err
    assert "Traceback" not in built.err


# -- file:// ----------------------------------------------------------------------------------


@pytest.fixture
def share(tmp_path: Path) -> Path:
    folder = tmp_path / "team share"
    folder.mkdir()
    return folder


def machine(tmp_path: Path, name: str, share: Path) -> LayeredStore:
    return LayeredStore(CacheFolder(tmp_path / name), shared_store(share.as_uri(), {}))


def test_two_machines_share_through_a_folder(tmp_path: Path, share: Path) -> None:
    """A result machine A commits is in the folder's layout, and machine B gets it byte
    for byte and counts it; the first result committed under a key stays."""
    a, b = machine(tmp_path, "a", share), machine(tmp_path, "b", share)
    assert isinstance(a.remote.backend.client, LocalStore)
    record = a.commit(req("k"), b"pixels", b"as returned", {"request_id": "r"})
    layout = share / "assetpipe-v1"
    assert (layout / "records" / f"{req('k').key}.json").is_file()
    assert (layout / "blobs" / sha256_bytes(b"pixels")).read_bytes() == b"pixels"
    assert b.get(req("k")) == (record, b"pixels")
    assert b.commit(req("k"), b"other pixels") == record
    assert b.local.get(req("k")) == (record, b"pixels")
    shared = b.tiers()[1]
    assert (shared.where, shared.stats) == (share.as_uri(), shared.stats)
    assert shared.stats is not None and (shared.stats.entries, shared.stats.blobs) == (1, 2)


def test_a_link_planted_in_the_folder_is_never_followed(
    tmp_path: Path, share: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record that is a link to a file elsewhere is a miss with a warning, a blobs
    folder that is a link to elsewhere gets nothing written through it, and neither is
    counted."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret").write_text("not for the cache")
    records = share / "assetpipe-v1" / "records"
    records.mkdir(parents=True)
    (records / f"{req('k').key}.json").symlink_to(elsewhere / "secret")
    (share / "assetpipe-v1" / "blobs").symlink_to(elsewhere)
    a = machine(tmp_path, "a", share)
    assert a.get(req("k")) is None
    kept = a.commit(req("n"), b"paid")
    assert a.local.get(req("n")) == (kept, b"paid")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret"]
    said = warnings_of(caplog)
    assert (
        f"cache entry {req('k').key[:12]} in the shared cache is a symbolic link; ignoring it"
        in said
    )
    assert any(
        "blobs/" in w and "is a symbolic link; nothing is written through it" in w for w in said
    )


def test_a_damaged_record_in_a_folder_is_left_with_what_to_remove(
    tmp_path: Path, share: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder cannot replace a file conditionally on its ETag, so a damaged record is
    left (the result stays local) and the warning says which file to remove."""
    record = share / "assetpipe-v1" / "records" / f"{req('k').key}.json"
    record.parent.mkdir(parents=True)
    record.write_bytes(b"not json")
    a = machine(tmp_path, "a", share)
    kept = a.commit(req("k"), b"paid")
    assert a.local.get(req("k")) == (kept, b"paid")
    assert record.read_bytes() == b"not json"
    assert any(
        f"remove assetpipe-v1/records/{req('k').key}.json from {share.as_uri()}" in w
        for w in warnings_of(caplog)
    )


def test_a_folder_that_is_missing_or_a_link_is_unusable(tmp_path: Path, share: Path) -> None:
    """A folder that is not there is never created (a drive not mounted), and a folder
    that is a link is refused: each an unusable store that says why."""
    missing = open_remote((tmp_path / "unmounted").as_uri())
    assert isinstance(missing, UnusableStore)
    assert f"no folder {tmp_path / 'unmounted'} (a shared folder must exist" in missing.health()
    assert not (tmp_path / "unmounted").exists()
    link = tmp_path / "link"
    link.symlink_to(share)
    linked = open_remote(link.as_uri())
    assert isinstance(linked, UnusableStore)
    assert f"{link} is a symbolic link; name the folder it points to" in linked.health()


def test_a_folder_inside_the_project_cache_is_refused(project, run) -> None:
    """A file:// shared cache inside the project's .assetpipe folder is exit 2: clearing
    the local cache would delete it."""
    inside = project.root / ".assetpipe" / "team"
    inside.mkdir(parents=True)
    project.gen({"assetpipe.yaml": f"provider: openai\nremote_cache:\n  url: {inside.as_uri()}\n"})
    result = run("cache", "stats")
    assert result.code == 2, result.err
    assert "is inside this project's cache folder" in result.err
    assert "Traceback" not in result.err
