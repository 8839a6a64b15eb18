"""Builds under failure: API faults, budget, fail-fast, the project lock, Ctrl-C and kill -9.

Every test drives the real CLI and the real ``openai`` SDK against the local fake Images API
(in-process, or as a separate process for the signal tests), and pins what docs/reliability.md
and docs/cli.md promise: which failures are retried and which are final, what the manifest says
about every job, which exit code the build ends with, and that a stopped build never pays
twice for what it already received.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeapi import DROPPED, FakeImagesAPI
from PIL import Image
from processes import ASSETPIPE, FakeProcess, build_env, many, start_fake

from pipeline.api.buildlock import project_lock

MODERATED = """
    assets:
      - id: calm
        prompt: "A calm lake"
        size: 1024x1024
        quality: low
      - id: bad
        prompt: "A FORBIDDEN scene"
        size: 1024x1024
        quality: low
      - id: bad-edit
        prompt: "The same scene at night"
        edit: {images: [bad]}
        quality: low
"""


def manifest(project: Any) -> dict[str, Any]:
    return json.loads((project / "output/manifest.json").read_text("utf-8"))


def entries(project: Any) -> dict[str, dict[str, Any]]:
    return {e["job"]: e for e in manifest(project)["entries"]}


def statuses(project: Any) -> dict[str, str]:
    return {job: e["status"] for job, e in entries(project).items()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prompts(api: FakeImagesAPI) -> list[str]:
    return [str(r.fields.get("prompt")) for r in api.requests]


# -- terminal failures: reported once, never retried -----------------------------------------


def test_moderation_block_fails_the_job_blocks_its_edit_and_spares_the_rest(project, run, api):
    """A moderation_blocked prompt is requested exactly once (not retried) and ends `failed`
    with the API's code and moderation_details; the edit of it ends `blocked` without a
    request; an independent asset is `generated`; the build exits 1."""
    project.gen({"specs/scene.yaml": MODERATED})
    result = run("build", "--provider", "openai")
    assert result.code == 1, result.err
    got = entries(project)
    assert {job: e["status"] for job, e in got.items()} == {
        "scene/calm": "generated",
        "scene/bad": "failed",
        "scene/bad-edit": "blocked",
    }
    error = got["scene/bad"]["error"]
    assert error["type"] == "moderation"
    assert error["code"] == "moderation_blocked"
    assert error["status"] == 400
    assert error["moderation_details"] == {"moderation_stage": "input", "categories": ["violence"]}
    assert got["scene/bad"]["sha256"] is None
    assert got["scene/bad-edit"]["error"]["type"] == "blocked"
    assert "scene/bad" in got["scene/bad-edit"]["error"]["message"]
    assert sorted(prompts(api)) == ["A FORBIDDEN scene", "A calm lake"]
    assert api.count(endpoint="edits") == 0
    assert api.billed_images == 1
    assert not (project / "output/scene/bad.png").exists()


ACCOUNT_FAULTS = [
    # fault, HTTP status, API error code, failure type, the line of advice printed once
    (
        "insufficient_quota",
        429,
        "insufficient_quota",
        "quota",
        "the account is out of quota (insufficient_quota)",
    ),
    ("unauthorized", 401, "invalid_api_key", "auth", "the API key was rejected (401)"),
    ("forbidden", 403, None, "permission", "access denied (403)"),
]


@pytest.mark.parametrize(("fault", "status", "code", "kind", "advice"), ACCOUNT_FAULTS)
def test_account_failure_stops_every_new_request(
    project, run, api, fault, status, code, kind, advice
):
    """insufficient_quota, 401 and 403 on the first request are final: no retry and no further
    request at all; the failed job records the status, every other job is `skipped` as not
    started, the advice is printed exactly once, and the build exits 1."""
    project.gen({"specs/set.yaml": many(4)})
    api.script = [fault]
    result = run("build", "--provider", "openai", "--concurrency", "1")
    assert result.code == 1, result.err
    assert api.count() == 1
    assert api.billed_images == 0
    got = entries(project)
    failed = [e for e in got.values() if e["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["prompt"] == api.requests[0].fields["prompt"]
    assert failed[0]["error"]["type"] == kind
    assert failed[0]["error"]["status"] == status
    assert failed[0]["error"]["code"] == code
    skipped = [e for e in got.values() if e["status"] == "skipped"]
    assert len(skipped) == 3
    for entry in skipped:
        assert entry["error"]["type"] == "not_started"
        assert entry["error"]["message"].startswith(f"stopped after {kind} failure")
        assert entry["sha256"] is None
    assert result.err.count(advice) == 1
    if fault == "insufficient_quota":
        assert result.err.count("insufficient_quota") == 1


# -- retryable failures ----------------------------------------------------------------------


def test_rate_limit_waits_for_retry_after_then_succeeds_billed_once(project, run, api):
    """A 429 rate_limit_exceeded with Retry-After: 1 is retried no sooner than 1 s after the
    429 answered; the retry succeeds, one image is billed and the job is `generated`."""
    project.gen({"specs/set.yaml": many(1)})
    api.configure(script=["rate_limit"], script_retry_after=1)
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    first, second = api.requests
    assert (first.status, first.error_code) == (429, "rate_limit_exceeded")
    assert second.status == 200
    assert first.fields["prompt"] == second.fields["prompt"] == "Asset number 1"
    assert first.finished is not None
    assert second.started - first.finished >= 1.0
    assert api.billed_images == 1
    assert statuses(project) == {"set/a1": "generated"}


def test_server_errors_and_dropped_connections_are_retried_until_every_job_is_made(
    project, run, api, monkeypatch
):
    """At a 30% rate of 500s and dropped connections (fixed seed) over 20 jobs, every job is
    retried to success: exit 0, all `generated`, exactly one billed image per job."""
    project.gen({"specs/set.yaml": many(20)})
    monkeypatch.setenv("ASSETPIPE_MAX_ATTEMPTS", "12")  # 0.3**12: no job runs out of attempts
    api.configure(fail_rate=0.3, fail_kinds=["server_error", "drop"], seed=7)
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    assert set(statuses(project).values()) == {"generated"}
    assert len(statuses(project)) == 20
    assert api.billed_images == 20
    faults = api.status_counts[500] + api.status_counts[DROPPED]
    assert api.status_counts[500] > 0
    assert api.status_counts[DROPPED] > 0
    assert api.count() == 20 + faults
    assert api.status_counts[200] == 20


def test_slow_response_beyond_timeout_is_retried(project, run, api):
    """A response slower than --timeout is abandoned at the timeout and retried: the job is
    `generated` with one billed image, long before the stalled answer would have come.

    No wall-clock assertion: the first request still having no status once the build has
    exited shows the build did not wait for the stalled answer, on any machine."""
    project.gen({"specs/set.yaml": many(1)})
    api.configure(script=["slow"], slow_seconds=30)
    result = run("build", "--provider", "openai", "--timeout", "0.5")
    assert result.code == 0, result.err
    first, second = api.requests
    assert first.fault == "slow"
    assert first.status is None  # still stalled on the server after the build exited
    assert second.status == 200
    assert second.started - first.started >= 0.5
    assert api.billed_images == 1
    assert statuses(project) == {"set/a1": "generated"}


# -- budget and fail-fast --------------------------------------------------------------------


def test_budget_stops_new_jobs_then_a_higher_budget_builds_only_the_rest(project, run, api):
    """--max-cost below the plan's estimate exits 3 with the jobs that did not fit `skipped`
    (error type budget) and no more spent than the cap; a build with a higher cap then
    requests exactly the skipped jobs and exits 0."""
    project.gen({"specs/set.yaml": many(6)})
    plan = json.loads(run("plan", "--json", "--provider", "openai").out)
    estimates = [job["estimated_cost_usd"] for job in plan["jobs"]]
    assert len(estimates) == 6
    cap = round(sum(sorted(estimates)[:3]) + min(estimates) / 2, 6)
    assert cap < plan["totals"]["estimated_cost_usd"]

    result = run("build", "--provider", "openai", "--max-cost", str(cap), "--json")
    assert result.code == 3, result.err
    summary = json.loads(result.out)
    assert summary["budget_hit"] is True
    got = entries(project)
    generated = {job for job, e in got.items() if e["status"] == "generated"}
    skipped = {job for job, e in got.items() if e["status"] == "skipped"}
    assert generated | skipped == set(got)
    assert len(generated) >= 3
    assert skipped
    for job in skipped:
        assert got[job]["error"]["type"] == "budget"
        assert "--max-cost" in got[job]["error"]["message"]
    spent = summary["spent_usd"]
    assert 0 < spent <= cap
    assert spent == pytest.approx(sum(got[job]["cost_usd"] for job in generated))
    assert manifest(project)["totals"]["spent_this_build_usd"] == pytest.approx(spent)
    assert api.count() == len(generated)
    first_prompts = set(prompts(api))

    api.requests.clear()
    again = run("build", "--provider", "openai", "--max-cost", "10")
    assert again.code == 0, again.err
    assert set(prompts(api)) == {got[job]["prompt"] for job in skipped}
    assert not first_prompts & set(prompts(api))
    final = statuses(project)
    assert {job for job, s in final.items() if s == "up-to-date"} == generated
    assert {job for job, s in final.items() if s == "generated"} == skipped
    assert api.billed_images == 6


CHAIN = """
    assets:
      - id: hero
        prompt: "A hero"
        size: 1024x1024
        quality: low
      - id: hero-hat
        prompt: "The same hero with a hat"
        edit: {images: [hero]}
        quality: low
"""


def test_edit_of_a_job_the_budget_stopped_is_skipped_not_blocked(project, run, api):
    """When the budget keeps a job from starting, its edit is `skipped` for the same budget
    reason (nothing failed, so nothing is `blocked`); no request is made and the exit is 3."""
    project.gen({"specs/chain.yaml": CHAIN})
    result = run("build", "--provider", "openai", "--max-cost", "0.001")
    assert result.code == 3, result.err
    assert api.count() == 0
    got = entries(project)
    assert {job: e["status"] for job, e in got.items()} == {
        "chain/hero": "skipped",
        "chain/hero-hat": "skipped",
    }
    assert got["chain/hero-hat"]["error"] == got["chain/hero"]["error"]
    assert got["chain/hero"]["error"]["type"] == "budget"
    assert "blocked" not in result.err


def test_fail_fast_skips_every_later_job(project, run, api):
    """With --fail-fast and one request in flight, the first (moderated) failure stops the
    build: no further request, the other jobs `skipped` naming --fail-fast, exit 1."""
    project.gen({"specs/set.yaml": many(4)})
    api.script = ["moderation"]
    result = run("build", "--provider", "openai", "--concurrency", "1", "--fail-fast")
    assert result.code == 1, result.err
    assert api.count() == 1
    got = entries(project)
    failed = [e for e in got.values() if e["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error"]["code"] == "moderation_blocked"
    skipped = [e for e in got.values() if e["status"] == "skipped"]
    assert len(skipped) == 3
    for entry in skipped:
        assert entry["error"]["type"] == "not_started"
        assert entry["error"]["message"] == f"--fail-fast after {failed[0]['job']} failed"


# -- the project lock ------------------------------------------------------------------------


def test_second_build_of_a_locked_project_exits_1(project, run):
    """While another build holds the project lock, a build exits 1 at once with a clear
    message and writes nothing; once the lock is free, the same build succeeds."""
    project.gen({"specs/set.yaml": many(1)})
    with project_lock(project / ".assetpipe"):
        result = run("build", "--provider", "preview")
    assert result.code == 1
    assert "another assetpipe build is running in this project" in result.err
    assert f"pid {os.getpid()}" in result.err
    assert "Traceback" not in result.err
    assert not (project / "output").exists()
    assert run("build", "--provider", "preview").code == 0


# -- Ctrl-C and kill -9 against a separate fake process ---------------------------------------

SIGNAL_JOBS = 16
SIGNAL_CONCURRENCY = 4


@pytest.fixture
def fake_process() -> Iterator[FakeProcess]:
    """A fake Images API process answering after 1 s of latency."""
    with start_fake("--latency", "1.0") as fake:
        yield fake


def build_command(project: Any, *extra: str) -> list[str]:
    return [
        *ASSETPIPE,
        "build",
        "--provider",
        "openai",
        "--project",
        str(project.root),
        "--concurrency",
        str(SIGNAL_CONCURRENCY),
        *extra,
    ]


@contextlib.contextmanager
def background_build(project: Any, fake: FakeProcess, log: Path) -> Iterator[subprocess.Popen[str]]:
    """``assetpipe build`` as a child process with its output in ``log``."""
    with (
        log.open("w") as out,
        subprocess.Popen(
            build_command(project),
            env=build_env(fake),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def plan_statuses(project: Any, fake: FakeProcess) -> dict[str, str]:
    """``assetpipe plan --json`` statuses by job id (no network)."""
    command = [*ASSETPIPE, "plan", "--json", "--provider", "openai", "--project", str(project.root)]
    done = subprocess.run(
        command, env=build_env(fake), capture_output=True, text=True, check=True, timeout=60
    )
    return {job["id"]: job["status"] for job in json.loads(done.stdout)["jobs"]}


def rebuild(project: Any, fake: FakeProcess) -> subprocess.CompletedProcess[str]:
    command = build_command(project)
    env = build_env(fake)
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=60)


def test_ctrl_c_keeps_a_consistent_manifest_and_the_next_build_pays_only_for_the_rest(
    project, fake_process, tmp_path
):
    """SIGINT once the first images arrived (the second wave of requests is being billed)
    exits 130 and leaves a manifest whose every listed file exists with its sha256, the
    interrupted jobs `skipped`; the next build requests only what is neither delivered nor
    cached, exits 0, and both builds together pay for at most `concurrency` extra images."""
    project.gen({"specs/set.yaml": many(SIGNAL_JOBS)})
    log = tmp_path / "build.log"
    with background_build(project, fake_process, log) as proc:
        fake_process.wait_for(billed=SIGNAL_CONCURRENCY + 1)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    output = log.read_text()
    assert code == 130, output
    assert "interrupted: finished images are kept" in output
    assert "Traceback" not in output
    doc = manifest(project)
    assert len(doc["entries"]) == SIGNAL_JOBS
    listed = [e for e in doc["entries"] if e["sha256"]]
    assert len(listed) >= SIGNAL_CONCURRENCY
    for entry in listed:
        assert entry["status"] == "generated"
        path = project / "output" / entry["path"]
        assert sha(path) == entry["sha256"], entry["path"]
    for entry in doc["entries"]:
        if not entry["sha256"]:
            assert entry["status"] == "skipped"
            assert entry["error"] == {"type": "not_started", "message": "interrupted"}
    before = fake_process.settle()
    missing = {job for job, s in plan_statuses(project, fake_process).items() if s == "generate"}

    again = rebuild(project, fake_process)
    assert again.returncode == 0, again.stderr
    after = fake_process.settle()
    assert after["requests"] - before["requests"] == len(missing)
    final = statuses(project)
    assert len(final) == SIGNAL_JOBS
    assert {job for job, s in final.items() if s == "generated"} == missing
    assert set(final.values()) <= {"generated", "cached", "up-to-date"}
    assert SIGNAL_JOBS <= after["billed_images"] <= SIGNAL_JOBS + SIGNAL_CONCURRENCY


def test_kill_9_loses_at_most_the_requests_in_flight(project, fake_process, tmp_path):
    """After SIGKILL mid-build, the next build requests exactly the jobs that were not
    committed (none of those finished before the kill), delivers files Pillow can open, and
    the two builds together pay for at most `concurrency` images more than there are jobs."""
    project.gen({"specs/set.yaml": many(SIGNAL_JOBS)})
    log = tmp_path / "build.log"
    with background_build(project, fake_process, log) as proc:
        fake_process.wait_for(billed=5)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    before = fake_process.settle()
    states = plan_statuses(project, fake_process)
    missing = {job for job, status in states.items() if status == "generate"}
    kept = set(states) - missing
    assert len(kept) >= 1
    assert all(states[job] in ("cached", "up-to-date") for job in kept)
    lost = before["billed_images"] - len(kept)
    assert 0 <= lost <= SIGNAL_CONCURRENCY

    again = rebuild(project, fake_process)
    assert again.returncode == 0, again.stderr
    after = fake_process.settle()
    assert after["requests"] - before["requests"] == len(missing)
    final = statuses(project)
    assert {job for job, s in final.items() if s == "generated"} == missing
    assert {job for job, s in final.items() if s in ("cached", "up-to-date")} == kept
    assert after["billed_images"] == SIGNAL_JOBS + lost
    for entry in manifest(project)["entries"]:
        path = project / "output" / entry["path"]
        assert sha(path) == entry["sha256"], entry["path"]
        with Image.open(path) as image:
            image.load()
            assert image.size == (1024, 1024)
