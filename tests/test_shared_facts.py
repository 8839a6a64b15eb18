"""What inspecting an image found travels with it through the team's cache, sealed.

Machine A pays for images with the team's secret set and shares, beside each image, what
inspecting it found (size, checks, perceptual hash, thumbnail), sealed with an HMAC of a
key derived from that secret. Machine B, with the same secret, copies the images from the
shared cache and delivers them without decoding a pixel; with no secret, another secret,
or an object someone planted, it inspects them itself as ever. Everything runs through
the real CLI, the real stores (a ``file://`` shared folder) and the fake Images API.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectTree

from pipeline import postprocess
from pipeline.errors import UsageError
from pipeline.hashing import sha256_bytes
from pipeline.store.memo import Inspection
from pipeline.store.sealed_facts import (
    SECRET_VARIABLE,
    FactsRefused,
    SharedFacts,
    TeamSeal,
)

SECRET = "team-secret-" + "7" * 40
SPEC = """
    assets:
      - id: tile
        prompt: "A flat tile"
        size: 1024x1024
        quality: low
      - id: badge
        prompt: "A round badge"
        size: 1024x1024
        quality: low
        format: webp
"""


def machines(tmp_path: Path, project: ProjectTree, *, mode: str = "read-write") -> ProjectTree:
    """Machine A is ``project``; machine B (returned) has the same specs, nothing built."""
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    settings = f"remote_cache: {{url: {shared.as_uri()!r}, mode: {mode}}}\n"
    files = {"specs/tiles.yaml": SPEC, "assetpipe.yaml": settings}
    project.gen(files)
    machine_b = ProjectTree(tmp_path / "b")
    machine_b.gen({**files, "templates/.keep": ""})
    return machine_b


def paid_with_the_secret(
    tmp_path: Path, project: ProjectTree, run: Any, monkeypatch: pytest.MonkeyPatch
) -> ProjectTree:
    """Machine A (``project``) pays for the images with the team's secret set; returns
    machine B, which has built nothing yet."""
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    machine_b = machines(tmp_path, project)
    assert run("build", "--provider", "openai").code == 0
    return machine_b


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every image decoded for inspection from now on (one item each)."""
    decoded: list[int] = []
    real = postprocess.sample_bytes

    def sample_bytes(data: bytes, *args: Any, **kwargs: Any) -> Any:
        decoded.append(len(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(postprocess, "sample_bytes", sample_bytes)
    return decoded


def manifest(root: Path) -> dict[str, dict[str, Any]]:
    """The manifest's entries by job, with what inspecting each file found."""
    document = json.loads((root / "output" / "manifest.json").read_text())
    return {
        e["job"]: {"checks": e["checks"], "phash": e["phash"], "size": (e["width"], e["height"])}
        for e in document["entries"]
    }


def thumbnails(root: Path) -> set[bytes]:
    return {p.read_bytes() for p in (root / "output" / ".gallery").rglob("*.webp")}


def facts_objects(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "shared" / "assetpipe-v1" / "facts"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_team_machine_delivers_shared_images_without_decoding_them(
    tmp_path: Path,
    project: ProjectTree,
    run: Any,
    api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine_b = paid_with_the_secret(tmp_path, project, run, monkeypatch)
    billed = api.billed_images
    # One sealed inspection per paid image: the PNG's of its pixels, the WebP's of its bytes.
    assert len(facts_objects(tmp_path)) == 2
    decoded = count_decodes(monkeypatch)
    result = run("build", "--provider", "openai", "--json", project_dir=machine_b.root)
    assert result.code == 0, result.err
    assert json.loads(result.out)["counts"] == {"cached": 2}
    assert api.billed_images == billed
    assert decoded == [], "the sealed inspections stood for the decode"
    assert manifest(machine_b.root) == manifest(project.root)
    assert thumbnails(machine_b.root) == thumbnails(project.root)
    assert "ignored" not in result.err
    for path in [*tmp_path.rglob("*")]:  # the secret is never written anywhere
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_without_the_secret_a_machine_inspects_the_images_itself(
    tmp_path: Path,
    project: ProjectTree,
    run: Any,
    api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine_b = paid_with_the_secret(tmp_path, project, run, monkeypatch)
    monkeypatch.delenv(SECRET_VARIABLE)
    decoded = count_decodes(monkeypatch)
    result = run("build", "--provider", "openai", project_dir=machine_b.root)
    assert result.code == 0, result.err
    assert len(decoded) == 2
    assert manifest(machine_b.root) == manifest(project.root)


def plant_foreign_facts(tmp_path: Path) -> None:
    """Re-seal every shared inspection with an attacker's secret, claiming another
    perceptual hash and no failed check."""
    planted = TeamSeal("an-attacker-who-can-write-the-bucket-" + "0" * 8)
    for path in facts_objects(tmp_path):
        body = json.loads(path.read_bytes())
        told = json.loads(body["inspection"])
        lie = Inspection(
            width=told["width"],
            height=told["height"],
            phash="0" * 16,
            method=told["method"],
            thumbnail=told["thumbnail"],
            checks=dict.fromkeys(told["checks"], ()),
        )
        thumbnail = base64.b64decode(body["thumbnail"])
        path.write_bytes(planted.seal(body["blob"], SharedFacts(body["pixels"], lie, thumbnail)))


def test_planted_or_foreign_inspections_are_ignored_and_the_image_inspected(
    tmp_path: Path,
    project: ProjectTree,
    run: Any,
    api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whoever can write the bucket but lacks the secret cannot make an image pass for
    what it is not: an inspection sealed with another secret (here claiming another
    perceptual hash and a passing check list) is refused, said once, and the image is
    decoded and inspected on the machine that delivers it."""
    machine_b = paid_with_the_secret(tmp_path, project, run, monkeypatch)
    truth = manifest(project.root)
    plant_foreign_facts(tmp_path)
    decoded = count_decodes(monkeypatch)
    result = run("build", "--provider", "openai", project_dir=machine_b.root)
    assert result.code == 0, result.err
    assert len(decoded) == 2
    assert manifest(machine_b.root) == truth
    assert result.err.count(f"was not sealed with this {SECRET_VARIABLE}") == 1, result.err


def test_a_read_write_machine_replaces_refused_inspections_and_force_shares_none(
    tmp_path: Path,
    project: ProjectTree,
    run: Any,
    api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """B (read-write, the team's secret) refuses the planted inspections, inspects the
    images itself and shares its own in their place; a ``--force`` build shares nothing."""
    machine_b = paid_with_the_secret(tmp_path, project, run, monkeypatch)
    plant_foreign_facts(tmp_path)
    assert run("build", "--provider", "openai", project_dir=machine_b.root).code == 0
    team = TeamSeal(SECRET)
    shared = {path: path.read_bytes() for path in facts_objects(tmp_path)}
    assert len(shared) == 2
    for body in shared.values():
        team.open(json.loads(body)["blob"], body)  # raises FactsRefused if not the team's
    assert run("build", "--provider", "openai", "--force", project_dir=machine_b.root).code == 0
    assert {path: path.read_bytes() for path in facts_objects(tmp_path)} == shared


def test_a_read_only_machine_reads_inspections_and_shares_none(
    tmp_path: Path,
    project: ProjectTree,
    run: Any,
    api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A's images were shared before the team had a secret: B (read-only, secret set)
    inspects them itself and writes nothing to the bucket; a read-write machine C then
    shares what it found, and D delivers them without decoding."""
    machine_b = machines(tmp_path, project, mode="read-only")
    shared = tmp_path / "shared"
    (project / "assetpipe.yaml").write_text(f"remote_cache: {{url: {shared.as_uri()!r}}}\n")
    assert run("build", "--provider", "openai").code == 0
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    assert run("build", "--provider", "openai", project_dir=machine_b.root).code == 0
    assert facts_objects(tmp_path) == []
    machine_c = ProjectTree(tmp_path / "c")
    machine_c.gen({p: (project / p).read_text() for p in ("specs/tiles.yaml",)})
    machine_c.gen({"assetpipe.yaml": (project / "assetpipe.yaml").read_text()})
    assert run("build", "--provider", "openai", project_dir=machine_c.root).code == 0
    assert len(facts_objects(tmp_path)) == 2, "the machine that inspected them shared them"
    machine_d = ProjectTree(tmp_path / "d")
    machine_d.gen({p: (machine_c / p).read_text() for p in ("specs/tiles.yaml",)})
    machine_d.gen({"assetpipe.yaml": (machine_c / "assetpipe.yaml").read_text()})
    decoded = count_decodes(monkeypatch)
    assert run("build", "--provider", "openai", project_dir=machine_d.root).code == 0
    assert decoded == []
    assert manifest(machine_d.root) == manifest(project.root)


def test_a_short_secret_stops_the_command_and_says_how_to_make_one(
    project: ProjectTree, run: Any, api: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    machines(tmp_path, project)
    monkeypatch.setenv(SECRET_VARIABLE, "hunter2")
    result = run("build", "--provider", "openai")
    assert result.code == 2
    assert f"{SECRET_VARIABLE} is 7 characters long" in result.err
    assert "openssl rand -hex 32" in result.err
    assert "hunter2" not in result.err and "Traceback" not in result.err
    assert api.billed_images == 0


# -- the seal itself ------------------------------------------------------------------------


def sample_facts() -> tuple[str, SharedFacts]:
    thumbnail = b"RIFF" + (12).to_bytes(4, "little") + b"WEBPVP8L\x00\x00\x00\x00"
    inspection = Inspection(
        width=1024,
        height=1024,
        phash="0123456789abcdef",
        method="dct-8",
        thumbnail=sha256_bytes(thumbnail),
        checks={"ab" * 32: ({"name": "size", "ok": True, "detail": "", "value": None},)},
    )
    return sha256_bytes(b"blob"), SharedFacts(sha256_bytes(b"pixels"), inspection, thumbnail)


def test_the_seal_opens_only_what_it_sealed_for_that_image() -> None:
    seal = TeamSeal(SECRET)
    blob, facts = sample_facts()
    sealed = seal.seal(blob, facts)
    assert seal.open(blob, sealed) == facts
    assert SECRET not in repr(seal) and SECRET.encode() not in sealed
    with pytest.raises(FactsRefused, match="names another image"):
        seal.open(sha256_bytes(b"another"), sealed)
    with pytest.raises(FactsRefused, match="not sealed"):
        TeamSeal(SECRET + "x").open(blob, sealed)
    body = json.loads(sealed)
    for field, value in (
        ("pixels", sha256_bytes(b"other pixels")),
        ("inspection", body["inspection"].replace("0123456789abcdef", "f" * 16)),
        ("thumbnail", base64.b64encode(facts.thumbnail + b"!").decode()),
    ):
        changed = json.dumps({**body, field: value}).encode()
        with pytest.raises(FactsRefused, match="not sealed"):
            seal.open(blob, changed)
    for changed_format in ({**body, "extra": 1}, {**body, "format": True}):
        with pytest.raises(FactsRefused, match="format"):
            seal.open(blob, json.dumps(changed_format).encode())
    with pytest.raises(FactsRefused, match="not JSON"):
        seal.open(blob, b"\x00not json")


def test_the_seal_shares_nothing_that_depends_on_the_reader() -> None:
    seal = TeamSeal(SECRET)
    blob, facts = sample_facts()
    with_verdict = facts._replace(inspection=Inspection(c2pa=True, thumbnail=facts[1].thumbnail))
    with pytest.raises(ValueError, match="C2PA"):
        seal.seal(blob, with_verdict)
    with pytest.raises(ValueError, match="thumbnail"):
        seal.seal(blob, facts._replace(thumbnail=b"RIFF\x04\x00\x00\x00WEBP"))
    with pytest.raises(UsageError, match="at least 32"):
        TeamSeal("short")
