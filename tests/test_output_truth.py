"""Output that tells the truth: plan reasons and totals, progress words, JSON on failure,
checks that mean something, stale files, folders relative to where the user is.

Through the CLI where the behaviour is the CLI's, with exact exit codes and messages.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.api import BuildResult
from pipeline.cli import render
from pipeline.jobs import ApiJob
from pipeline.progress import PlainReporter, _eta
from pipeline.runner.outcome import Outcome, RunReport

SPEC = """
    brand: {name: Acme, colors: {ember: "#E4572E", night: "#2B2D42"}}
    assets:
      - id: a
        prompt: "a cat"
        size: 1024x1024
        quality: low
        renditions: [{size: 64x64}]
      - id: b
        prompt: "a dog"
        size: 1024x1024
        quality: low
"""


def manifest(project: Any) -> dict[str, dict[str, Any]]:
    doc = json.loads((project / "output/manifest.json").read_text("utf-8"))
    return {e["job"]: e for e in doc["entries"]}


def test_plan_says_what_changed_and_prices_only_what_it_would_pay_for(project, run):
    project.gen({"specs/set.yaml": SPEC})
    assert run("build", "--provider", "preview").code == 0
    (project / "specs/set.yaml").write_text(
        (project / "specs/set.yaml").read_text().replace("a cat", "a black cat")
    )
    (project / "specs/set.yaml").write_text(
        (project / "specs/set.yaml").read_text().replace("quality: low\n", "quality: high\n", 2)
    )
    plan = json.loads(run("plan", "--json", "--provider", "preview").out)
    reasons = {j["id"]: j["reason"] for j in plan["jobs"]}
    assert reasons["set/a"] == 'prompt changed: a +"black" cat; quality: low -> high'
    assert reasons["set/b"] == "quality: low -> high"

    table = run("plan", "--provider", "preview").out.splitlines()
    header, rows, total = table[0], table[1:-1], table[-1]
    assert "reason" in header.split()
    priced = [float(r.split()[-1]) for r in rows if re.search(r"\d\.\d{3}$", r)]
    assert len(priced) == 2  # the two API jobs to generate; the rendition has no price
    match = re.search(r"estimated API cost of this build \$(\d+\.\d\d)", total)
    assert match and abs(float(match[1]) - sum(priced)) < 0.01


def test_progress_uses_the_words_of_the_summary(project, run):
    project.gen({"specs/set.yaml": SPEC})
    assert run("build", "--provider", "preview").code == 0
    (project / "output/set/b.png").unlink()
    result = run("build", "--provider", "preview")
    assert result.code == 0
    assert "building 3 jobs (2 up to date)" in result.err
    assert result.out.startswith("1 cached, 2 up-to-date; spent $0.00")


def test_the_first_eta_waits_for_a_pace():
    reporter = PlainReporter(io.StringIO())
    reporter.started(total=100, done=40)
    reporter.start = time.monotonic() - 10.0
    reporter.finished_job(Outcome(_job(), "generated"))
    assert _eta(reporter) == "ETA unknown"  # 40 were up to date at once: no pace yet
    for _ in range(3):
        reporter.finished_job(Outcome(_job(), "generated"))
    remaining = float(_eta(reporter).removeprefix("ETA ").removesuffix("s"))
    assert 120 < remaining < 160  # 56 left at 4 jobs per ~10 s, not 56 x 10/44 s


def test_validate_does_not_name_a_provider(project, run):
    project.gen({"specs/set.yaml": SPEC})
    result = run("validate")
    assert result.code == 0
    assert "provider" not in result.err
    assert result.out == "ok: 1 spec file, 2 API jobs, 1 rendition\n"


def test_build_json_reports_a_bad_spec_as_json(project, run):
    project.gen({"specs/set.yaml": "assets:\n  - id: a\n    prompt: x\n    colour: red\n"})
    result = run("build", "--json", "--provider", "preview")
    assert result.code == 2
    doc = json.loads(result.out)
    assert doc["exit_code"] == 2
    (error,) = doc["errors"]
    assert {k: error[k] for k in ("message", "file", "line", "column")} == {
        "message": "unknown key 'colour'",
        "file": "specs/set.yaml",
        "line": 4,
        "column": 5,
    }
    assert error["hint"].startswith("allowed keys: aspect, background, brand")
    assert "error: specs/set.yaml:4:5: unknown key 'colour'" in result.err


def test_cache_clear_without_a_terminal_asks_for_yes(project, run):
    project.gen({"specs/set.yaml": SPEC})
    assert run("build", "--provider", "preview").code == 0
    result = run("cache", "clear")
    assert result.code == 2
    assert "pass --yes to confirm" in result.err
    assert (project / ".assetpipe/cache/index.db").exists()
    assert run("cache", "clear", "--yes").code == 0


def test_a_cut_list_of_failed_checks_says_how_many_more(capsys):
    job = _job()
    failed = tuple((f"set/a{i}", "generated", {"name": "size", "ok": False}) for i in range(25))
    report = RunReport({}, None, False, False, 0.0, 1.0)
    result = BuildResult(report, (), Path("output/manifest.json"), 0, failed)
    render.print_build(result, quiet=False)
    err = capsys.readouterr().err
    assert "25 quality checks failed" in err
    assert err.count("set/a") == 20
    assert "  ... and 5 more" in err
    assert job.id  # (the helper job is a valid ApiJob)


def test_preview_placeholders_get_no_palette_verdicts(project, run):
    project.gen({"specs/set.yaml": SPEC})
    assert run("build", "--provider", "preview").code == 0
    names = {job: {c["name"] for c in e["checks"]} for job, e in manifest(project).items()}
    assert all("palette" not in n and "distinct" not in n for n in names.values()), names


def test_renditions_inherit_the_palette_verdict_of_their_source(project, run, api):
    project.gen({"specs/set.yaml": SPEC})
    assert run("build", "--provider", "openai").code == 0
    found = manifest(project)
    source = [c for c in found["set/a"]["checks"] if c["name"] == "palette"]
    copy = [c for c in found["set/a@64x64"]["checks"] if c["name"] == "palette"]
    assert source and copy == source


def test_check_stale_fails_while_files_of_removed_assets_remain(project, run):
    project.gen({"specs/set.yaml": SPEC})
    assert run("build", "--provider", "preview").code == 0
    (project / "specs/set.yaml").write_text(
        (project / "specs/set.yaml").read_text().split("  - id: b")[0]
    )
    assert run("build", "--provider", "preview").code == 0
    result = run("check", "--stale", "--provider", "preview")
    assert result.code == 1
    assert result.out.splitlines() == [
        "stale     set/b.png",
        "1 file of removed assets remains; assetpipe build --prune removes them",
    ]
    assert run("build", "--prune", "--provider", "preview").code == 0
    assert run("check", "--stale", "--provider", "preview").code == 0


def test_a_relative_output_flag_is_relative_to_the_current_folder(
    project, run, tmp_path, monkeypatch
):
    project.gen({"specs/set.yaml": SPEC})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run("build", "--provider", "preview", "--output", "out")
    assert result.code == 0, result.err
    assert (elsewhere / "out/set/a.png").is_file()
    assert not (project / "out").exists()


def _job() -> ApiJob:
    return ApiJob(
        id="set/a",
        collection="set",
        asset="a",
        variant=1,
        output_path="set/a.png",
        source="specs/set.yaml:2",
        size=(64, 64),
        kind="generate",
        model="gpt-image-2.5-flare",
        provider="preview",
        prompt="a cat",
        endpoint="images/generations",
        params={},
        requested_size=(64, 64),
    )


def test_help_loads_no_planner_runner_or_sdk():
    """`assetpipe --help` answers at once: it imports the commands, not what they run
    (checked by the modules loaded, not by a timer)."""
    probe = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('pipeline.planner', 'pipeline.runner', 'pipeline.store', 'openai', "
        "'PIL', 'pydantic', 'jinja2', 'starlette')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"
    assert "Usage: assetpipe" in done.stdout


def test_the_remote_mode_choices_are_the_stores():
    from pipeline.cli.options import REMOTE_MODES as CHOICES
    from pipeline.store import REMOTE_MODES

    assert tuple(CHOICES) == tuple(REMOTE_MODES)
