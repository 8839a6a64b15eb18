"""Edges of the command line: what ``pick`` does without ``#K``, what ``--json`` keeps on
stdout and stderr, what ``check`` tells the user to run, and counts that agree with their
nouns.

Through the CLI (in-process, see ``run`` in conftest.py), each with its exit code and
its exact message.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pipeline.api import BuildResult
from pipeline.cli import render
from pipeline.errors import EXIT_PENDING
from pipeline.runner.outcome import RunReport

CHARS = """
    assets:
      - id: hero
        prompt: "a brave knight"
        size: 256x256
        variants: 3
      - id: sidekick
        prompt: "a loyal squire"
        size: 256x256
"""

ONE = """
    assets:
      - id: a
        prompt: "a cat"
        size: 1024x1024
        quality: low
"""

BAD = "assets:\n  - id: a\n    prompt: x\n    colour: red\n"
"""A spec with an unknown key at specs/set.yaml:4:5."""


def lines(text: str, *, progress: bool = False) -> list[str]:
    """The lines of ``text``, without the ``progress:`` lines (printed every few seconds,
    so how many there are depends on the machine's speed) unless ``progress``."""
    return [line for line in text.splitlines() if progress or not line.startswith("progress:")]


# -- 1. pick without #K ---------------------------------------------------------------------


def test_pick_without_k_lists_the_variants_of_an_asset_that_has_several(project, run):
    """Pins: ``pick chars/hero`` on a three-variant asset exits 2 without touching the
    lock, saying how to pick one and listing each variant as it is typed, with the file
    to look at (variant 1 at the asset's own path until something is picked)."""
    project.gen({"specs/chars.yaml": CHARS})
    result = run("pick", "chars/hero", "--provider", "preview")
    assert result.code == 2
    assert result.out == ""
    assert result.err.splitlines() == [
        "error: chars/hero has 3 variants; name the one to approve: assetpipe pick chars/hero#K",
        "  chars/hero#1  output/chars/hero.png",
        "  chars/hero#2  output/chars/hero.v2.png",
        "  chars/hero#3  output/chars/hero.v3.png",
    ]
    assert not (project / "assetpipe.lock").exists()


def test_pick_without_k_lists_the_numbered_paths_once_a_variant_is_picked(project, run):
    """Pins: after ``pick chars/hero#2`` the approved image has the asset's path and every
    variant its numbered one; ``pick chars/hero`` lists those (the files that exist) and
    leaves the pick as it was."""
    project.gen({"specs/chars.yaml": CHARS})
    assert run("build", "--provider", "preview").code == 0
    assert run("pick", "chars/hero#2", "--provider", "preview").code == 0
    before = (project / "assetpipe.lock").read_bytes()
    result = run("pick", "chars/hero", "--provider", "preview")
    assert result.code == 2
    assert result.err.splitlines()[1:] == [
        "  chars/hero#1  output/chars/hero.v1.png",
        "  chars/hero#2  output/chars/hero.v2.png",
        "  chars/hero#3  output/chars/hero.v3.png",
    ]
    assert (project / "assetpipe.lock").read_bytes() == before


def test_pick_without_k_approves_the_only_variant(project, run):
    """Pins: an asset with one variant may still be picked without ``#K`` (exit 0), and
    the lock records variant 1."""
    project.gen({"specs/chars.yaml": CHARS})
    assert run("build", "--provider", "preview").code == 0
    result = run("pick", "chars/sidekick", "--provider", "preview")
    assert result.code == 0, result.err
    assert result.out.startswith("picked chars/sidekick")
    lock = tomllib.loads((project / "assetpipe.lock").read_text("utf-8"))
    assert lock["assets"]["chars/sidekick"]["variant"] == 1


# -- 2. --json: stdout is JSON, stderr the progress -------------------------------------------


def test_build_json_prints_the_plain_progress_lines_on_stderr(project, run):
    """Pins: ``build --json`` keeps stdout one JSON document and prints on stderr the
    lines a build without a terminal prints (the same as a plain build of the same
    project), singular for one job."""
    project.gen({"specs/set.yaml": ONE})
    result = run("build", "--json", "--provider", "preview")
    assert result.code == 0, result.err
    assert json.loads(result.out)["counts"] == {"generated": 1}
    assert lines(result.err) == ["building 1 job (0 up to date)", "generated set/a"]
    assert all(
        line.startswith("progress: 1/1 done") for line in lines(result.err, progress=True)[2:]
    )

    (project / "output").rename(project / "first-output")
    plain = run("build", "--provider", "preview", "--cache-dir", str(project / "fresh-cache"))
    assert plain.code == 0, plain.err
    assert lines(plain.err) == lines(result.err)


def test_build_json_quiet_leaves_stderr_empty(project, run):
    """Pins: with ``-q`` a ``build --json`` that succeeds prints nothing on stderr."""
    project.gen({"specs/set.yaml": ONE})
    result = run("build", "--json", "-q", "--provider", "preview")
    assert result.code == 0, result.err
    assert json.loads(result.out)["exit_code"] == 0
    assert result.err == ""


def test_plan_json_prints_a_spec_error_as_json(project, run):
    """Pins: ``plan --json`` on a bad spec exits 2 with a JSON document on stdout (no
    jobs, the exit code, each error with its place and hint, as ``build --json`` lists
    them) and the human message on stderr."""
    project.gen({"specs/set.yaml": BAD})
    result = run("plan", "--json", "--provider", "preview")
    assert result.code == 2
    doc = json.loads(result.out)
    assert set(doc) == {"jobs", "exit_code", "errors"}
    assert (doc["jobs"], doc["exit_code"]) == ([], 2)
    (error,) = doc["errors"]
    assert {k: error[k] for k in ("message", "file", "line", "column")} == {
        "message": "unknown key 'colour'",
        "file": "specs/set.yaml",
        "line": 4,
        "column": 5,
    }
    assert error["hint"].startswith("allowed keys: aspect, background, brand")
    assert result.err.splitlines()[0] == "error: specs/set.yaml:4:5: unknown key 'colour'"
    built = json.loads(run("build", "--json", "--provider", "preview").out)
    assert built["errors"] == doc["errors"]


def test_plan_without_json_prints_nothing_on_stdout_for_a_spec_error(project, run):
    """Pins: the JSON error document is for ``--json`` only; a plain ``plan`` of a bad
    spec exits 2 with the message on stderr alone."""
    project.gen({"specs/set.yaml": BAD})
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert result.out == ""
    assert result.err.splitlines()[0] == "error: specs/set.yaml:4:5: unknown key 'colour'"


# -- 3. what check says to run; counts that agree -------------------------------------------


BATCHED = """
    assets:
      - id: "g{{ i }}"
        prompt: "Emblem number {{ i }}"
        matrix: {i: [1, 2]}
        size: 1024x1024
        quality: low
"""


@pytest.fixture
def batch_env(monkeypatch: pytest.MonkeyPatch, api: Any) -> Any:
    """The fake API with its Batch endpoints, polled every 10 ms."""
    monkeypatch.setenv("ASSETPIPE_BATCH_POLL_SECONDS", "0.01")
    return api


def test_check_says_build_batch_for_jobs_in_an_open_batch(project, run, batch_env):
    """Pins: when the jobs a build would change wait in an open batch, ``check`` exits 1
    and names ``assetpipe build --batch`` (a plain build exits 4 for them)."""
    project.gen({"specs/set.yaml": BATCHED})
    assert run("build", "--batch", "--no-wait", "--provider", "openai").code == EXIT_PENDING
    result = run("check", "--provider", "openai")
    assert result.code == 1
    assert result.out.splitlines() == [
        "pending   set/g1",
        "pending   set/g2",
        "2 of 2 jobs would change; run assetpipe build --batch (2 jobs wait in open batches)",
    ]
    assert run("build", "--provider", "openai").code == EXIT_PENDING


def test_check_says_build_batch_when_one_job_waits_among_others(project, run, batch_env):
    """Pins: with one job in an open batch and another added since, ``check`` still
    names ``build --batch`` (which collects the one and builds the other), in the
    singular for the one."""
    project.gen({"specs/set.yaml": BATCHED.replace("[1, 2]", "[1]")})
    assert run("build", "--batch", "--no-wait", "--provider", "openai").code == EXIT_PENDING
    project.gen({"specs/set.yaml": BATCHED})
    result = run("check", "--provider", "openai", "-q")
    assert result.code == 1
    assert result.out == (
        "2 of 2 jobs would change; run assetpipe build --batch (1 job waits in an open batch)\n"
    )


def test_check_says_build_when_nothing_waits_in_a_batch(project, run):
    """Pins: without open batches ``check`` names a plain ``assetpipe build``; once up to
    date it counts one job in the singular."""
    project.gen({"specs/set.yaml": ONE})
    result = run("check", "--provider", "preview")
    assert result.code == 1
    assert result.out.splitlines() == [
        "generate  set/a",
        "1 of 1 job would change; run assetpipe build",
    ]
    assert run("build", "--provider", "preview").code == 0
    done = run("check", "--provider", "preview")
    assert (done.code, done.out) == (0, "up to date: 1 job\n")


def test_a_batch_of_one_edit_says_one_edit_request(project, run, batch_env):
    """Pins: a batch of one request says "1 edit request sent" (and "1 generate request
    sent"), never "1 edit requests"; ``batch list`` and ``batch status`` agree too."""
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - {id: g, prompt: "An emblem", size: 1024x1024, quality: low}
                  - id: e
                    prompt: "The emblem in winter colors"
                    size: 1024x1024
                    quality: low
                    edit: {images: [g]}
            """
        }
    )
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    assert ": 1 generate request sent (" in result.err
    assert ": 1 edit request sent (" in result.err
    assert "1 edit requests" not in result.err and "1 generate requests" not in result.err

    project.gen({"specs/set.yaml": ONE})
    assert run("build", "--batch", "--no-wait", "--provider", "openai").code == EXIT_PENDING
    listed = run("batch", "list")
    assert listed.out.splitlines()[-1] == "1 open batch; `assetpipe build --batch` collects them"
    assert "  1 generate request\n" in run("batch", "status").out


def test_validate_counts_agree_with_their_nouns(project, run):
    """Pins: ``validate`` says "1 spec file, 1 API job, 0 renditions", not "(s)"."""
    project.gen({"specs/set.yaml": ONE})
    result = run("validate")
    assert (result.code, result.out) == (0, "ok: 1 spec file, 1 API job, 0 renditions\n")


def test_the_build_summary_counts_one_failed_check_in_the_singular(capsys):
    """Pins: one failed quality check after a build reads "1 quality check failed"."""
    failed = (("set/a", "generated", {"name": "size", "ok": False, "detail": "too small"}),)
    report = RunReport({}, None, False, False, 0.0, 1.0)
    render.print_build(BuildResult(report, (), Path("output/manifest.json"), 0, failed), False)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "1 quality check failed (see `checks` in the manifest and output/index.html):",
        "  set/a: size: too small",
    ]
