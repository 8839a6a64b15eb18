"""``build --batch`` with a model the Batch API does not take: its jobs go directly at the
full price, the others in batches at half; ``plan --batch`` says which and what it costs.
And an organisation without preview access is told once, with what to do, and never
retried. The real CLI and SDK against the fake Images and Batch APIs."""

from __future__ import annotations

import json
from typing import Any

import pytest

POLL = {"ASSETPIPE_BATCH_POLL_SECONDS": "0.01"}

SPEC = """\
assets:
  - id: "b{{ i }}"
    prompt: "Batched emblem {{ i }}"
    matrix: {i: [1, 2, 3]}
    model: gpt-image-2.5-flare
    size: 1024x1024
    quality: low
  - id: "d{{ i }}"
    prompt: "Direct emblem {{ i }}"
    matrix: {i: [1, 2]}
    model: gpt-image-2.6-flare
    size: 1024x1024
    quality: low
"""


@pytest.fixture
def batch_env(monkeypatch: pytest.MonkeyPatch, api: Any) -> Any:
    for name, value in POLL.items():
        monkeypatch.setenv(name, value)
    # The Batch API refuses 2.6's lines: a build that batched them would fail.
    api.batch.configure(unbatched_models=("gpt-image-2.6-flare",))
    return api


def test_jobs_of_a_model_without_batch_go_direct_and_the_rest_batched(project, run, batch_env):
    """Three 2.5 jobs in one batch, two 2.6 jobs as synchronous calls; every file made."""
    api = batch_env
    project.gen({"specs/s.yaml": SPEC})
    result = run("build", "--batch", "--provider", "openai")
    assert result.code == 0, result.err
    stats = api.batch.stats()
    assert stats["lines_billed"] == 3
    assert stats["sync_image_requests"] == 2
    assert sorted(r.fields["model"] for r in api.requests) == ["gpt-image-2.6-flare"] * 2
    made = json.loads((project / "output/manifest.json").read_text("utf-8"))["entries"]
    assert sorted(e["job"] for e in made) == ["s/b1", "s/b2", "s/b3", "s/d1", "s/d2"]


def test_plan_batch_prices_direct_jobs_in_full(project, run, api):
    """Batched jobs at half their estimate, direct ones at all of it, and the totals say
    which models go directly and what they cost."""
    project.gen({"specs/s.yaml": SPEC})
    full = json.loads(run("plan", "--json").out)
    half = json.loads(run("plan", "--json", "--batch").out)
    by_id = {j["id"]: j["estimated_cost_usd"] for j in full["jobs"]}
    for job in half["jobs"]:
        share = 1.0 if job["model"] == "gpt-image-2.6-flare" else 0.5
        assert job["estimated_cost_usd"] == pytest.approx(by_id[job["id"]] * share, abs=1e-6)
    direct_cost = sum(v for k, v in by_id.items() if k.startswith("s/d"))
    batched_cost = sum(v for k, v in by_id.items() if k.startswith("s/b"))
    totals = half["totals"]
    assert totals["direct"] == {
        "models": ["gpt-image-2.6-flare"],
        "jobs": 2,
        "estimated_cost_usd": pytest.approx(direct_cost, abs=1e-6),
    }
    assert totals["estimated_cost_usd"] == pytest.approx(direct_cost + batched_cost / 2, abs=1e-5)
    assert "direct" not in full["totals"]
    text = run("plan", "--batch").out
    assert "sent directly at the full price (no Batch API for gpt-image-2.6-flare): 2 jobs" in (
        " ".join(text.split())
    )


def test_no_preview_access_is_reported_once_and_not_retried(project, run, api):
    """The fake answers 403 naming the preview for 2.6-flare: one request, no retry, no
    further job started, and the advice says what to do."""
    api.preview_denied = ["gpt-image-2.6-flare"]
    project.gen({"specs/s.yaml": SPEC.replace("gpt-image-2.5-flare", "gpt-image-2.6-flare")})
    result = run("build", "--provider", "openai", "--concurrency", "1")
    assert result.code != 0
    assert api.count() == 1
    assert api.count(status=403) == 1
    assert result.err.count("no preview access") == 1, result.err
    assert "ask for it in the OpenAI organization settings" in " ".join(result.err.split())
