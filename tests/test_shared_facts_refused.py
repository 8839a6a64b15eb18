"""A bucket that refuses the team's inspections costs work, never money.

A policy written for the records and images alone answers 403 for ``facts/``: reading or
sharing an inspection then fails. That stops the inspections, with one warning, and never
the shared cache: the images are still copied, and this machine's paid results still
shared, so no machine pays twice. Everything runs through the real CLI against
SeaweedFS, with a proxy in front of it playing the policy (``tests/refusing_proxy.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectTree
from refusing_proxy import RefusingProxy
from s3servers import S3Server

from pipeline.store.sealed_facts import SECRET_VARIABLE

SECRET = "team-secret-" + "3" * 40
SPEC = """
    assets:
      - id: "tile-{{ n }}"
        prompt: "A flat tile number {{ n }}"
        matrix: {n: [1, 2, 3, 4, 5, 6]}
        size: 1024x1024
        quality: low
"""
NEW = """
      - id: extra
        prompt: "One more tile"
        size: 1024x1024
        quality: low
"""


@pytest.fixture(autouse=True)
def team_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The team's secret set; none of the developer's AWS settings."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)


def machine(root: Path, url: str, spec: str = SPEC) -> ProjectTree:
    tree = ProjectTree(root)
    settings = f"provider: openai\nremote_cache: {{url: {url}, mode: read-write}}\n"
    tree.gen({"specs/tiles.yaml": spec, "assetpipe.yaml": settings, "templates/.keep": ""})
    return tree


def reach(server: S3Server, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**server.environ(), "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)


def objects(server: S3Server, url: str, folder: str) -> set[str]:
    import obstore

    prefix = f"{url.split('/', 3)[3]}/assetpipe-v1/{folder}"
    return {o["path"] for page in obstore.list(server.raw(), prefix) for o in page}


def facts(method: str) -> Any:
    return lambda verb, path: verb == method and "/facts/" in path


def test_inspections_the_bucket_will_not_give_stop_alone(
    tmp_path: Path, run: Any, api: Any, seaweedfs_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine B cannot read the inspections: it copies every image A paid for, inspects
    them itself, pays only for its own new image and still shares that one."""
    url = seaweedfs_s3.url()
    reach(seaweedfs_s3, seaweedfs_s3.endpoint, monkeypatch)
    assert run("build", project_dir=machine(tmp_path / "a", url).root).code == 0
    assert objects(seaweedfs_s3, url, "facts"), "A shared its inspections"
    billed = api.billed_images
    b = machine(tmp_path / "b", url, SPEC + NEW)
    with RefusingProxy(seaweedfs_s3.endpoint, facts("GET")) as policy:
        reach(seaweedfs_s3, policy.endpoint, monkeypatch)
        result = run("build", "--json", "--concurrency", "1", project_dir=b.root)
    assert result.code == 0, result.err
    assert json.loads(result.out)["counts"] == {"cached": 6, "generated": 1}
    assert api.billed_images == billed + 1
    assert policy.refused, "the inspections were asked for"
    assert "cannot read the inspections shared" in result.err
    assert "cannot be used" not in result.err
    assert len(objects(seaweedfs_s3, url, "records")) == 7, "B's paid image is shared"


def test_a_bucket_that_will_not_take_inspections_still_takes_the_images(
    tmp_path: Path, run: Any, api: Any, seaweedfs_s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine A pays one image at a time and may not write ``facts/``: every result is
    shared all the same, and machine C then pays for none of them."""
    url = seaweedfs_s3.url()
    with RefusingProxy(seaweedfs_s3.endpoint, facts("PUT")) as policy:
        reach(seaweedfs_s3, policy.endpoint, monkeypatch)
        result = run("build", "--concurrency", "1", project_dir=machine(tmp_path / "a", url).root)
    assert result.code == 0, result.err
    assert policy.refused, "an inspection was offered"
    assert len(objects(seaweedfs_s3, url, "records")) == 6
    assert "did not take an inspection" in result.err
    assert "refused a write" not in result.err and "cannot be used" not in result.err
    assert objects(seaweedfs_s3, url, "facts") == set()
    billed = api.billed_images
    reach(seaweedfs_s3, seaweedfs_s3.endpoint, monkeypatch)
    c = run("build", "--json", project_dir=machine(tmp_path / "c", url).root)
    assert c.code == 0, c.err
    assert json.loads(c.out)["counts"] == {"cached": 6}
    assert api.billed_images == billed
