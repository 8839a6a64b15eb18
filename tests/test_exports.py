"""Exporters: ``exports:`` in assetpipe.yaml, the gallery as one, ``assetpipe export``, and
a build that rewrites an export only when its inputs changed."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.exports import exporters
from pipeline.exports.collisions import job_files
from pipeline.jobs import Plan
from pipeline.planner.paths import written_paths

SPEC = """
    assets:
      - id: sword
        prompt: a sword
        size: 1024x1024
        quality: low
      - id: shield
        prompt: a shield
        size: 1024x1024
        quality: low
    sheets:
      - id: atlas
        assets: ["*"]
        frame_size: 32x32
"""


def build(run, *extra: str):
    result = run("build", "--provider", "preview", "-q", *extra)
    assert result.code == 0, result.err
    return result


def test_the_gallery_is_an_exporter_on_by_default(project, run):
    """No ``exports:``: the build writes index.html as it always did, through the gallery
    exporter, and ``export`` finds it already as it would write it."""
    project.gen({"specs/icons.yaml": SPEC})
    build(run)
    assert "gallery" in exporters()
    page = project / "output/index.html"
    assert b"sword.png" in page.read_bytes()
    before = page.stat().st_mtime_ns
    result = run("export")
    assert result.code == 0, result.err
    assert "unchanged index.html (gallery)" in result.out
    assert "0 files written, 1 unchanged" in result.out
    assert page.stat().st_mtime_ns == before


def test_enabled_false_turns_the_gallery_off(project, run):
    """``{format: gallery, enabled: false}``: no page is written (thumbnails still are,
    for ``assetpipe review``)."""
    project.gen(
        {
            "specs/icons.yaml": SPEC,
            "assetpipe.yaml": "exports:\n  - {format: gallery, enabled: false}\n",
        }
    )
    build(run)
    assert not (project / "output/index.html").exists()
    assert (project / "output/icons/sword.png").is_file()


def test_an_unchanged_export_is_not_rewritten_by_a_build(project, run):
    """A build whose manifest and plan are those of the last one leaves index.html alone
    (same bytes, same mtime); a deleted page is written again."""
    project.gen({"specs/icons.yaml": SPEC})
    build(run)
    build(run)  # statuses turn from generated to up-to-date: the page changes once
    page = project / "output/index.html"
    before = (page.read_bytes(), page.stat().st_mtime_ns)
    build(run, "--prune")  # --prune never answers from the stamp: the build runs
    assert (page.read_bytes(), page.stat().st_mtime_ns) == before
    page.unlink()
    build(run)
    assert page.read_bytes() == before[0]


def test_unknown_format_is_an_error_at_its_line_with_a_did_you_mean(project, run):
    project.gen(
        {
            "specs/icons.yaml": SPEC,
            "assetpipe.yaml": "concurrency: 2\nexports:\n  - format: galery\n",
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "assetpipe.yaml:3" in result.err
    assert "unknown export format 'galery'" in result.err
    assert "did you mean 'gallery'?" in result.err
    assert "known formats: contact-sheet, csharp, gallery, gdscript, json, typescript" in result.err


def test_an_unknown_option_is_an_error_at_its_line(project, run):
    project.gen(
        {
            "specs/icons.yaml": SPEC,
            "assetpipe.yaml": "exports:\n  - format: gallery\n    tittle: x\n",
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "assetpipe.yaml:3" in result.err
    assert "unknown key 'tittle'" in result.err


def test_an_export_needs_a_format(project, run):
    project.gen({"specs/icons.yaml": SPEC, "assetpipe.yaml": "exports:\n  - {path: x.csv}\n"})
    result = run("validate")
    assert result.code == 2
    assert "an export needs 'format'" in result.err


def test_a_job_writing_where_an_export_writes_is_a_spec_error(project, run):
    """An asset whose file would be the gallery's is refused before anything is built."""
    project.gen({"specs/.gallery.yaml": SPEC})
    result = run("validate")
    if result.code == 0:  # dot-files are not spec files: nothing to collide with
        pytest.skip("spec files starting with '.' are not collections")
    assert "where the gallery export writes" in result.err


def test_export_needs_a_manifest(project, run):
    project.gen({"specs/icons.yaml": SPEC})
    result = run("export")
    assert result.code == 2
    assert "nothing to export yet; run assetpipe build first" in result.err


def test_the_default_atlas_is_the_texturepacker_json_and_keys_stay_the_same(project, run):
    """``atlas: [texturepacker-hash]`` named explicitly is the default: same job, same
    key, same atlas bytes."""
    project.gen({"specs/icons.yaml": SPEC})
    build(run)
    atlas = project / "output/icons/atlas.json"
    first = atlas.read_bytes()
    manifest = json.loads((project / "output/manifest.json").read_text())
    key = next(e["cache_key"] for e in manifest["entries"] if e["path"] == "icons/atlas.png")
    shutil.rmtree(project / "output")
    project.gen({"specs/icons.yaml": SPEC + "        atlas: [texturepacker-hash]\n"})
    build(run)
    manifest = json.loads((project / "output/manifest.json").read_text())
    entry = next(e for e in manifest["entries"] if e["path"] == "icons/atlas.png")
    assert entry["cache_key"] == key
    assert "atlas" not in entry["params"]
    assert atlas.read_bytes() == first
    assert json.loads(first)["meta"]["image"] == "atlas.png"


def test_an_unknown_atlas_format_is_a_spec_error(project, run):
    project.gen({"specs/icons.yaml": SPEC + "        atlas: [texturepacker-hsah]\n"})
    result = run("validate")
    assert result.code == 2
    assert "unknown atlas format 'texturepacker-hsah'" in result.err
    assert "did you mean 'texturepacker-hash'?" in result.err
    assert "icons.yaml:14" in result.err


def test_the_collision_check_lists_the_files_the_planner_does(project, run):
    """The exporters' check of job paths and the planner's own list agree, job by job."""
    from pipeline import api

    project.gen({"specs/icons.yaml": SPEC})
    ws = api.open_workspace(api.Request(project=project.root), credentials=False)
    plan: Plan = ws.full_plan
    assert plan.jobs
    for job in plan.jobs:
        assert list(job_files(job)) == written_paths(job)
