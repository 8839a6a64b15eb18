"""Rerolling what fails the quality gate (``qa.rerolls``): through the real SDK against the
fake Images and Responses APIs, the failing icons get another variant, the best one is
delivered at the asset's path and named in the manifest, the budget holds, and a person's
pick always wins."""

from __future__ import annotations

import hashlib
import json
import shutil

from test_qa import FAILING, _one_judge_call, icons_spec, manifest_entries, qa_check

QA_SETTINGS = "qa: {rerolls: 2}\n"


def judged_project(project, marker: str = "[qa:fail:1]") -> None:
    project.gen({"specs/icons.yaml": icons_spec(marker), "assetpipe.yaml": QA_SETTINGS})


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_failing_icons_are_rerolled_and_the_winner_delivered(project, run, api):
    """12 icons, 3 drawn to fail once: ``build --qa`` judges the 12, makes one more
    variant of each of the 3 (which passes), delivers it at the asset's own path with
    variant 1 at ``.v1``, names the winner in the manifest, and a second build makes no
    judge call and no image call."""
    judged_project(project)
    result = run("build", "--provider", "openai", "--qa")
    assert result.code == 0, result.err
    assert api.count() == 15
    assert api.judge.judge_calls == 15
    got = manifest_entries(project)
    for name in FAILING:
        own = got[f"icons/{name}"]
        assert own["kind"] == "pick"
        assert own["variant"] == 2
        check = qa_check(own)
        assert check["verdict"] == "pass"
        assert check["winner"] == {
            "variant": 2,
            "score": 0.9,
            "why": "passed; the best score of 2 variants",
        }
        assert check["variants"] == [
            {"variant": 1, "score": 0.2, "passed": False},
            {"variant": 2, "score": 0.9, "passed": True},
        ]
        assert qa_check(got[f"icons/{name}#1"])["verdict"] == "fail"
        out = project / "output/icons"
        assert sha(out / f"{name}.png") == sha(out / f"{name}.v2.png")
        assert (out / f"{name}.v1.png").is_file()
    assert "winner" not in qa_check(got["icons/icon-01"])
    assert "icons/icon-01#2" not in got
    assert not (project / "assetpipe.lock").exists()  # the judge's choice is no person's

    api.reset_counters()
    calls = api.judge.judge_calls
    again = run("build", "--provider", "openai", "--qa")
    assert again.code == 0, again.err
    assert api.count() == 0
    assert api.judge.judge_calls == calls
    shutil.rmtree(project / "output")
    restored = run("build", "--provider", "openai", "--qa")
    assert restored.code == 0, restored.err
    assert api.count() == 0
    assert api.judge.judge_calls == calls
    assert qa_check(manifest_entries(project)["icons/icon-03"])["winner"]["variant"] == 2
    check = run("check", "--provider", "openai", "--qa")
    assert check.code == 0, check.out


def test_the_judges_choice_is_no_approval(project, run, api):
    """``check --require-review`` still asks a person to pick among a rerolled asset's
    variants, and the gallery labels the delivered image as the judge's, not approved."""
    judged_project(project)
    assert run("build", "--provider", "openai", "--qa").code == 0
    review = run("check", "--provider", "openai", "--require-review")
    assert review.code == 1, review.out
    for name in FAILING:
        assert f"icons/{name}: 2 variants and none picked" in review.out
    page = (project / "output/index.html").read_text("utf-8")
    assert page.count(">chosen by judge<") == 3
    assert ">approved<" not in page


def test_an_asset_failing_every_reroll_keeps_its_best(project, run, api):
    """An icon that always fails gets its 2 rerolls and no more; the best score wins (the
    fake scores later images higher), and ``check --qa`` still fails it."""
    project.gen(
        {
            "specs/icons.yaml": (
                "defaults:\n  quality: low\n  size: 1024x1024\n"
                "  expect: {shows: 'one sword', min_score: 0.7}\n"
                "assets:\n  - id: bad\n    prompt: 'a sword [qa:fail]'\n"
            ),
            "assetpipe.yaml": QA_SETTINGS,
        }
    )
    result = run("build", "--provider", "openai", "--qa")
    assert result.code == 0, result.err
    assert api.count() == 3
    own = manifest_entries(project)["icons/bad"]
    check = qa_check(own)
    assert check["winner"] == {
        "variant": 3,
        "score": 0.4,
        "why": "none passed; the best score of 3 variants",
    }
    assert [v["score"] for v in check["variants"]] == [0.2, 0.3, 0.4]
    api.reset_counters()
    assert run("build", "--provider", "openai", "--qa").code == 0
    assert api.count() == 0
    assert run("check", "--provider", "openai", "--qa").code == 1


def test_rerolls_hold_the_budget(project, run, api):
    """With the icons built and judged for less than ``--max-cost`` but no room for one
    more variant and its judging, the build exits 3 before the reroll: no image call."""
    judged_project(project)
    assert run("build", "--provider", "openai", "--no-qa").code == 0
    api.reset_counters()
    image = json.loads(run("plan", "--provider", "openai", "--no-qa", "--json").out)["jobs"][0]
    reroll = image["estimated_cost_usd"] + _one_judge_call()
    judged = 12 * round((385 * 0.25 + 120 * 2.0) / 1e6, 6)  # what the fake's usage bills
    cap = judged + reroll / 2  # the images are cached: judging, and half a reroll
    args = ("--qa", "--max-cost", f"{cap:.6f}", "--concurrency", "1")  # one reservation at a time
    result = run("build", "--provider", "openai", *args)
    assert result.code == 3, result.err
    assert api.count() == 0
    assert api.judge.judge_calls == 12, (cap, image["estimated_cost_usd"], result.err)
    assert "would pass --max-cost" in result.err
    assert not (project / "output/icons/icon-03.v2.png").exists()


def test_a_picked_asset_is_never_rerolled(project, run, api):
    """A person's pick wins over the judge: a picked icon that fails stays as picked and
    gets no reroll, while the unpicked failing ones are rerolled."""
    judged_project(project)
    assert run("build", "--provider", "openai", "--no-qa", "--only", "icons/icon-03").code == 0
    assert run("pick", "icons/icon-03").code == 0
    api.reset_counters()
    result = run("build", "--provider", "openai", "--qa")
    assert result.code == 0, result.err
    assert api.count() == 11 + 2  # the other icons, and one reroll each of icon-07 and -11
    got = manifest_entries(project)
    assert "icons/icon-03#2" not in got
    assert qa_check(got["icons/icon-03"])["verdict"] == "fail"
    assert "winner" not in qa_check(got["icons/icon-03"])
    assert qa_check(got["icons/icon-07"])["winner"]["variant"] == 2


def test_a_planted_record_is_ignored_with_one_warning(project, run, api):
    """``.assetpipe/judged.json`` not sealed by this user's key (planted, copied) counts
    for nothing: no extra variant is planned or paid for, and it is said once."""
    judged_project(project)
    record = {"rerolls": 3, "winner": 1, "score": None, "sha256": "", "cache_key": "", "format": ""}
    planted = {"version": 1, "assets": {"icons/icon-01": record}}
    (project / ".assetpipe").mkdir()
    (project / ".assetpipe/judged.json").write_text(json.dumps(planted))
    result = run("build", "--provider", "openai", "--qa", "--only", "icons/icon-01")
    assert result.code == 0, result.err
    assert api.count() == 1
    assert result.err.count("judged.json (it was not written by this user's assetpipe)") == 1
    assert "icons/icon-01#2" not in manifest_entries(project)
