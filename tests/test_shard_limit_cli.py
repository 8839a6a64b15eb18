"""How a sharded build says it shares the organisation's limit (progress line, JSON)."""

from __future__ import annotations

import json

import pytest
from processes import many

from pipeline.jobs.shards import PacingNote

SPEC = """\
assets:
  - id: emblem
    prompt: An emblem
    size: 1024x1024
"""


TURNS = "in turns on a shared clock (taking over the turns of shards that stop)"


def owner(run) -> str:
    """The shard of 3 that owns the one job."""
    for i in (1, 2, 3):
        result = run("plan", "--json", "--provider", "openai", "--shard", f"{i}/3")
        assert result.code == 0, result.err
        if json.loads(result.out)["jobs"]:
            return f"{i}/3"
    raise AssertionError("no shard owns the job")


def test_a_given_limit_is_split_by_each_shards_part_of_the_paid_jobs(
    project, run, api, monkeypatch
):
    """ASSETPIPE_IMAGES_PER_MINUTE=120 on shard i/3 of six jobs: each shard paces at its
    part of the 120 by its part of the paid jobs (so shards of unequal size finish
    together), in turns on a clock the shards share, and the progress line and build
    --json say so."""
    project.gen({"specs/set.yaml": many(6)})
    counts = {}
    for i in (1, 2, 3):
        result = run("plan", "--json", "--provider", "openai", "--shard", f"{i}/3")
        assert result.code == 0, result.err
        counts[i] = len(json.loads(result.out)["jobs"])
    assert sum(counts.values()) == 6
    shard = max(counts, key=lambda i: counts[i])
    paced = 120 * counts[shard] / 6
    expected = (
        f"pacing at {paced:g} images/min: 120 shared by 3 shards, "
        f"by its {counts[shard] / 6:.0%} of the paid jobs, {TURNS}"
    )
    monkeypatch.setenv("ASSETPIPE_IMAGES_PER_MINUTE", "120")
    result = run("build", "--provider", "openai", "--shard", f"{shard}/3", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["pacing"] == {
        "images_per_minute": paced,
        "limit": 120.0,
        "shared_by": 3,
        "share": round(counts[shard] / 6, 4),
        "turns": True,
        "line": expected,
    }
    api.reset_counters()
    plain = run("build", "--provider", "openai", "--shard", f"{shard}/3", "--force")
    assert plain.code == 0, plain.err
    assert f"; {expected}" in plain.err


def test_an_even_split_is_said_when_no_share_is_known():
    """A note without a share (nothing planned to pay for) splits the limit evenly."""
    note = PacingNote(120.0, 3)
    assert note.paced_at == 40.0
    assert note.line() == "pacing at 40 images/min: 120 shared by 3 shards"


def test_limit_scope_shard_keeps_the_whole_limit(project, run, api, monkeypatch):
    """``limit_scope: shard`` in assetpipe.yaml (each shard its own organisation): the
    given limit is this shard's, not split."""
    project.gen({"specs/set.yaml": SPEC, "assetpipe.yaml": "limit_scope: shard\n"})
    shard = owner(run)
    monkeypatch.setenv("ASSETPIPE_IMAGES_PER_MINUTE", "120")
    result = run("build", "--provider", "openai", "--shard", shard, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["pacing"]["line"] == (
        "pacing at 120 images/min: this shard's own limit"
    )


def test_an_unsharded_build_says_nothing_about_sharing(project, run, api, monkeypatch):
    """Without --shard there is nothing to share: no pacing key in build --json."""
    project.gen({"specs/set.yaml": SPEC})
    monkeypatch.setenv("ASSETPIPE_IMAGES_PER_MINUTE", "120")
    result = run("build", "--provider", "openai", "--json")
    assert result.code == 0, result.err
    assert "pacing" not in json.loads(result.out)


def test_a_bad_limit_scope_is_a_usage_error(project, run, monkeypatch):
    """ASSETPIPE_LIMIT_SCOPE takes organisation or shard, and says so."""
    project.gen({"specs/set.yaml": SPEC})
    monkeypatch.setenv("ASSETPIPE_LIMIT_SCOPE", "team")
    result = run("build", "--provider", "preview")
    assert result.code == 2
    assert "ASSETPIPE_LIMIT_SCOPE" in result.err
    assert "organisation" in result.err


@pytest.mark.parametrize(
    ("given", "sharers", "line"),
    [
        (120.0, 3, "pacing at 40 images/min: 120 shared by 3 shards"),
        (100.0, 3, "pacing at 33.3 images/min: 100 shared by 3 shards"),
        (None, 4, "pacing at the limit the API's answers advertise, shared by 4 shards"),
        (50.0, 1, "pacing at 50 images/min: this shard's own limit"),
    ],
)
def test_the_pacing_line(given, sharers, line):
    """What the progress line says, for a given or learned limit, shared or not."""
    assert PacingNote(given, sharers).line() == line


@pytest.mark.parametrize(
    ("given", "sharers", "line"),
    [
        (120.0, 3, f"pacing at 40 images/min: 120 shared by 3 shards, {TURNS}"),
        (None, 3, f"pacing at the limit the API's answers advertise, shared by 3 shards, {TURNS}"),
        (50.0, 1, "pacing at 50 images/min: this shard's own limit"),
    ],
)
def test_the_pacing_line_says_the_shards_take_turns(given, sharers, line):
    """Shards that know their place among the others take turns, and say so (never a
    shard whose limit is its own)."""
    assert PacingNote(given, sharers, turns=True).line() == line
