"""``build --batch``: the whole build through the Batch API, at half the price.

Every test runs the real CLI and the real SDK against the project's fake (``tests/fakeapi.py``
with its Files and Batches endpoints, ``tests/fakebatch.py``). Batches move on per poll,
not per second, and polls are 10 ms apart here, so nothing depends on the machine's speed.
The kill tests run assetpipe as a separate process and kill it at a point the fake holds
(before a batch is created, after it is created but before the answer arrives, halfway
through a result file), then build again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from processes import ASSETPIPE

from pipeline.errors import EXIT_PENDING

POLL = {"ASSETPIPE_BATCH_POLL_SECONDS": "0.01"}


def spec(generations: int, edits: int = 0) -> str:
    """``generations`` cheap assets ``g1..gN`` and ``edits`` edits ``e1..eM`` of them."""
    gens = ", ".join(str(i) for i in range(1, generations + 1))
    text = f"""
        assets:
          - id: "g{{{{ i }}}}"
            prompt: "Emblem number {{{{ i }}}}"
            matrix: {{i: [{gens}]}}
            size: 1024x1024
            quality: low
    """
    if edits:
        ids = ", ".join(str(i) for i in range(1, edits + 1))
        text += f"""
          - id: "e{{{{ i }}}}"
            prompt: "Emblem {{{{ i }}}} in winter colors"
            matrix: {{i: [{ids}]}}
            size: 1024x1024
            quality: low
            edit: {{images: ["g{{{{ i }}}}"]}}
        """
    return text


def manifest(project: Any) -> dict[str, Any]:
    return json.loads((project / "output/manifest.json").read_text("utf-8"))


def entries(project: Any) -> dict[str, dict[str, Any]]:
    return {e["job"]: e for e in manifest(project)["entries"]}


def journal_files(project: Any) -> list[Path]:
    folder = project / ".assetpipe/batches"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture
def batch_env(monkeypatch: pytest.MonkeyPatch, api: Any) -> Any:
    for name, value in POLL.items():
        monkeypatch.setenv(name, value)
    return api


def test_a_project_builds_through_batches_at_half_the_price(project, run, batch_env):
    api = batch_env
    project.gen({"specs/set.yaml": spec(30, 5)})
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    stats = api.batch.stats()
    assert stats["sync_image_requests"] == 0
    assert api.count() == 0
    assert stats["images_billed"] == 35
    assert set(stats["billed_by_custom_id"].values()) == {1}
    assert stats["batches_created"] == 2  # the generations, then the edits of them
    found = entries(project)
    assert {e["status"] for e in found.values()} == {"generated"}
    assert {e["via"] for e in found.values()} == {"batch"}
    assert all(e["batch_id"].startswith("batch_") for e in found.values())
    assert journal_files(project) == []

    # Half of what the same requests cost one by one (the usage the fake reports is the
    # same either way; only the route's price differs).
    batch_cost = sum(e["cost_usd"] for e in found.values())
    (project / "output").rename(project / "batch-output")
    direct_cache = str(project / ".direct-cache")
    direct = run("build", "--force", "--provider", "openai", "--cache-dir", direct_cache)
    assert direct.code == 0, direct.err
    direct_cost = sum(e["cost_usd"] for e in entries(project).values())
    assert batch_cost == pytest.approx(direct_cost / 2, abs=1e-5)
    (project / "output").rename(project / "direct-output")
    (project / "batch-output").rename(project / "output")
    api.reset_counters()
    assert "2 edit requests sent" in result.err or "5 edit requests sent" in result.err

    # The route is not part of the key: a plain build finds everything up to date.
    again = run("build", "--provider", "openai")
    assert again.code == 0, again.err
    assert api.count() == 0
    assert {e["status"] for e in entries(project).values()} == {"up-to-date"}


def test_a_synchronous_result_satisfies_a_batch_build(project, run, batch_env):
    api = batch_env
    project.gen({"specs/set.yaml": spec(3)})
    assert run("build", "--provider", "openai").code == 0
    assert api.count() == 3
    (project / "output/manifest.json").unlink()
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    assert api.batch.stats()["batches_created"] == 0
    assert {e["status"] for e in entries(project).values()} == {"cached"}


def test_no_wait_exits_pending_and_nothing_pays_twice(project, run, batch_env):
    api = batch_env
    project.gen({"specs/set.yaml": spec(4, 1)})
    result = run("build", "--batch", "--no-wait", "--provider", "openai")
    assert result.code == EXIT_PENDING, result.err
    assert len(journal_files(project)) == 1
    assert {e["status"] for e in entries(project).values()} == {"pending"}

    plan = run("plan", "--json", "--provider", "openai")
    states = {j["id"]: j["status"] for j in json.loads(plan.out)["jobs"]}
    assert [states[f"set/g{i}"] for i in range(1, 5)] == ["pending"] * 4
    assert run("check", "--provider", "openai").code == 1

    # A plain build does not pay for requests an open batch holds.
    plain = run("build", "--provider", "openai")
    assert plain.code == EXIT_PENDING, plain.err
    assert api.count() == 0
    assert "build --batch" in plain.err + plain.out

    collected = run("build", "--batch", "--provider", "openai")
    assert collected.code == 0, collected.err
    stats = api.batch.stats()
    assert stats["images_billed"] == 5
    assert set(stats["billed_by_custom_id"].values()) == {1}
    assert journal_files(project) == []
    assert {e["status"] for e in entries(project).values()} == {"generated"}


def test_retryable_lines_go_to_the_next_wave_and_terminal_ones_fail_once(
    project, run, batch_env, monkeypatch
):
    api = batch_env
    monkeypatch.setenv("ASSETPIPE_MAX_ATTEMPTS", "3")
    project.gen({"specs/set.yaml": spec(4)})
    api.batch.configure(
        line_faults={
            "prompt:number 2": ["rate_limit", "ok"],
            "prompt:number 3": "object:server_error",
            "prompt:number 4": "moderation",
        }
    )
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 1, result.err
    found = entries(project)
    assert [found[f"set/g{i}"]["status"] for i in range(1, 5)] == [
        "generated",
        "generated",
        "failed",
        "failed",
    ]
    assert found["set/g4"]["error"]["type"] == "moderation"
    assert found["set/g3"]["error"]["type"] == "server"
    stats = api.batch.stats()
    assert stats["images_billed"] == 2
    # g2 came back in the second wave; g3 went out in three waves (its attempts); g4 once.
    assert stats["lines_run"] == 4 + 2 + 1
    assert found["set/g3"]["error"]["message"]


def test_an_expired_batch_keeps_its_output_and_resends_the_rest(project, run, batch_env):
    api = batch_env
    project.gen({"specs/set.yaml": spec(6)})
    api.batch.configure(batch_script=["expire"], in_progress_polls=4)
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    stats = api.batch.stats()
    assert stats["statuses"].get("expired") == 1
    assert stats["images_billed"] == 6
    assert set(stats["billed_by_custom_id"].values()) == {1}


def test_a_planted_journal_file_is_skipped_with_a_warning(project, run, batch_env):
    project.gen({"specs/set.yaml": spec(1)})
    folder = project / ".assetpipe/batches"
    folder.mkdir(parents=True)
    (folder / ("0" * 32 + ".json")).write_text('{"version": 1, "lines": "../../etc"}')
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    assert "skipping the unreadable batch journal file" in result.err


def test_batch_needs_a_provider_with_a_batch_api(project, run):
    project.gen({"specs/set.yaml": spec(1)})
    result = run("build", "--batch", "--provider", "preview")
    assert result.code == 2
    assert "the preview provider has no Batch API" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("hold", ["create_before", "create_after", "content"])
def test_killed_at_any_point_nothing_is_sent_twice_or_lost(project, batch_env, hold):
    """kill -9 while the fake holds the build at ``hold``, then build again: every image is
    billed exactly once, and the second build creates a batch only when the first never
    got one created."""
    api = batch_env
    project.gen({"specs/set.yaml": spec(5)})
    api.batch.configure(hold=hold)
    env = {**os.environ, **POLL}  # the api fixture points OPENAI_BASE_URL at the fake
    command = [
        *ASSETPIPE,
        "build",
        "--batch",
        "--provider",
        "openai",
        "--project",
        str(project.root),
    ]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert api.batch.held.wait(timeout=60), "the build never reached the hold point"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    api.batch.configure(hold=None)
    api.batch.release.set()
    created_before = api.batch.stats()["batches_created"]
    assert created_before == (0 if hold == "create_before" else 1)
    assert len(journal_files(project)) == 1  # written before the create call

    again = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    stats = api.batch.stats()
    assert stats["sync_image_requests"] == 0
    assert stats["batches_created"] == 1  # the batch of the first build, or (never made) one new
    assert stats["images_billed"] == 5
    assert set(stats["billed_by_custom_id"].values()) == {1}
    assert journal_files(project) == []
    assert {e["status"] for e in entries(project).values()} == {"generated"}


def test_batch_list_status_and_cancel(project, run, batch_env):
    api = batch_env
    project.gen({"specs/set.yaml": spec(4)})
    api.batch.configure(in_progress_polls=50)
    assert run("build", "--batch", "--no-wait", "--provider", "openai").code == EXIT_PENDING
    (batch_id,) = api.batch.batches

    listed = run("batch", "list")
    assert listed.code == 0, listed.err
    assert batch_id in listed.out
    assert "1 open batch;" in listed.out
    status = run("batch", "status", batch_id)
    assert status.code == 0, status.err
    assert "4 generate requests" in status.out
    assert run("batch", "status", "batch_nope").code == 2

    cancelled = run("batch", "cancel", "--yes")
    assert cancelled.code == 0, cancelled.err
    assert f"{batch_id}: cancelling" in cancelled.out
    assert api.batch.stats()["cancels"] == 1

    # The next build collects what ran and does not send the cancelled lines again.
    collected = run("build", "--batch", "--provider", "openai")
    assert collected.code == 1, collected.err
    found = entries(project)
    failed = [e for e in found.values() if e["status"] == "failed"]
    assert failed and all("cancel" in e["error"]["message"] for e in failed)
    stats = api.batch.stats()
    assert stats["batches_created"] == 1
    assert stats["images_billed"] == sum(e["status"] == "generated" for e in found.values())
    assert journal_files(project) == []
    assert run("batch", "list").out.startswith("no open batches")


def test_a_journal_that_cannot_be_written_sends_nothing(project, run, batch_env):
    api = batch_env
    project.gen({"specs/set.yaml": spec(2), ".assetpipe/batches": "not a folder\n"})
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 1
    assert api.batch.stats()["batches_created"] == 0
    assert api.batch.stats()["files_uploaded"] == 0
    errors = [e["error"]["message"] for e in entries(project).values()]
    assert errors and all("cannot write the batch journal" in m for m in errors)
    assert all("nothing was sent" in m for m in errors)


def test_plan_batch_estimates_at_half_price(project, run):
    project.gen({"specs/set.yaml": spec(4)})
    full = json.loads(run("plan", "--json", "--provider", "preview").out)["totals"]
    half = json.loads(run("plan", "--json", "--batch", "--provider", "preview").out)["totals"]
    assert half["price_factor"] == 0.5
    assert half["estimated_cost_usd"] == pytest.approx(full["estimated_cost_usd"] / 2)
    table = run("plan", "--batch", "--provider", "preview")
    assert "at Batch API prices" in table.out.splitlines()[-1]


def test_no_wait_goes_with_batch(project, run):
    project.gen({"specs/set.yaml": spec(1)})
    result = run("build", "--no-wait", "--provider", "preview")
    assert result.code == 2
    assert "--no-wait goes with --batch" in result.err


def test_batch_max_lines_splits_a_wave_into_batches(project, run, batch_env):
    api = batch_env
    project.gen({"specs/set.yaml": spec(5), "assetpipe.yaml": "batch_max_lines: 2\n"})
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    stats = api.batch.stats()
    assert stats["batches_created"] == 3  # 2 + 2 + 1 requests
    assert stats["images_billed"] == 5


def dead_url() -> str:
    """An API base URL on a local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_a_journaled_batch_the_api_does_not_know_is_forgotten_and_sent_again(
    project, run, batch_env, monkeypatch
):
    """A journal entry naming a batch the API answers 404 for: forgotten with one warning,
    its requests sent in this build, each paid once. A 5xx or a refused connection on
    the same poll says nothing about the batch: the entry stays and nothing is sent."""
    api = batch_env
    project.gen({"specs/set.yaml": spec(3)})
    assert run("build", "--batch", "--no-wait", "--provider", "openai").code == EXIT_PENDING
    (path,) = journal_files(project)
    planted = {**json.loads(path.read_text("utf-8")), "batch_id": "batch_unknown404"}
    path.write_text(json.dumps(planted), "utf-8")
    api.batch.reset_counters()

    api.batch.configure(retrieve_faults=["server_error"])
    server_error = run("build", "--batch", "--no-wait", "--provider", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", dead_url())
    refused = run("build", "--batch", "--no-wait", "--provider", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
    for result in (server_error, refused):
        assert result.code == EXIT_PENDING, result.err
        assert "sent again" not in result.err
        assert "batch_unknown404: collecting the 3 requests" in result.err
    assert journal_files(project) == [path]
    assert json.loads(path.read_text("utf-8")) == planted
    stats = api.batch.stats()
    assert (stats["retrieve_faults"], stats["files_uploaded"], stats["lines_run"]) == (1, 0, 0)

    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: batch batch_unknown404 is unknown to the Batch API (404); its journal "
        "entry is forgotten and its 3 requests will be sent again"
    ]
    stats = api.batch.stats()
    assert stats["batches_created"] == 1
    assert stats["images_billed"] == 3
    assert set(stats["billed_by_custom_id"].values()) == {1}
    assert stats["sync_image_requests"] == 0
    assert journal_files(project) == []
    assert {e["status"] for e in entries(project).values()} == {"generated"}
    assert run("build", "--batch", "--provider", "openai").code == 0
    assert api.batch.stats()["batches_created"] == 1


def test_a_journal_file_with_control_characters_in_its_batch_id_never_reaches_the_terminal(
    project, run, batch_env
):
    """A batch id holding an escape sequence is refused with the file (which is named,
    never quoted), so no id taken from the journal can garble the build's output."""
    api = batch_env
    project.gen({"specs/set.yaml": spec(1)})
    assert run("build", "--batch", "--no-wait", "--provider", "openai").code == EXIT_PENDING
    (path,) = journal_files(project)
    planted = {**json.loads(path.read_text("utf-8")), "batch_id": "batch_\x1b]0;owned\x07"}
    path.write_text(json.dumps(planted), "utf-8")
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    assert "skipping the unreadable batch journal file" in result.err
    assert "\x1b" not in result.err + result.out
    assert api.batch.stats()["images_billed"] == 1


def test_a_trickled_result_file_ends_at_its_deadline_and_the_next_build_collects(
    project, run, batch_env
):
    """The output file arrives a byte at a time, faster than any read times out: the
    download stops at its total deadline (1.5 x --timeout per request), the build ends
    pending with the journal kept, and the next build collects what was paid, once."""
    api = batch_env
    project.gen({"specs/set.yaml": spec(1)})
    api.configure(trickle_seconds=0.02)
    api.batch.configure(trickle_content=True)
    result = run("build", "--batch", "--timeout", "2", "--provider", "openai")
    assert result.code == EXIT_PENDING, result.err
    assert "results could not be read" in result.err
    assert "did not arrive within 3 s, its total deadline" in result.err
    assert "the next build --batch tries again" in result.err
    assert len(journal_files(project)) == 1
    assert {e["status"] for e in entries(project).values()} == {"pending"}
    stats = api.batch.stats()
    assert stats["content_downloads"] == 1  # not tried again in the same build
    assert stats["images_billed"] == 1

    api.batch.configure(trickle_content=False)
    again = run("build", "--batch", "--provider", "openai")
    assert again.code == 0, again.err
    stats = api.batch.stats()
    assert stats["batches_created"] == 1
    assert stats["images_billed"] == 1
    assert set(stats["billed_by_custom_id"].values()) == {1}
    assert journal_files(project) == []
    assert {e["status"] for e in entries(project).values()} == {"generated"}
