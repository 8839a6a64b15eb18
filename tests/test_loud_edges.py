"""Failures that used to be silent and cost money or ship the wrong thing are loud now:
a missing API key never replaces real images with placeholders, CI never picks a provider
on its own, and a shared cache that cannot be read says why before anything is paid.

Every test drives the CLI as a user (or a CI job) meets it, against the fake Images API
and, for the shared cache, a real S3 server (SeaweedFS checks signatures).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from s3servers import closed_endpoint

from pipeline.hashing import sha256_bytes

SPEC = """
    defaults: {quality: low, format: png}
    assets:
      - id: "emblem-{{ i }}"
        prompt: "Emblem number {{ i }}"
        matrix: {i: [1, 2, 3]}
        size: 1024x1024
"""
CI_MESSAGE = "in CI assetpipe never falls back to the free preview provider on its own"
NO_KEY = "with no API key set this build would replace them with preview placeholders"


def files(root: Path) -> dict[str, str]:
    out = root / "output"
    return {
        p.relative_to(out).as_posix(): sha256_bytes(p.read_bytes())
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def test_a_missing_key_never_replaces_real_images_with_placeholders(
    project, run, api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the key gone (a CI secret that did not arrive) and no provider named, a build
    over real images exits 2, says what happened and what to do, writes nothing and pays
    nothing; naming ``preview`` draws placeholders on purpose."""
    project.gen({"specs/set.yaml": SPEC})
    assert run("build", "--provider", "openai").code == 0
    real = files(project.root)
    paid = api.billed_images
    monkeypatch.delenv("OPENAI_API_KEY")

    result = run("build")
    assert result.code == 2, result.err
    assert "output/ holds 3 image(s) made by openai (e.g. set/emblem-1.png)" in result.err
    assert NO_KEY in result.err and "--provider preview" in result.err
    assert "Traceback" not in result.err
    assert files(project.root) == real
    assert api.billed_images == paid

    on_purpose = run("build", "--provider", "preview")
    assert on_purpose.code == 0, on_purpose.err
    assert files(project.root) != real


def test_a_fresh_project_without_a_key_still_builds_previews(project, run) -> None:
    """Nothing real to lose: a first build with no key and no provider named draws
    previews, and says so in one line, as before."""
    project.gen({"specs/set.yaml": SPEC})
    result = run("build")
    assert result.code == 0, result.err
    assert "provider: preview" in result.err


@pytest.mark.parametrize("command", [("build",), ("plan",), ("check",), ("validate",)])
def test_under_ci_no_provider_is_chosen_silently(
    project, run, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """With ``CI=true``, no key and no provider named, every command exits 2 saying the
    secret may not have arrived; naming a provider (``preview`` too) works."""
    project.gen({"specs/set.yaml": SPEC})
    monkeypatch.setenv("CI", "true")
    result = run(*command)
    assert result.code == 2, result.err
    assert CI_MESSAGE in result.err
    assert "OPENAI_API_KEY secret did not arrive" in result.err
    assert not (project.root / "output").exists()
    named = run(*command, "--provider", "preview")
    assert named.code in (0, 1), named.err  # check exits 1: there is work to do


# -- a shared cache that cannot be read --------------------------------------------------------


@pytest.fixture
def shared(project, run, api, seaweedfs_s3, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A team project whose three images machine A paid for and shared; afterwards the
    process has no AWS settings at all (machine B's environment is up to each test)."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")  # never leave loopback
    for name, value in seaweedfs_s3.environ().items():
        monkeypatch.setenv(name, value)
    url = seaweedfs_s3.url()
    project.gen(
        {
            "specs/set.yaml": SPEC,
            "assetpipe.yaml": f"provider: openai\nremote_cache:\n  url: {url}\n",
        }
    )
    assert run("build").code == 0
    assert api.billed_images == 3
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    for path in (project.root / ".assetpipe", project.root / "output"):
        for item in sorted(path.rglob("*"), reverse=True):
            item.unlink() if not item.is_dir() or item.is_symlink() else item.rmdir()
        path.rmdir()
    api.reset_counters()
    return {"endpoint": seaweedfs_s3.endpoint}


def test_a_shared_cache_without_credentials_is_one_loud_warning(
    project, run, api, shared: dict[str, Any]
) -> None:
    """No AWS credentials: ``plan`` and ``build`` say so once, at the start, with the
    reason, and ``build --json`` carries it; without ``required`` the build goes on (and
    pays, as it must without the bucket)."""
    plan = run("plan", "--json")
    assert plan.code == 0, plan.err
    assert plan.err.count("no AWS credentials are set") == 1
    document = json.loads(plan.out)
    assert "no AWS credentials are set" in document["shared_cache"]["problem"]

    built = run("build", "--json")
    assert built.code == 0, built.err
    assert built.err.count("no AWS credentials are set") == 1
    summary = json.loads(built.out)
    assert "no AWS credentials are set" in summary["shared_cache"]["problem"]
    assert api.billed_images == 3


@pytest.mark.parametrize("how", ["no credentials", "wrong credentials", "connection refused"])
@pytest.mark.parametrize("switch", ["assetpipe.yaml", "environment"])
def test_a_required_shared_cache_that_cannot_be_read_stops_before_paying(
    project, run, api, shared: dict[str, Any], monkeypatch: pytest.MonkeyPatch, how, switch
) -> None:
    """``remote_cache: {required: true}`` or ``ASSETPIPE_REMOTE_CACHE_REQUIRED=1``: a shared
    cache that cannot be read (no credentials, refused credentials, nothing listening)
    is exit 2 with why, before anything is paid or written."""
    if how == "wrong credentials":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    elif how == "connection refused":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        monkeypatch.setenv("AWS_ENDPOINT_URL", closed_endpoint())
    if switch == "environment":
        monkeypatch.setenv("ASSETPIPE_REMOTE_CACHE_REQUIRED", "1")
    else:
        settings = project.root / "assetpipe.yaml"
        settings.write_text(settings.read_text() + "  required: true\n")
    result = run("build")
    assert result.code == 2, result.err
    assert "The shared cache is required here" in result.err
    assert "nothing was planned or paid for" in result.err
    assert "Traceback" not in result.err
    assert api.count() == 0
    assert not (project.root / "output" / "set").exists()


@pytest.mark.parametrize(("value", "required"), [("1", True), ("yes", True), ("0", False)])
def test_the_environment_decides_whether_the_shared_cache_is_required(
    project, value: str, required: bool
) -> None:
    """``ASSETPIPE_REMOTE_CACHE_REQUIRED`` beats ``remote_cache: {required: ...}`` in
    assetpipe.yaml either way; without it the file decides."""
    project.gen({"assetpipe.yaml": "remote_cache:\n  url: s3://bucket/team\n  required: true\n"})
    from pipeline.settings import resolve_settings

    environ = {"ASSETPIPE_REMOTE_CACHE_REQUIRED": value}
    assert resolve_settings(project.root, {}, environ).remote_cache_required is required
    assert resolve_settings(project.root, {}, {}).remote_cache_required is True


def test_a_required_setting_that_is_not_a_switch_is_exit_2(
    project, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value of ``ASSETPIPE_REMOTE_CACHE_REQUIRED`` that is neither 1 nor 0 (nor
    true/false, yes/no) is a usage error naming the variable."""
    project.gen({"specs/set.yaml": SPEC})
    monkeypatch.setenv("ASSETPIPE_REMOTE_CACHE_REQUIRED", "maybe")
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert "ASSETPIPE_REMOTE_CACHE_REQUIRED='maybe': use 1 or 0" in result.err
