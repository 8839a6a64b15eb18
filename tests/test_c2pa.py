"""Content Credentials with the official C2PA library: real certificates, real manifests.

The fake API signs its PNGs with a throwaway "OpenAI" chain (``tests/c2pa_kit.py``);
assetpipe validates them, and re-signs re-encoded files with a "Team" chain, which
c2pa-python's own Reader then validates. Validity here is the manifests' integrity; the
final Reader is told to trust both test roots, so its state is ``Trusted``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import c2pa
import pytest
from c2pa_kit import api_signer, make_chain, tampered

SPEC = """
    assets:
      - id: hero
        prompt: "A hero"
        size: 1024x1024
        format: png
        quality: low
        renditions:
          - {size: 512x512}
"""
SETTINGS = """
provider: openai
provenance:
  sign: {cert: team.pem, alg: es256}
"""


@pytest.fixture(scope="module")
def openai_chain():
    return make_chain("OpenAI")


@pytest.fixture(scope="module")
def team_chain():
    return make_chain("Team")


def entries(project) -> dict[str, dict]:
    doc = json.loads((project / "output/manifest.json").read_text())
    return {e["path"]: e for e in doc["entries"]}


def signed_project(project, monkeypatch, chain) -> None:
    """A project that signs with ``chain``: the certificate in the project, the key in
    the environment (as a CI secret would be)."""
    project.gen({"specs/game.yaml": SPEC, "assetpipe.yaml": SETTINGS})
    (project / "team.pem").write_bytes(chain.certs)
    monkeypatch.setenv("ASSETPIPE_C2PA_KEY", chain.key.decode())


def trusting(*chains) -> c2pa.Context:
    anchors = "".join(chain.root.decode() for chain in chains)
    return c2pa.Context.from_dict({"trust": {"trust_anchors": anchors}})


def test_the_api_manifest_is_validated_and_recorded(project, run, api, openai_chain):
    """A signed API image: valid, its signer, generator and AI-made source recorded, and a
    passing ``c2pa`` check; without signing settings the rendition is not signed."""
    api.c2pa_sign = api_signer(openai_chain)
    project.gen({"specs/game.yaml": SPEC})
    assert run("build", "--provider", "openai").code == 0
    hero = entries(project)["game/hero.png"]
    assert hero["provenance"]["original"] == {
        "valid": True,
        "signer": "OpenAI Signer",
        "generator": "OpenAI API 1.0",
        "ai_generated": True,
    }
    [check] = [c for c in hero["checks"] if c["name"] == "c2pa"]
    assert check == {
        "name": "c2pa",
        "ok": True,
        "detail": "C2PA manifest valid (signed by OpenAI Signer)",
        "value": None,
    }
    page = (project / "output/index.html").read_text()
    assert (
        "Content Credentials: original valid (signed by OpenAI Signer); "
        "delivered file is the API&#39;s own" in page
    )
    small = entries(project)["game/hero@512x512.png"]["provenance"]
    assert small == {
        "reencoded": True,
        "c2pa": False,
        "c2pa_in_original": None,
        "original_path": None,
    }


def test_a_tampered_api_image_fails_the_c2pa_check(project, run, api, openai_chain):
    """One pixel byte changed after signing: the data hash no longer matches, which is a
    failed check (and exit 1 with --strict-checks), never a pass."""
    sign = api_signer(openai_chain)
    api.c2pa_sign = lambda png: tampered(sign(png))
    project.gen({"specs/game.yaml": SPEC})
    result = run("build", "--provider", "openai", "--strict-checks")
    assert result.code == 1
    assert "c2pa" in result.err
    hero = entries(project)["game/hero.png"]
    original = hero["provenance"]["original"]
    assert original["valid"] is False
    assert "assertion.dataHash.mismatch" in original["failures"]
    [check] = [c for c in hero["checks"] if c["name"] == "c2pa"]
    assert check["ok"] is False
    assert check["detail"].startswith("the API's C2PA manifest does not validate: ")


def test_a_rendition_is_signed_with_the_team_credentials(
    project, run, api, monkeypatch, openai_chain, team_chain
):
    """The 512x512 rendition carries a new manifest: signed by the team, the API image as
    its parent ingredient (with its own manifest), resized, and still AI-made; the
    library's own Reader validates it. The key is written nowhere."""
    api.c2pa_sign = api_signer(openai_chain)
    signed_project(project, monkeypatch, team_chain)
    assert run("build").code == 0
    got = entries(project)
    small = got["game/hero@512x512.png"]
    assert small["provenance"]["signed"] == {
        "valid": True,
        "signer": "Team Signer",
        "generator": "assetpipe",
        "ai_generated": True,
    }
    page = (project / "output/index.html").read_text()
    assert "Content Credentials: delivered file signed by Team Signer" in page
    data = (project / "output/game/hero@512x512.png").read_bytes()
    context = trusting(openai_chain, team_chain)
    with c2pa.Reader("image/png", io.BytesIO(data), None, context) as reader:
        assert reader.get_validation_state() == "Trusted"
        store = json.loads(reader.json())
    active = store["manifests"][store["active_manifest"]]
    assert active["signature_info"]["common_name"] == "Team Signer"
    [parent] = active["ingredients"]
    assert parent["relationship"] == "parentOf"
    assert parent["title"] == "hero.png"
    assert store["manifests"][parent["active_manifest"]]["signature_info"]["issuer"] == "OpenAI"
    [actions] = [a for a in active["assertions"] if a["label"].startswith("c2pa.actions")]
    steps = actions["data"]["actions"]
    assert [s["action"] for s in steps] == ["c2pa.opened", "c2pa.resized"]
    assert steps[0]["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
    key_line = team_chain.key.split(b"\n")[1]
    for path in project.root.rglob("*"):
        if path.is_file() and path.name != "team.pem":
            assert key_line not in path.read_bytes(), path


def test_a_rebuild_signs_nothing_and_a_new_certificate_signs_again(
    project, run, api, monkeypatch, openai_chain, team_chain
):
    """Signing is part of the keys: an unchanged certificate keeps every file up to date
    (same bytes), a new one signs the rendition again from the cache, paying nothing."""
    api.c2pa_sign = api_signer(openai_chain)
    signed_project(project, monkeypatch, team_chain)
    assert run("build").code == 0
    first = entries(project)["game/hero@512x512.png"]
    assert run("build").code == 0
    assert entries(project)["game/hero@512x512.png"]["sha256"] == first["sha256"]
    billed = api.billed_images
    other = make_chain("Studio")
    signed_project(project, monkeypatch, other)
    assert run("build").code == 0
    again = entries(project)["game/hero@512x512.png"]
    assert again["sha256"] != first["sha256"]
    assert again["cache_key"] != first["cache_key"]
    assert again["provenance"]["signed"]["signer"] == "Studio Signer"
    assert api.billed_images == billed


def test_a_key_that_does_not_match_the_certificate_is_a_settings_error(
    project, run, monkeypatch, team_chain
):
    """Exit 2 before anything is built, naming where the key came from, not its text."""
    signed_project(project, monkeypatch, team_chain)
    monkeypatch.setenv("ASSETPIPE_C2PA_KEY", make_chain("Other").key.decode())
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert "the key from ASSETPIPE_C2PA_KEY cannot sign with team.pem" in result.err
    assert "PRIVATE KEY" not in result.err


def test_signing_without_a_key_is_a_settings_error(project, run, team_chain):
    """No key file and no variable: exit 2 saying how to give one."""
    project.gen({"specs/game.yaml": SPEC, "assetpipe.yaml": SETTINGS})
    Path(project / "team.pem").write_bytes(team_chain.certs)
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert "provenance.sign has no key" in result.err


SHEET_SPEC = """
    assets:
      - id: "gem-{{ c }}"
        prompt: "A {{ c }} gem"
        matrix: {c: [red, blue, green]}
        size: 1024x1024
        format: png
        quality: low
    sheets:
      - id: gems
        assets: ["gem-*"]
        frame_size: 64x64
"""


def test_a_sheet_is_signed_naming_every_frame_as_an_ingredient(
    project, run, api, monkeypatch, openai_chain, team_chain
):
    """A sheet packs three API images into one file: its manifest is the team's, every
    frame is a ``componentOf`` ingredient carrying its own (OpenAI) manifest, and the
    sheet is a composite of AI-made parts; the library's own Reader trusts it."""
    api.c2pa_sign = api_signer(openai_chain)
    project.gen({"specs/game.yaml": SHEET_SPEC, "assetpipe.yaml": SETTINGS})
    (project / "team.pem").write_bytes(team_chain.certs)
    monkeypatch.setenv("ASSETPIPE_C2PA_KEY", team_chain.key.decode())
    result = run("build")
    assert result.code == 0, result.err
    data = (project / "output/game/gems.png").read_bytes()
    context = trusting(openai_chain, team_chain)
    with c2pa.Reader("image/png", io.BytesIO(data), None, context) as reader:
        assert reader.get_validation_state() == "Trusted"
        store = json.loads(reader.json())
    active = store["manifests"][store["active_manifest"]]
    assert active["signature_info"]["common_name"] == "Team Signer"
    frames = active["ingredients"]
    assert sorted(i["title"] for i in frames) == ["gem-blue.png", "gem-green.png", "gem-red.png"]
    assert {i["relationship"] for i in frames} == {"componentOf"}
    for ingredient in frames:
        issuer = store["manifests"][ingredient["active_manifest"]]["signature_info"]["issuer"]
        assert issuer == "OpenAI"
    [actions] = [a for a in active["assertions"] if a["label"].startswith("c2pa.actions")]
    source = actions["data"]["actions"][0]["digitalSourceType"]
    assert source.endswith("/compositeWithTrainedAlgorithmicMedia")
