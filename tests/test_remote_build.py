"""The shared cache through the CLI (see the threat model in docs/reliability.md): a team's
machines on one bucket.

Every machine is a copy of the project with its own ``.assetpipe/`` and ``output/``; the
builds run the real CLI and the real SDK against the fake Images API, and the shared
cache is a real S3 server started by the test session (``tests/s3servers.py``): SeaweedFS,
or moto where a test stops the server. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps
from processes import ASSETPIPE, PINNED_TODAY
from runner_kit import direct_runner
from s3servers import S3Server, closed_endpoint, run_moto

from pipeline import api as assetpipe_api
from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.runner.paid import ADOPTED_NOTE
from pipeline.settings import resolve_settings
from pipeline.store import CacheRecord, LocalStore
from pipeline.testing import FakeClock, ScriptedProvider

SPEC = """
    assets:
      - id: "g{{ i }}"
        prompt: "Emblem number {{ i }}"
        matrix: {i: [1, 2, 3]}
        size: 1024x1024
        quality: low
        renditions:
          - {size: 64x64, format: webp}
      - id: winter
        prompt: "Emblem 1 in winter colors"
        size: 1024x1024
        quality: low
        edit: {images: [g1]}
    sheets:
      - id: strip
        assets: ["g*"]
"""
API_JOBS = 4
ALL_JOBS = 8  # 3 generations, 3 renditions, the edit and the sheet


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's AWS settings: each is given its server's."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


def use(server: S3Server, monkeypatch: pytest.MonkeyPatch, **override: str) -> str:
    """Point this process's AWS_* variables at ``server``; returns a fresh prefix URL."""
    for name, value in {**server.environ(), **override}.items():
        monkeypatch.setenv(name, value)
    return server.url()


def team_project(project: Any, url: str, extra: str = "") -> None:
    """The project a team shares: the real provider and the shared cache in assetpipe.yaml."""
    project.gen(
        {
            "specs/set.yaml": SPEC + extra,
            "assetpipe.yaml": f"provider: openai\nremote_cache:\n  url: {url}\n",
        }
    )


def machine(project: Any, tmp_path: Path, name: str) -> Path:
    """Another machine's checkout: the project's files, no cache, no output."""
    root = tmp_path / name
    shutil.copytree(project.root, root, ignore=shutil.ignore_patterns(".assetpipe", "output"))
    return root


def shas(root: Path) -> dict[str, str]:
    """sha256 of every delivered file (not the manifest, the gallery or its thumbnails)."""
    out = root / "output"
    return {
        p.relative_to(out).as_posix(): sha256_bytes(p.read_bytes())
        for p in sorted(out.rglob("*"))
        if p.is_file()
        and p.name not in {"manifest.json", "index.html"}
        and not any(part.startswith(".") for part in p.relative_to(out).parts)
    }


def statuses(root: Path) -> dict[str, str]:
    manifest = json.loads((root / "output/manifest.json").read_text("utf-8"))
    return {e["job"]: e["status"] for e in manifest["entries"]}


def plan_statuses(run: Any, root: Path, *args: str) -> dict[str, str]:
    result = run("plan", "--json", *args, project_dir=root)
    assert result.code == 0, result.err
    return {j["id"]: j["status"] for j in json.loads(result.out)["jobs"]}


def objects(server: S3Server, url: str) -> dict[str, tuple[int, str | None]]:
    return server.objects(url.removeprefix(f"s3://{server.bucket}/"))


# -- machines sharing ---------------------------------------------------------------------------


def test_machine_b_builds_what_machine_a_paid_for_with_no_request(
    project, run, api, seaweedfs_s3, monkeypatch, tmp_path
):
    """A builds and shares; B, with an empty cache, plans every job as cached and builds
    the same files, byte for byte, without a single request."""
    url = use(seaweedfs_s3, monkeypatch)
    team_project(project, url)
    built = run("build")
    assert built.code == 0, built.err
    assert api.billed_images == API_JOBS
    records = [n for n in objects(seaweedfs_s3, url) if "/records/" in n]
    assert len(records) == ALL_JOBS

    b = machine(project, tmp_path, "b")
    api.reset_counters()
    assert set(plan_statuses(run, b).values()) == {"cached"}
    rebuilt = run("build", project_dir=b)
    assert rebuilt.code == 0, rebuilt.err
    assert api.count() == 0
    assert set(statuses(b).values()) == {"cached"}
    assert shas(b) == shas(project.root)
    assert len(shas(b)) == ALL_JOBS + 1  # the sheet's atlas too
    assert "warning" not in rebuilt.err.lower()


def test_read_only_mode_reads_the_team_and_writes_no_object(
    project, run, api, seaweedfs_s3, monkeypatch, tmp_path
):
    """A laptop in read-only mode takes what the team shared and pays only for what is
    new, which it keeps locally: the bucket is not written."""
    url = use(seaweedfs_s3, monkeypatch)
    team_project(project, url)
    assert run("build").code == 0
    laptop = machine(project, tmp_path, "laptop")
    (laptop / "specs/mine.yaml").write_text(
        'assets:\n  - id: mine\n    prompt: "A laptop sketch"\n    quality: low\n', "utf-8"
    )
    before = objects(seaweedfs_s3, url)
    api.reset_counters()
    monkeypatch.setenv("ASSETPIPE_REMOTE_CACHE_MODE", "read-only")
    built = run("build", project_dir=laptop)
    assert built.code == 0, built.err
    assert [r.fields["prompt"] for r in api.requests] == ["A laptop sketch"]
    assert objects(seaweedfs_s3, url) == before
    assert statuses(laptop)["mine/mine"] == "generated"
    assert {s for j, s in statuses(laptop).items() if j.startswith("set/")} == {"cached"}


def test_an_image_that_cannot_be_decoded_is_never_shared(project, run, api, moto_s3, monkeypatch):
    """With a shared cache in read-write mode, every paid image is decoded before it is
    committed: one cut off in its pixels (its header whole) fails as a ``bad_response``
    and no object reaches the bucket, so no other machine is handed it."""
    url = use(moto_s3, monkeypatch)
    project.gen(
        {
            "specs/one.yaml": 'assets:\n  - id: one\n    prompt: "A cut"\n    quality: low\n',
            "assetpipe.yaml": f"provider: openai\nremote_cache:\n  url: {url}\n",
        }
    )
    whole = io.BytesIO()
    Image.effect_noise((1024, 1024), 64).convert("RGB").save(whole, "PNG", compress_level=1)
    api.image_bytes = whole.getvalue()[: len(whole.getvalue()) // 2]
    built = run("build")
    assert built.code == 1, built.err
    assert statuses(project.root) == {"one/one": "failed"}
    assert objects(moto_s3, url) == {}


def test_force_pays_again_and_keeps_the_new_image_local(
    project, run, api, seaweedfs_s3, monkeypatch
):
    """``--force`` reads the shared cache but shares nothing: the image paid for again is
    delivered here, and the shared cache keeps the first one for everyone else."""
    url = use(seaweedfs_s3, monkeypatch)
    team_project(project, url)
    assert run("build").code == 0
    first = shas(project.root)
    before = objects(seaweedfs_s3, url)
    api.reset_counters()
    forced = run("build", "--force", "--only", "set/g2")
    assert forced.code == 0, forced.err
    assert api.billed_images == 1
    assert objects(seaweedfs_s3, url) == before
    assert shas(project.root)["set/g2.png"] != first["set/g2.png"]


def test_free_preview_builds_never_touch_the_shared_cache(project, run, seaweedfs_s3, monkeypatch):
    """Placeholders are nobody's asset: a preview build shares nothing."""
    url = use(seaweedfs_s3, monkeypatch)
    team_project(project, url)
    result = run("build", "--provider", "preview")
    assert result.code == 0, result.err
    assert objects(seaweedfs_s3, url) == {}


def test_the_loser_of_a_race_delivers_the_winners_pixels(project, api, seaweedfs_s3, tmp_path):
    """Two machines miss the cache and pay for one image at once (the fake answers
    neither until both asked): the shared cache keeps one result, and both machines
    deliver its bytes; the loser says so."""
    url = seaweedfs_s3.url()
    project.gen(
        {
            "specs/one.yaml": 'assets:\n  - id: hero\n    prompt: "The hero"\n    quality: low\n',
            "assetpipe.yaml": f"provider: openai\nremote_cache: {{url: {url}}}\n",
        }
    )
    both_asked = threading.Barrier(2, timeout=120)
    api.latency = lambda _record: both_asked.wait() * 0.0
    roots = [machine(project, tmp_path, name) for name in ("a", "b")]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ASSETPIPE_", "AWS_"))},
        **seaweedfs_s3.environ(),
        "ASSETPIPE_TODAY": PINNED_TODAY,
        "ASSETPIPE_STATE_DIR": os.environ.get("ASSETPIPE_STATE_DIR", ""),
    }
    procs = [
        subprocess.Popen(
            [*ASSETPIPE, "build", "-v"], cwd=root, env=env, stderr=subprocess.PIPE, text=True
        )
        for root in roots
    ]
    errs = [proc.communicate(timeout=300)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], errs
    assert api.billed_images == 2
    assert shas(roots[0]) == shas(roots[1])
    assert [ADOPTED_NOTE in err for err in errs].count(True) == 1, errs
    records = [n for n in objects(seaweedfs_s3, url) if "/records/" in n]
    assert len(records) == 1


# -- a remote that fails ------------------------------------------------------------------------


def test_a_remote_that_refuses_writes_leaves_the_build_green(
    project, run, api, seaweedfs_s3, monkeypatch, tmp_path
):
    """Credentials that may only read: the build reads what was shared, pays for the
    rest, keeps it locally, says once that the shared cache refused, and exits 0."""
    url = use(seaweedfs_s3, monkeypatch)
    team_project(project, url)
    assert run("build").code == 0
    ci = machine(project, tmp_path, "reader")
    (ci / "specs/more.yaml").write_text(
        'assets:\n  - id: "m{{ i }}"\n    prompt: "More {{ i }}"\n    matrix: {i: [1, 2]}\n'
        "    quality: low\n",
        "utf-8",
    )
    assert seaweedfs_s3.reader is not None
    key, secret = seaweedfs_s3.reader
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    before = objects(seaweedfs_s3, url)
    api.reset_counters()
    built = run("build", project_dir=ci)
    assert built.code == 0, built.err
    assert api.billed_images == 2
    assert objects(seaweedfs_s3, url) == before
    assert built.err.count("refused a write (HTTP 403 AccessDenied)") == 1, built.err
    api.reset_counters()
    shutil.rmtree(ci / "output")
    assert run("build", project_dir=ci).code == 0
    assert api.count() == 0


def test_a_remote_that_is_down_is_one_warning(project, run, api, monkeypatch):
    """Nothing listens at the endpoint: the build pays for everything, exits 0, and
    says once that the shared cache cannot be used."""
    team_project(project, "s3://shared/team")
    monkeypatch.setenv("AWS_ENDPOINT_URL", closed_endpoint())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    built = run("build")
    assert built.code == 0, built.err
    assert api.billed_images == API_JOBS
    assert built.err.count("the shared cache s3://shared/team cannot be used") == 1, built.err
    assert set(statuses(project.root).values()) == {"generated"}


def test_a_remote_that_goes_down_mid_build_leaves_it_green(project, run, api, monkeypatch):
    """The server stops when the second image is asked for: what was shared before
    stays shared, the rest is kept locally, the build exits 0 with a warning, and a
    rebuild from the local cache pays nothing."""
    with run_moto() as server:
        url = use(server, monkeypatch)
        team_project(project, url)
        asked: list[str] = []

        def stop_on_second(record: Any) -> float:
            asked.append(record.fields.get("prompt", ""))
            if len(asked) == 2 and server.halt is not None:
                server.halt()
            return 0.0

        api.latency = stop_on_second
        built = run("build", "--concurrency", "1")
    assert built.code == 0, built.err
    assert api.billed_images == API_JOBS
    assert "the shared cache " + url + " cannot be used" in built.err
    assert set(statuses(project.root).values()) == {"generated"}
    api.reset_counters()
    shutil.rmtree(project / "output")
    again = run("build")
    assert again.code == 0, again.err
    assert api.count() == 0
    assert set(statuses(project.root).values()) == {"cached"}


# -- settings and stats -------------------------------------------------------------------------


def test_flags_beat_the_environment_which_beats_the_file(project, monkeypatch):
    """The usual precedence, for the URL and the mode separately."""
    project.gen({"assetpipe.yaml": "remote_cache:\n  url: s3://file-bucket/p\n  mode: read-only\n"})
    settings = resolve_settings(project.root, {})
    assert (settings.remote_cache, settings.remote_cache_mode) == (
        "s3://file-bucket/p",
        "read-only",
    )
    environ = {"ASSETPIPE_REMOTE_CACHE": "s3://env-bucket/q"}
    settings = resolve_settings(project.root, {}, environ)
    assert (settings.remote_cache, settings.remote_cache_mode) == ("s3://env-bucket/q", "read-only")
    environ["ASSETPIPE_REMOTE_CACHE_MODE"] = "read-write"
    flags = {"remote_cache": "s3://flag-bucket", "remote_cache_mode": None}
    settings = resolve_settings(project.root, flags, environ)
    assert (settings.remote_cache, settings.remote_cache_mode) == ("s3://flag-bucket", "read-write")
    flags["remote_cache_mode"] = "read-only"
    assert resolve_settings(project.root, flags, environ).remote_cache_mode == "read-only"
    assert resolve_settings(project.root / "specs", {}).remote_cache is None


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "remote_cache:\n  url: https://bucket/x\n",
            "error: assetpipe.yaml:2:8: remote_cache: the shared cache must be one of "
            "s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, "
            "file:///absolute/folder; not 'https://bucket/x'",
        ),
        (
            "remote_cache:\n  url: s3://bucket/x\n  mode: read-wrte\n",
            "error: assetpipe.yaml:3:9: 'remote_cache.mode' cannot be 'read-wrte'\n"
            "  hint: did you mean 'read-write'? (use one of read-write, read-only)",
        ),
        (
            "remote_cache:\n  url: s3://bucket/x\n  bucket: other\n",
            "error: assetpipe.yaml:3:3: unknown key 'bucket'\n"
            "  hint: allowed keys: mode, required, url",
        ),
        (
            "remote_cache: s3://bucket/x\n",
            "error: assetpipe.yaml:1:15: 'remote_cache': Input should be a valid dictionary",
        ),
    ],
    ids=["not-s3", "mode", "unknown-key", "not-a-mapping"],
)
def test_a_bad_remote_cache_setting_is_reported_at_its_line(project, run, yaml, message):
    project.gen({"specs/set.yaml": SPEC, "assetpipe.yaml": yaml})
    result = run("validate")
    assert result.code == 2
    assert result.err.startswith(message), result.err


@pytest.mark.parametrize(
    ("args", "environ", "message"),
    [
        (
            (),
            {"ASSETPIPE_REMOTE_CACHE_MODE": "sometimes"},
            "ASSETPIPE_REMOTE_CACHE_MODE 'sometimes'",
        ),
        ((), {"ASSETPIPE_REMOTE_CACHE": "s3://a"}, "ASSETPIPE_REMOTE_CACHE: 'a' in 's3://a'"),
        (("--remote-cache", "s3://k:s@bucket/x"), {}, "--remote-cache: the shared cache URL must"),
        (("--remote-cache-mode", "sometimes"), {}, "Invalid value for '--remote-cache-mode'"),
    ],
)
def test_a_bad_remote_cache_flag_or_variable_exits_2(
    project, run, monkeypatch, args, environ, message
):
    project.gen({"specs/set.yaml": SPEC})
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    result = run("plan", *args)
    assert result.code == 2
    assert message in result.err
    assert "k:s@" not in result.err


def test_cache_stats_counts_both_tiers(project, run, api, moto_s3, monkeypatch):
    """``cache stats`` says what this machine holds and what the team shares; without a
    shared cache it prints the one line it always did."""
    url = use(moto_s3, monkeypatch)
    team_project(project, url)
    assert run("build").code == 0
    folder = project / ".assetpipe/cache"
    with LocalStore(folder) as local:
        held = local.stats()
    result = run("cache", "stats")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == (
        f"local  {folder}: {held.entries} entries, {held.blobs} blobs, {held.bytes / 1e6:.1f} MB"
    )
    assert lines[1].startswith(f"shared {url} (read-write): {ALL_JOBS} entries, ")
    (project / "assetpipe.yaml").write_text("provider: openai\n", "utf-8")
    alone = run("cache", "stats")
    assert alone.out == f"{held.entries} entries, {held.blobs} blobs, {held.bytes / 1e6:.1f} MB\n"
    down = run("cache", "stats", "--remote-cache", url, "--remote-cache-mode", "read-only")
    assert down.out.splitlines()[1].startswith(f"shared {url} (read-only): {ALL_JOBS} entries")


# -- the runner adopts what the store kept -------------------------------------------------------


def inverted(png: bytes) -> bytes:
    """Other valid pixels of the same size: what another machine's call returned."""
    with Image.open(io.BytesIO(png)) as image:
        out = io.BytesIO()
        ImageOps.invert(image.convert("RGB")).save(out, "PNG")
        return out.getvalue()


class LostEveryRace:
    """What a machine sees when another machine shares each paid result just before it:
    the key is missing when looked up, and ``commit`` returns the other machine's record
    (adopted locally, as :class:`~pipeline.store.LayeredStore` does)."""

    def __init__(self, local: LocalStore):
        self.local = local
        self.theirs: dict[str, bytes] = {}

    def lookup(self, request: CacheRequest) -> CacheRecord | None:
        return self.local.lookup(request)

    def get(self, request: CacheRequest) -> tuple[CacheRecord, bytes] | None:
        return self.local.get(request)

    def read_blob(self, sha: str) -> bytes | None:
        return self.local.read_blob(sha)

    def commit(
        self,
        request: CacheRequest,
        delivered: bytes,
        original: bytes | None = None,
        meta: Any = None,
    ):
        if (meta or {}).get("kind") in ("rendition", "sheet"):
            return self.local.commit(request, delivered, original, meta)
        key = request.key
        self.theirs[key] = inverted(delivered)
        return self.local.commit(request, self.theirs[key], None, {**meta, "request_id": "req_b"})

    def close(self) -> None:
        self.local.close()


def test_the_runner_delivers_and_builds_on_the_result_the_store_kept(project, capsys):
    """When the store kept another machine's result, that image is the delivered file,
    the edit is sent its bytes, the rendition is made from it, and the job says why."""
    project.gen({"specs/set.yaml": SPEC})
    ws = assetpipe_api.open_workspace(
        assetpipe_api.Request(project=project.root, flags={"provider": "preview"})
    )
    store = LostEveryRace(LocalStore(project.root / ".assetpipe/cache"))
    provider = ScriptedProvider()
    with store.local:
        runner = direct_runner(ws, store, provider, FakeClock(), root=project.root)
        report = asyncio.run(runner.run())
    assert {o.status for o in report.outcomes.values()} == {"generated"}
    g1, winter = report.outcomes["set/g1"], report.outcomes["set/winter"]
    theirs = {sha256_bytes(data) for data in store.theirs.values()}
    assert len(theirs) == API_JOBS
    assert g1.sha256 in theirs
    assert sha256_bytes((project / "output/set/g1.png").read_bytes()) == g1.sha256
    noted = capsys.readouterr().err.splitlines()
    assert sorted(line for line in noted if ADOPTED_NOTE in line) == [
        f"{jid}: {ADOPTED_NOTE}" for jid in ("set/g1", "set/g2", "set/g3", "set/winter")
    ]
    assert not g1.checks or all(c["ok"] for c in g1.checks)
    edit = next(r for r in provider.requests if r.images)
    assert [sha256_bytes(i.data) for i in edit.images] == [g1.sha256]
    assert winter.inputs == [g1.sha256]
    assert report.outcomes["set/g1@64x64.webp"].inputs == [g1.sha256]
