"""``--shard i/n``: a plan split across CI machines by whole dependency chains.

The partition is a pure function of the plan (``pipeline.jobs.shards``), tested on plain
data and with hypothesis over random job graphs; the CLI tests run ``plan`` and ``build``
with ``--shard`` against the fake API.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_planner_pure import ICONS, plan_of

from pipeline.jobs import ApiJob, Job, Plan
from pipeline.jobs.shards import Shard, anchor, chains, shard_index, shard_plan


def job(name: str, deps: Sequence[str] = ()) -> ApiJob:
    """A job with only what the partition reads: an id and its dependencies."""
    return ApiJob(
        id=name,
        collection="c",
        asset=name,
        variant=1,
        output_path=f"c/{name}.png",
        source="specs/c.yaml:1",
        size=(1024, 1024),
        depends_on=tuple(deps),
        kind="edit" if deps else "generate",
        model="gpt-image-1",
        provider="openai",
        prompt=name,
        endpoint="images/edits" if deps else "images/generations",
        params={},
        requested_size=(1024, 1024),
    )


def owners(plan: Plan, count: int) -> dict[str, int]:
    """Each job's shard, from running every shard of ``count``."""
    found: dict[str, int] = {}
    for index in range(1, count + 1):
        for member in shard_plan(plan, Shard(index, count)).jobs:
            assert member.id not in found, f"{member.id} is in two shards"
            found[member.id] = index
    return found


@st.composite
def graphs(draw: st.DrawFn, prefix: str = "j") -> list[Job]:
    """A random acyclic plan: each job depends on some of the jobs before it."""
    size = draw(st.integers(min_value=0, max_value=30))
    jobs: list[Job] = []
    for i in range(size):
        earlier = [j.id for j in jobs]
        deps = draw(st.lists(st.sampled_from(earlier), max_size=3, unique=True)) if earlier else []
        jobs.append(job(f"{prefix}{i:02d}", deps))
    return jobs


# -- the partition on plain data ---------------------------------------------------------------


def test_shards_keep_chains_whole_on_a_real_plan():
    """An edit goes with the asset it edits, renditions with their source, and a sheet
    joins the chains of its frames: the plan's four chains land whole, each on the shard
    its anchor (the smallest root id) hashes to."""
    plan = plan_of({"icons.yaml": ICONS})
    assert [[j.id for j in chain] for chain in chains(plan.jobs)] == [
        [
            "icons/sword-icon",
            "icons/sword-icon@64x64.webp",
            "icons/bow-icon",
            "icons/bow-icon@64x64.webp",
            "icons/atlas",
        ],
        ["icons/sword-icon#2", "icons/sword-icon#2@64x64.webp"],
        ["icons/bow-icon#2", "icons/bow-icon#2@64x64.webp"],
        ["icons/crest", "icons/crest-night"],
    ]
    assert [anchor(chain) for chain in chains(plan.jobs)] == [
        "icons/bow-icon",
        "icons/sword-icon#2",
        "icons/bow-icon#2",
        "icons/crest",
    ]
    assert [[j.id for j in shard_plan(plan, Shard(i, 3)).jobs] for i in (1, 2, 3)] == [
        ["icons/bow-icon#2", "icons/bow-icon#2@64x64.webp"],
        [
            "icons/sword-icon",
            "icons/sword-icon@64x64.webp",
            "icons/bow-icon",
            "icons/bow-icon@64x64.webp",
            "icons/crest",
            "icons/crest-night",
            "icons/atlas",
        ],
        ["icons/sword-icon#2", "icons/sword-icon#2@64x64.webp"],
    ]
    assert shard_plan(plan, Shard(2, 3)).warnings == plan.warnings


def test_the_shard_of_an_anchor_is_pinned():
    """Which machine owns a chain is part of every team's CI contract: a change to the
    hash moves every chain, so it is pinned like a cache key."""
    anchors = ("icons/bow-icon", "icons/crest", "icons/bow-icon#2")
    assert [shard_index(a, 3) for a in anchors] == [2, 2, 1]
    assert [shard_index("icons/sword-icon#2", n) for n in (1, 2, 5, 10)] == [1, 1, 4, 9]


@given(graphs(), st.integers(min_value=1, max_value=6))
@settings(max_examples=200, deadline=None)
def test_every_job_is_in_exactly_one_shard_and_chains_are_whole(jobs: list[Job], count: int):
    """Every job is in one shard, in plan order; a shard holds every dependency and
    every dependent of each of its jobs, so it never waits on another shard."""
    plan = Plan(tuple(jobs))
    found = owners(plan, count)
    assert set(found) == {j.id for j in jobs}
    for member in jobs:
        for dep in member.depends_on:
            assert found[dep] == found[member.id]
    for index in range(1, count + 1):
        part = [j.id for j in shard_plan(plan, Shard(index, count)).jobs]
        assert part == [j.id for j in jobs if found[j.id] == index]
    assert shard_plan(plan, Shard(1, 1)) == plan


@given(graphs("old"), graphs("new"), st.integers(min_value=2, max_value=6))
@settings(max_examples=200, deadline=None)
def test_unrelated_chains_move_no_job(old: list[Job], new: list[Job], count: int):
    """Adding (or removing) chains that share no job with the others moves no other job
    to another shard: a spec edit re-shards only what it touches."""
    before = owners(Plan(tuple(old)), count)
    after = owners(Plan(tuple(new[: len(new) // 2] + old + new[len(new) // 2 :])), count)
    assert {jid: after[jid] for jid in before} == before


@given(graphs(), st.integers(min_value=2, max_value=6))
@settings(max_examples=100, deadline=None)
def test_a_new_edit_moves_only_its_chain(jobs: list[Job], count: int):
    """An edit added on top of one chain keeps that chain where it was (its roots do not
    change), and every other chain too."""
    if not jobs:
        return
    before = owners(Plan(tuple(jobs)), count)
    extended = Plan((*jobs, job("zz-edit", [jobs[-1].id])))
    after = owners(extended, count)
    assert {jid: after[jid] for jid in before} == before
    assert after["zz-edit"] == before[jobs[-1].id]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/1", Shard(1, 1)), ("2/3", Shard(2, 3)), (" 3 / 3 ", Shard(3, 3))],
)
def test_shards_parse_as_a_matrix_writes_them(text: str, expected: Shard):
    assert Shard.parse(text) == expected
    assert str(expected) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/3", "i must be 1 to 3"),
        ("4/3", "i must be 1 to 3"),
        ("1/0", "must be 1 to 1000, not 0"),
        ("2", "expected i/n, such as 2/3, not '2'"),
        ("a/b", "expected i/n"),
    ],
)
def test_a_bad_shard_says_what_is_expected(text: str, message: str):
    with pytest.raises(ValueError, match=message):
        Shard.parse(text)


# -- through the CLI ---------------------------------------------------------------------------

SPEC = """
    assets:
      - id: "g{{ i }}"
        prompt: "Emblem number {{ i }}"
        matrix: {i: [1, 2, 3, 4, 5, 6]}
        size: 1024x1024
        quality: low
        renditions:
          - {size: 64x64, format: webp}
      - id: "g1-winter"
        prompt: "Emblem 1 in winter colors"
        size: 1024x1024
        quality: low
        edit: {images: [g1]}
"""


def planned(run, *args: str) -> dict[str, str]:
    result = run("plan", "--json", "--provider", "openai", *args)
    assert result.code == 0, result.err
    return {j["id"]: j["status"] for j in json.loads(result.out)["jobs"]}


def test_shard_builds_pay_once_between_them_and_a_plain_build_pays_nothing(project, run, api):
    """Three shard builds make every API job exactly once (an edit in the shard of the
    asset it edits), and a plain build afterwards finds everything made."""
    project.gen({"specs/set.yaml": SPEC})
    everything = planned(run)
    shares = [planned(run, "--shard", f"{i}/3") for i in (1, 2, 3)]
    assert sorted(jid for share in shares for jid in share) == sorted(everything)
    owner = next(share for share in shares if "set/g1" in share)
    assert {"set/g1@64x64.webp", "set/g1-winter"} <= set(owner)
    paid: list[str] = []
    for i in (1, 2, 3):
        api.reset_counters()
        result = run("build", "--provider", "openai", "--shard", f"{i}/3")
        assert result.code == 0, result.err
        paid += [r.fields["prompt"] for r in api.requests]
    assert sorted(paid) == sorted(
        [f"Emblem number {i}" for i in range(1, 7)] + ["Emblem 1 in winter colors"]
    )
    api.reset_counters()
    assembled = run("build", "--provider", "openai")
    assert assembled.code == 0, assembled.err
    assert api.count() == 0
    assert set(planned(run).values()) == {"up-to-date"}


def test_an_empty_shard_exits_zero_with_one_line(project, run, api):
    """With fewer chains than shards some shard has nothing: plan, check and build say so
    and exit 0, and the build writes nothing."""
    project.gen({"specs/set.yaml": SPEC})
    chains_by_shard = {i: planned(run, "--shard", f"{i}/40") for i in range(1, 41)}
    empty = next(i for i, share in chains_by_shard.items() if not share)
    for command in ("plan", "check", "build"):
        result = run(command, "--provider", "openai", "--shard", f"{empty}/40")
        assert (result.code, result.out) == (
            0,
            f"shard {empty}/40 has none of this plan's jobs; nothing to do\n",
        )
    assert api.count() == 0
    assert not (project / "output").exists()


def test_a_bad_shard_is_a_usage_error(project, run):
    project.gen({"specs/set.yaml": SPEC})
    result = run("build", "--shard", "4/3")
    assert result.code == 2
    assert "Invalid value for '--shard': shard 4/3: i must be 1 to 3" in result.err
