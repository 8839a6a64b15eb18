"""The quality gate under ``build --batch``: judge lines through the Batch API at half price.

Real CLI, real SDK, against the fake (``tests/fakeapi.py`` with its Batch API,
``tests/fakebatch.py``, whose ``/v1/responses`` lines the fake judge of
``tests/fakejudge.py`` answers). Batches move on per poll, polls are 10 ms apart, so no
test depends on the machine's speed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from processes import ASSETPIPE

from pipeline.errors import EXIT_PENDING

POLL = {"ASSETPIPE_BATCH_POLL_SECONDS": "0.01"}
ICONS = 4
FAILING = "icon-03"
# One gpt-5-mini call as the fake bills it: 385 input tokens at $0.25/1M, 120 output at $2/1M.
DIRECT_CALL = (385 * 0.25 + 120 * 2.0) / 1e6


def icons_spec() -> str:
    lines = [
        "defaults:",
        "  quality: low",
        "  size: 1024x1024",
        "  expect: {shows: 'one sword, centered, no text', min_score: 0.7}",
        "assets:",
    ]
    for i in range(1, ICONS + 1):
        name = f"icon-{i:02d}"
        marker = " [qa:fail]" if name == FAILING else ""
        lines.append(f"  - id: {name}\n    prompt: 'a sword icon number {i}{marker}'")
    return "\n".join(lines) + "\n"


def qa_checks(project: Any) -> dict[str, dict[str, Any]]:
    data = json.loads((project / "output/manifest.json").read_text())
    return {
        e["job"].split("/")[1]: next(c for c in e["checks"] if c["name"] == "qa")
        for e in data["entries"]
    }


def judge_journal(project: Any) -> list[Path]:
    folder = project / ".assetpipe/judge-batches"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def batch_env(monkeypatch: pytest.MonkeyPatch, api: Any) -> Any:
    for name, value in POLL.items():
        monkeypatch.setenv(name, value)
    return api


def test_batch_qa_judges_in_one_batch_at_half_price_and_a_rebuild_judges_nothing(
    project, run, batch_env
):
    api = batch_env
    project.gen({"specs/icons.yaml": icons_spec()})
    result = run("build", "--batch", "--qa", "--provider", "openai")
    assert result.code == 0, result.err
    stats = api.batch.stats()
    assert stats["sync_image_requests"] == 0
    assert api.judge.judge_calls == 0  # no direct /v1/responses call
    assert api.judge.batch_judge_calls == ICONS
    assert stats["judge_lines_billed"] == ICONS
    assert stats["batches_created"] == 2  # the images, then one judging wave
    endpoints = sorted(b.endpoint for b in api.batch.batches.values())
    assert endpoints == ["/v1/images/generations", "/v1/responses"]

    checks = qa_checks(project)
    assert sorted(n for n, c in checks.items() if not c["ok"]) == [FAILING]
    assert checks[FAILING]["score"] == 0.2
    assert checks[FAILING]["reasons"] == ["the subject is wrong"]
    passing = checks["icon-01"]
    assert passing["verdict"] == "pass"
    assert passing["via"] == "batch"
    assert passing["cost_usd"] == round(DIRECT_CALL / 2, 6)  # the batch discount
    assert judge_journal(project) == []
    assert "judge requests sent" in result.err

    shutil.rmtree(project / "output")
    again = run("build", "--batch", "--qa", "--provider", "openai")
    assert again.code == 0, again.err
    assert api.judge.batch_judge_calls == ICONS
    assert api.batch.stats()["batches_created"] == 2
    assert qa_checks(project)[FAILING]["cached"] is True

    # The memo is shared with direct judging: a plain build --qa pays for nothing either.
    shutil.rmtree(project / "output")
    direct = run("build", "--qa", "--provider", "openai")
    assert direct.code == 0, direct.err
    assert api.judge.judge_calls == 0
    assert qa_checks(project)["icon-01"]["score"] == 0.9


def test_a_judge_line_that_fails_fails_only_its_check(project, run, batch_env):
    api = batch_env
    project.gen({"specs/icons.yaml": icons_spec()})
    assert run("build", "--batch", "--provider", "openai").code == 0  # images first
    api.batch.configure(line_faults={"prompt:number 2": "server_error"})
    api.judge.judge_script.append("refusal")  # the first line the judge answers
    result = run("build", "--batch", "--qa", "--provider", "openai")
    assert result.code == 0, result.err
    checks = qa_checks(project)
    assert checks["icon-02"]["verdict"] == "error"
    assert "server had an error" in checks["icon-02"]["detail"]
    errors = sorted(n for n, c in checks.items() if c["verdict"] == "error")
    assert len(errors) == 2
    refused = next(checks[n] for n in errors if n != "icon-02")
    assert "declined" in refused["detail"]
    assert sum(c["verdict"] in ("pass", "fail") for c in checks.values()) == ICONS - 2
    assert (project / "output/icons/icon-02.png").is_file()
    assert "the judge gave no verdict" in result.err
    assert api.judge.judge_calls == 0
    assert judge_journal(project) == []


def test_an_unfinished_judge_batch_is_collected_by_the_next_build(project, run, batch_env):
    """--no-wait leaves the judge batch in_progress: exit 4 and pending checks; a direct
    build --qa does not pay for those verdicts; the next build --batch collects them."""
    api = batch_env
    project.gen({"specs/icons.yaml": icons_spec()})
    assert run("build", "--batch", "--provider", "openai").code == 0
    api.batch.configure(in_progress_polls=5)
    left = run("build", "--batch", "--no-wait", "--qa", "--provider", "openai")
    assert left.code == EXIT_PENDING, left.err
    assert len(judge_journal(project)) == 1
    assert api.batch.stats()["statuses"].get("completed") == 1  # the images only
    assert all(c.get("pending", "").startswith("batch_") for c in qa_checks(project).values())

    direct = run("build", "--qa", "--provider", "openai")
    assert direct.code == EXIT_PENDING, direct.err
    assert api.judge.judge_calls == 0
    assert "assetpipe build --batch --qa collects it" in direct.err

    collected = run("build", "--batch", "--qa", "--provider", "openai")
    assert collected.code == 0, collected.err
    assert api.judge.batch_judge_calls == ICONS  # each image judged once, in all
    assert api.batch.stats()["batches_created"] == 2
    checks = qa_checks(project)
    assert sorted(n for n, c in checks.items() if not c["ok"]) == [FAILING]
    assert judge_journal(project) == []


def test_killed_after_the_judge_batch_was_created_nothing_is_judged_twice(project, batch_env, run):
    """kill -9 right after the judge batch is created, before its id is recorded: the next
    build finds it by its metadata and collects it instead of sending the lines again."""
    api = batch_env
    project.gen({"specs/icons.yaml": icons_spec()})
    assert run("build", "--batch", "--provider", "openai").code == 0
    api.batch.configure(hold="create_after")
    env = {**os.environ, **POLL}
    command = [*ASSETPIPE, "build", "--batch", "--qa", "--provider", "openai"]
    command += ["--project", str(project.root)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert api.batch.held.wait(timeout=60), "the build never reached the hold point"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    api.batch.configure(hold=None)
    api.batch.release.set()
    assert len(judge_journal(project)) == 1
    again = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    assert api.batch.stats()["batches_created"] == 2
    assert api.judge.batch_judge_calls == ICONS
    assert api.judge.judge_calls == 0
    assert judge_journal(project) == []
    assert sorted(n for n, c in qa_checks(project).items() if not c["ok"]) == [FAILING]


def test_plan_batch_qa_prices_judging_at_the_discount(project, run):
    from pipeline.providers.openai_judge_catalog import openai_judges

    project.gen({"specs/icons.yaml": icons_spec()})
    one = openai_judges()["gpt-5-mini"].estimate("low")
    direct = json.loads(run("plan", "--provider", "openai", "--qa", "--json").out)["totals"]
    batch = json.loads(run("plan", "--provider", "openai", "--qa", "--batch", "--json").out)
    judging = batch["totals"]["judging"]
    assert direct["judging"]["estimated_cost_usd"] == round(ICONS * one, 6)
    assert judging["estimated_cost_usd"] == round(ICONS * one / 2, 6)


def test_batch_judging_holds_the_budget(project, run, batch_env):
    """A cap the images fit under but their judging does not: exit 3, no judge line sent."""
    api = batch_env
    project.gen({"specs/icons.yaml": icons_spec()})
    assert run("build", "--batch", "--provider", "openai").code == 0
    result = run("build", "--batch", "--qa", "--max-cost", "0", "--provider", "openai")
    assert result.code == 3, result.err
    assert api.judge.batch_judge_calls == 0
    assert api.batch.stats()["batches_created"] == 1
    assert {c["verdict"] for c in qa_checks(project).values()} == {"error"}


def test_a_journaled_judge_batch_the_api_does_not_know_is_forgotten(project, run, batch_env):
    """A journal entry naming a batch the API answers 404 for: nothing of it was paid, so
    it is forgotten with a warning and the images are judged in a new batch."""
    from pipeline.runner.judge_journal import JudgeJournal, JudgeLine

    api = batch_env
    project.gen({"specs/icons.yaml": icons_spec()})
    assert run("build", "--batch", "--provider", "openai").code == 0
    journal = JudgeJournal(project / ".assetpipe")
    line = JudgeLine("qa-planted", "0" * 64, 0.7, "icons/gone.png")
    journal.recorded(journal.new_entry("openai", "gpt-5-mini", "low", (line,)), "batch_nope")
    result = run("build", "--batch", "--qa", "--provider", "openai")
    assert result.code == 0, result.err
    assert "batch_nope is unknown to the Batch API" in result.err
    assert api.judge.batch_judge_calls == ICONS
    assert judge_journal(project) == []


def test_batch_list_status_and_cancel_show_judge_batches(project, run, batch_env):
    """A judge batch left open by --no-wait is listed beside image batches, saying it
    holds verdicts; `batch cancel` stops it; the next build --batch --qa collects it (each
    cancelled line a check with no verdict, as a cancelled image line is a failed image)
    and the build after that judges those images again."""
    api = batch_env
    project.gen({"specs/icons.yaml": icons_spec()})
    assert run("build", "--batch", "--provider", "openai").code == 0
    api.batch.configure(in_progress_polls=50)
    assert run("build", "--batch", "--no-wait", "--qa", "--provider", "openai").code == 4
    (path,) = judge_journal(project)
    batch_id = json.loads(path.read_text("utf-8"))["batch_id"]

    listed = run("batch", "list")
    assert listed.code == 0, listed.err
    row = next(line for line in listed.out.splitlines() if batch_id in line)
    assert row.split()[1:4] == ["in_progress", "verdicts", "responses"], row
    assert "1 open batch;" in listed.out
    status = run("batch", "status", batch_id)
    assert status.code == 0, status.err
    assert f"{ICONS} responses requests (the quality gate's verdicts)" in status.out

    cancelled = run("batch", "cancel", "--yes", batch_id)
    assert cancelled.code == 0, cancelled.err
    assert f"{batch_id}: cancelling" in cancelled.out
    api.batch.configure(in_progress_polls=0)
    collected = run("build", "--batch", "--qa", "--provider", "openai")
    assert collected.code == 0, collected.err
    assert f"batch {batch_id} cancelled: 0 verdicts, {ICONS} failed" in collected.err
    assert judge_journal(project) == []
    assert all(c["verdict"] == "error" for c in qa_checks(project).values())
    assert run("batch", "list").out.startswith("no open batches")

    judged = run("build", "--batch", "--qa", "--provider", "openai")
    assert judged.code == 0, judged.err
    checks = qa_checks(project)
    assert sorted(n for n, c in checks.items() if not c["ok"]) == [FAILING]
