"""Build engine through the real SDK and the local fake API: the cache and the output tree."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil

from fakeapi import FakeImagesAPI
from PIL import Image

ICONS = """
    brand:
      name: Acme
      colors: {primary: "#E4572E", secondary: "#2B2D42"}
    assets:
      - id: "icon-{{ item }}"
        prompt: "A {{ item }} icon in {{ brand.colors.primary }}"
        matrix: {item: [sword, shield, bow]}
        size: 1024x1024
        quality: low
        renditions: [{size: 64x64, format: webp}]
      - id: plain
        prompt: "A plain stone in {{ brand.colors.secondary }}"
        size: 1024x1024
        quality: low
      - id: hero
        prompt: "A hero"
        aspect: "2:3"
        quality: low
      - id: hero-edit
        prompt: "The same hero with a hat"
        edit: {images: [hero]}
        quality: low
"""


def manifest(project) -> dict:
    return json.loads((project / "output/manifest.json").read_text())


def entries(project) -> dict[str, dict]:
    return {e["job"]: e for e in manifest(project)["entries"]}


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_first_build_writes_every_file_and_manifest(project, run, api):
    """Every job's file exists at its documented path with the exact size, listed in the
    manifest."""
    project.gen({"specs/icons.yaml": ICONS})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert api.count() == 6
    assert api.billed_images == 6
    got = entries(project)
    assert sorted(got) == [
        "icons/hero",
        "icons/hero-edit",
        "icons/icon-bow",
        "icons/icon-bow@64x64.webp",
        "icons/icon-shield",
        "icons/icon-shield@64x64.webp",
        "icons/icon-sword",
        "icons/icon-sword@64x64.webp",
        "icons/plain",
    ]
    for job, entry in got.items():
        path = project / "output" / entry["path"]
        assert sha(path) == entry["sha256"], job
        with Image.open(path) as image:
            assert image.size == (entry["width"], entry["height"]), job
    assert got["icons/icon-sword@64x64.webp"]["path"] == "icons/icon-sword@64x64.webp"
    assert got["icons/hero"]["requested_size"] == "832x1248"
    assert got["icons/icon-sword"]["status"] == "generated"
    assert got["icons/icon-sword"]["usage"]["output_tokens"] > 0
    assert got["icons/icon-sword"]["cost_usd"] > 0
    assert got["icons/icon-sword"]["request_id"].startswith("req_")
    assert manifest(project)["version"] == 1


def test_unchanged_project_second_build_makes_no_request(project, run, api):
    """A second build of an unchanged project calls the API zero times and reports up-to-date."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    before = api.count()
    result = run("build", "--provider", "openai")
    assert result.code == 0
    assert api.count() == before
    assert {e["status"] for e in manifest(project)["entries"]} == {"up-to-date"}
    assert run("check", "--provider", "openai").code == 0


def test_deleted_output_is_rebuilt_from_cache_without_requests(project, run, api):
    """Deleting output/ and building again costs no API call; the files come back identical."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    first = {j: e["sha256"] for j, e in entries(project).items()}
    shutil.rmtree(project / "output")
    before = api.count()
    result = run("build", "--provider", "openai")
    assert result.code == 0
    assert api.count() == before
    again = entries(project)
    assert {j: e["sha256"] for j, e in again.items()} == first
    assert {e["status"] for e in again.values()} == {"cached"}


def test_deleted_cache_with_intact_output_costs_nothing(project, run, api):
    """The manifest is the lock: without the cache, intact outputs are still up to date."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    shutil.rmtree(project / ".assetpipe")
    before = api.count()
    assert run("build", "--provider", "openai").code == 0
    assert api.count() == before


def test_changed_brand_color_requests_exactly_the_jobs_that_use_it(project, run, api):
    """Changing `primary` re-requests the three icons (and re-renders their renditions) only."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    api.requests.clear()
    project.gen({"specs/icons.yaml": ICONS.replace("#E4572E", "#11AA22")})
    result = run("build", "--provider", "openai")
    assert result.code == 0
    prompts = sorted(r.fields["prompt"] for r in api.requests)
    assert prompts == [f"A {item} icon in #11AA22" for item in ("bow", "shield", "sword")]
    statuses = {j: e["status"] for j, e in entries(project).items()}
    assert statuses["icons/icon-sword"] == "generated"
    assert statuses["icons/icon-sword@64x64.webp"] == "generated"
    assert statuses["icons/plain"] == "up-to-date"
    assert statuses["icons/hero-edit"] == "up-to-date"


def test_edit_sends_the_parents_delivered_bytes(project, run, api):
    """The edit request carries exactly the bytes of the parent's delivered file."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    edit = next(r for r in api.requests if r.endpoint == "edits")
    parent = entries(project)["icons/hero"]
    assert edit.image_sha256 == [parent["sha256"]]
    assert entries(project)["icons/hero-edit"]["inputs"] == [parent["sha256"]]


def test_regenerated_parent_invalidates_its_edit(project, run, api):
    """A changed parent prompt re-requests the parent and then the edit, with the new bytes."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    api.requests.clear()
    project.gen({"specs/icons.yaml": ICONS.replace('prompt: "A hero"', 'prompt: "A tall hero"')})
    assert run("build", "--provider", "openai").code == 0
    assert [r.endpoint for r in api.requests] == ["generations", "edits"]
    parent = entries(project)["icons/hero"]
    assert api.requests[1].image_sha256 == [parent["sha256"]]


def test_preview_results_never_satisfy_a_real_build(project, run, api):
    """The provider is part of every key: a preview build leaves the openai build to pay."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "preview").code == 0
    assert api.count() == 0
    assert run("build", "--provider", "openai").code == 0
    assert api.count() == 6


def test_plan_json_reports_statuses_against_manifest_and_cache(project, run, api):
    """plan --json shows up-to-date after a build and cached after output/ is deleted."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    doc = json.loads(run("plan", "--json", "--provider", "openai").out)
    assert {j["status"] for j in doc["jobs"]} == {"up-to-date"}
    shutil.rmtree(project / "output")
    doc = json.loads(run("plan", "--json", "--provider", "openai").out)
    assert {j["status"] for j in doc["jobs"]} == {"cached"}
    assert doc["totals"]["estimated_cost_usd"] == 0


def test_check_reports_work_after_a_spec_change(project, run, api):
    """check exits 1 and lists the job a build would regenerate."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    project.gen({"specs/icons.yaml": ICONS.replace("A plain stone", "A round stone")})
    result = run("check", "--provider", "openai")
    assert result.code == 1
    assert "generate  icons/plain" in result.out
    assert "1 of 9 jobs would change" in result.out
    assert api.count() == 6


def test_prune_removes_files_no_job_makes_any_more(project, run, api):
    """--prune deletes a removed asset's file; without it the file stays, marked stale."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    (project / "output/icons/notes.txt").write_text("mine")
    project.gen({"specs/icons.yaml": ICONS.replace("[sword, shield, bow]", "[sword, shield]")})
    assert run("build", "--provider", "openai").code == 0
    assert (project / "output/icons/icon-bow.png").exists()
    assert entries(project)["icons/icon-bow"]["stale"] is True
    result = run("build", "--provider", "openai", "--prune")
    assert result.code == 0
    assert not (project / "output/icons/icon-bow.png").exists()
    assert not (project / "output/icons/icon-bow@64x64.webp").exists()
    assert (project / "output/icons/notes.txt").read_text() == "mine"
    assert "icons/icon-bow" not in entries(project)


def test_corrupt_cache_blob_is_a_miss_not_a_crash(project, run, api):
    """A damaged blob is re-requested with a warning; the build still succeeds."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    shutil.rmtree(project / "output")
    for blob in (project / ".assetpipe/cache/blobs").glob("*/*"):
        blob.write_bytes(b"garbage")
    before = api.count()
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert api.count() == before + 6
    assert "corrupt" in result.err


def test_only_builds_the_selection_and_its_inputs(project, run, api):
    """--only 'icons/hero-edit' builds the edit and the hero it needs, nothing else."""
    project.gen({"specs/icons.yaml": ICONS})
    result = run("build", "--provider", "openai", "--only", "icons/hero-edit")
    assert result.code == 0
    assert sorted(entries(project)) == ["icons/hero", "icons/hero-edit"]
    assert api.count() == 2


def test_symlink_in_output_is_never_followed(project, run, api, tmp_path):
    """A link inside output/ pointing elsewhere fails the job; nothing is written through it."""
    project.gen({"specs/icons.yaml": ICONS})
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (project / "output").mkdir()
    (project / "output/icons").symlink_to(outside)
    result = run("build", "--provider", "openai")
    assert result.code == 1
    assert list(outside.iterdir()) == []
    assert "symbolic link" in result.err


def test_api_key_appears_in_no_written_file(project, run, api):
    """The sentinel key is in no output, manifest or cache file."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    key = b"sk-test-key"
    for path in project.root.rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes(), path


def test_azure_provider_uses_the_deployment_route(project, run, monkeypatch):
    """--provider azure calls /openai/deployments/<model>/images/... with api-key auth."""
    with FakeImagesAPI(models=None) as fake:
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-secret")
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake.base_url.removesuffix("/v1"))
        monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
        project.gen(
            {
                "specs/a.yaml": """
            assets:
              - id: one
                prompt: a lighthouse
                model: my-image-deployment
                quality: low
        """
            }
        )
        result = run("build", "--provider", "azure")
        assert result.code == 0, result.err
        assert "taken as a deployment" in result.err
        (request,) = fake.requests
        assert request.path.startswith("/openai/deployments/my-image-deployment/images/generations")
        assert "api-version=2025-04-01-preview" in request.path
        assert entries(project)["a/one"]["provider"] == "azure"


def test_api_key_appears_in_no_log_or_error_message(project, run, api):
    """With -v, and when the key is rejected (401), the sentinel key is never printed."""
    project.gen({"specs/icons.yaml": ICONS})
    result = run("build", "--provider", "openai", "-v")
    assert result.code == 0
    assert "sk-test-key" not in result.out + result.err
    api.expected_key = "sk-another-key"
    project.gen({"specs/icons.yaml": ICONS.replace("A plain stone", "A new stone")})
    result = run("build", "--provider", "openai", "-v")
    assert result.code == 1
    assert "API key was rejected" in result.err
    assert "sk-test-key" not in result.out + result.err
    assert b"sk-test-key" not in (project / "output/manifest.json").read_bytes()


def test_force_calls_the_api_again_for_cached_requests(project, run, api):
    """--force re-requests every API job (and re-renders renditions from the new bytes)."""
    project.gen({"specs/icons.yaml": ICONS})
    assert run("build", "--provider", "openai").code == 0
    first = {j: e["sha256"] for j, e in entries(project).items()}
    assert run("build", "--provider", "openai", "--force").code == 0
    assert api.count() == 12
    again = entries(project)
    assert {e["status"] for e in again.values()} == {"generated"}
    assert again["icons/icon-sword"]["sha256"] != first["icons/icon-sword"]
    assert again["icons/icon-sword@64x64.webp"]["inputs"] == [again["icons/icon-sword"]["sha256"]]


def test_images_per_minute_paces_request_starts(project, run, api, monkeypatch):
    """--images-per-minute 240 starts requests at least 0.25 s apart (no burst). The starts
    are the limiter's own stamps: when the server saw them also depends on how long each
    took to get there, which a busy machine stretches for one and not another."""
    from pipeline.runner.limiter import RateLimiter

    stamps: list[float] = []
    acquire = RateLimiter.acquire

    async def stamped(self: RateLimiter, images: int = 1) -> float:
        stamp = await acquire(self, images)
        stamps.append(stamp)
        return stamp

    monkeypatch.setattr(RateLimiter, "acquire", stamped)
    project.gen({"specs/icons.yaml": ICONS})
    result = run(
        "build",
        "--provider",
        "openai",
        "--images-per-minute",
        "240",
        "--only",
        "icons/icon-*",
        "--concurrency",
        "8",
    )
    assert result.code == 0
    assert len(api.requests) == 3
    assert len(stamps) == 3
    gaps = [b - a for a, b in itertools.pairwise(sorted(stamps))]
    assert min(gaps) >= 0.25 - 1e-6
