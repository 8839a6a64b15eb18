"""``assetpipe init``: a project that validates, plans and builds as written, and never a
byte written over what a user has.

Through the CLI (in-process, see ``run`` in conftest.py), with exit codes and messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.api import scaffold

WRITTEN = ["assetpipe.yaml", "brands/example.yaml", "specs/example.yaml", "templates/example.j2"]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``, by relative path."""
    return {
        path.relative_to(root).as_posix(): None if path.is_dir() else path.read_bytes()
        for path in sorted(root.rglob("*"))
    }


def next_steps(folder: Path) -> list[str]:
    """What init prints after writing into ``folder`` from inside it."""
    return [
        f"wrote a new assetpipe project in {folder}:",
        *(f"  {rel}" for rel in WRITTEN),
        "next:",
        "  assetpipe plan                      # what a build would make, and what it would cost",
        "  assetpipe build --provider preview  # free offline placeholders in output/",
    ]


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder, the current one (as after ``mkdir game && cd game``)."""
    folder = tmp_path / "game"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_init_writes_a_project_that_validates_plans_and_builds(fresh, run):
    """Pins: ``init DIR`` into an empty folder exits 0, writes exactly the four files (no
    output/), says what it wrote and what to run next; ``validate``, ``plan`` and
    ``build --provider preview`` then exit 0 and the build delivers the asset and its
    rendition."""
    result = run("init", str(fresh))
    assert result.code == 0, result.err
    assert result.out.splitlines() == next_steps(fresh)
    assert result.err == ""
    assert sorted(p for p, data in tree(fresh).items() if data is not None) == WRITTEN
    assert not (fresh / "output").exists()

    validated = run("validate", project_dir=fresh)
    assert (validated.code, validated.out) == (0, "ok: 1 spec file, 1 API job, 1 rendition\n")
    planned = run("plan", "--json", project_dir=fresh)
    assert planned.code == 0, planned.err
    jobs = {job["id"]: job for job in json.loads(planned.out)["jobs"]}
    assert set(jobs) == {"example/icon", "example/icon@256x256"}
    prompt = jobs["example/icon"]["prompt"]
    assert "a paper rocket" in prompt and "Example Studio" in prompt and "#E4572E" in prompt
    assert run("plan", project_dir=fresh).code == 0

    built = run("build", "--provider", "preview", project_dir=fresh)
    assert built.code == 0, built.err
    assert (fresh / "output/example/icon.png").is_file()
    assert (fresh / "output/example/icon@256x256.png").is_file()
    entries = json.loads((fresh / "output/manifest.json").read_text("utf-8"))["entries"]
    assert {e["job"]: e["status"] for e in entries} == {
        "example/icon": "generated",
        "example/icon@256x256": "generated",
    }


def test_init_without_dir_writes_into_the_project_folder(tmp_path, run):
    """Pins: with no DIR, init writes into ``--project`` (creating the folder), and the
    next steps start with the ``cd`` into it, since it is not the current folder."""
    folder = tmp_path / "new game"
    result = run("init", project_dir=folder)
    assert result.code == 0, result.err
    cd = f"cd '{folder}'"  # quoted: the path has a space
    width = max(len(cd), len("assetpipe build --provider preview"))
    assert result.out.splitlines() == [
        f"wrote a new assetpipe project in {folder}:",
        *(f"  {rel}" for rel in WRITTEN),
        "next:",
        f"  {cd.ljust(width)}  # the commands read this folder",
        f"  {'assetpipe plan'.ljust(width)}  # what a build would make, and what it would cost",
        f"  {'assetpipe build --provider preview'.ljust(width)}  "
        "# free offline placeholders in output/",
    ]
    assert sorted(p for p, data in tree(folder).items() if data is not None) == WRITTEN


def test_init_again_exits_2_and_changes_nothing(fresh, run):
    """Pins: a second init into the same folder (after a build) exits 2 naming every file
    it would have written, and every byte under the folder is as it was."""
    assert run("init", str(fresh)).code == 0
    assert run("build", "--provider", "preview", project_dir=fresh).code == 0
    before = tree(fresh)
    again = run("init", str(fresh))
    assert again.code == 2
    assert again.out == ""
    assert again.err == (
        f"error: {fresh} already has assetpipe.yaml, brands/example.yaml, "
        "specs/example.yaml, templates/example.j2; assetpipe init never overwrites "
        "anything, so it wrote nothing (move them away, or init another folder)\n"
    )
    assert tree(fresh) == before


def test_init_next_to_one_existing_spec_writes_nothing(fresh, run):
    """Pins: a folder holding only specs/example.yaml gets nothing at all (no settings, no
    brands/ or templates/ folder): exit 2 naming that one file."""
    (fresh / "specs").mkdir()
    (fresh / "specs/example.yaml").write_text("assets: []\n", "utf-8")
    before = tree(fresh)
    result = run("init", str(fresh))
    assert result.code == 2
    assert result.err == (
        f"error: {fresh} already has specs/example.yaml; assetpipe init never overwrites "
        "anything, so it wrote nothing (move it away, or init another folder)\n"
    )
    assert tree(fresh) == before


def test_init_refuses_a_link_where_a_folder_goes(fresh, run, tmp_path):
    """Pins: a symbolic link named ``specs`` would send the spec elsewhere; init names it
    and writes nothing, there or where it points."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (fresh / "specs").symlink_to(elsewhere)
    result = run("init", str(fresh))
    assert result.code == 2
    assert result.err == (
        f"error: {fresh} already has specs (a symbolic link); assetpipe init never "
        "overwrites anything, so it wrote nothing (move it away, or init another folder)\n"
    )
    assert list(elsewhere.iterdir()) == []
    assert sorted(tree(fresh)) == ["specs"]


def test_a_file_that_appears_while_init_writes_is_kept_and_the_rest_taken_back(
    fresh, run, monkeypatch
):
    """Pins: a file that appears between the check and the write (here: the check is
    made to see nothing) is not replaced; init exits 2 and takes back every file and
    folder it had written."""
    (fresh / "templates").mkdir()
    (fresh / "templates/example.j2").write_text("mine\n", "utf-8")
    monkeypatch.setattr(scaffold, "_in_the_way", lambda root, rel: None)
    result = run("init", str(fresh))
    assert result.code == 2
    assert result.err == (
        f"error: cannot write {fresh}/templates/example.j2: File exists; assetpipe init "
        "wrote nothing\n"
    )
    assert tree(fresh) == {"templates": None, "templates/example.j2": b"mine\n"}
