"""The quality gate on the pages: each card shows the judge's verdict (score, pass or fail,
reasons, and which variant won a reroll), and a filter keeps the assets whose delivered
image fails. The model is tested with plain values; the pages in Debian's Chromium."""

from __future__ import annotations

import pytest
from review_kit import cli, docs_image, launched, need_browser, serving, watched_tab
from test_qa import FAILING, icons_spec

from pipeline.gallery.model import page_model
from pipeline.output import ManifestEntry, OutputTree


def _entry(job: str, variant: int, checks: tuple[dict, ...], kind: str = "generate"):
    asset = job.split("/")[1].split("#", maxsplit=1)[0]
    name = asset + (f".v{variant}" if "#" in job else "")
    return ManifestEntry(
        job=job,
        path=f"icons/{name}.png",
        kind=kind,
        status="generated",
        collection="icons",
        asset=asset,
        variant=variant,
        sha256=f"{variant:064x}",
        checks=checks,
    )


QA_FAIL = {
    "name": "qa",
    "ok": False,
    "verdict": "fail",
    "score": 0.2,
    "reasons": ["the subject is wrong", "there is text"],
    "judge": "gpt-5-mini",
}


def test_cards_carry_the_verdict_and_the_group_whether_what_ships_fails(tmp_path):
    """A failing variant 1 that lost to a passing reroll: its card says fail 0.20 with
    reasons; the delivered card says pass and why it won; the asset does not fail the
    gate (what ships passes), while one whose delivered image fails does."""
    won = {
        "name": "qa",
        "ok": True,
        "verdict": "pass",
        "score": 0.9,
        "reasons": ["as asked"],
        "judge": "gpt-5-mini",
        "winner": {"variant": 2, "score": 0.9, "why": "passed; the best score of 2 variants"},
        "variants": [{"variant": 1, "score": 0.2}, {"variant": 2, "score": 0.9}],
    }
    text = {"name": "text", "ok": False, "read": "SUMMER SLAE", "expected": "SUMMER SALE"}
    entries = [
        _entry("icons/a#1", 1, (QA_FAIL,)),
        _entry("icons/a#2", 2, (won,)),
        _entry("icons/a", 2, (won,), kind="pick"),
        _entry("icons/b", 1, (QA_FAIL, text)),
        _entry("icons/c", 1, ({"name": "qa", "ok": False, "verdict": "error", "detail": "down"},)),
    ]
    model = page_model(OutputTree(tmp_path), entries)
    groups = {g.name: g for _, gs in model.collections for g in gs}
    cards = {c.job: c for g in groups.values() for c in g.cards}
    first = cards["icons/a#1"].verdict
    assert first is not None
    assert (first.state, first.score, first.reasons) == (
        "fail",
        "0.20",
        ("the subject is wrong", "there is text"),
    )
    delivered = cards["icons/a"].verdict
    assert delivered is not None
    assert delivered.state == "pass"
    assert delivered.winner == "v2 won: passed; the best score of 2 variants (v1 0.20, v2 0.90)"
    assert [c["name"] for c in cards["icons/b"].checks] == ["text"]
    assert cards["icons/b"].checks[0]["detail"] == "reads 'SUMMER SLAE', not 'SUMMER SALE'"
    error = cards["icons/c"].verdict
    assert error is not None
    assert (error.state, error.reasons) == ("error", ("down",))
    assert {n: g.fails_gate for n, g in groups.items()} == {
        "icons/a": False,
        "icons/b": True,
        "icons/c": True,
    }


@pytest.fixture(scope="module")
def browser():
    with launched() as chromium:
        yield chromium


@pytest.mark.docs_screenshots
def test_review_page_shows_verdicts_and_filters_failures(browser, project, api, tmp_path):
    """Twelve icons judged, three failing for good (rerolls 0): each card shows its
    verdict; "fails quality gate" keeps the three; the review page looks the same."""
    need_browser()
    project.gen(
        {
            "specs/icons.yaml": icons_spec(),
            "assetpipe.yaml": "qa: {rerolls: 0}\n",
        }
    )
    result = cli(project.root, "build", "--provider", "openai", "-q")
    assert result.returncode == 0, result.stderr
    with watched_tab(browser, 900) as page:
        page.goto((project / "output/index.html").as_uri())
        verdicts = page.locator(".card .verdict")
        assert verdicts.count() == 12
        failing = page.locator('.card .verdict[data-verdict="fail"]')
        assert failing.count() == 3
        bad = page.locator('.card[data-job="icons/icon-03"] .verdict')
        assert bad.locator(".v-badge").inner_text() == "fail 0.20"
        assert bad.locator(".reasons li").all_inner_texts() == ["the subject is wrong"]
        good = page.locator('.card[data-job="icons/icon-01"] .v-badge')
        assert good.inner_text() == "pass 0.90"
        page.check('#filters input[name="gate"]')
        shown = page.locator(".group:not([hidden])")
        assert sorted(shown.evaluate_all("gs => gs.map(g => g.dataset.asset)")) == list(FAILING)
        assert page.evaluate("location.hash") == "#gate=1"
    with serving(project.root, provider="openai") as server, watched_tab(browser, 760) as page:
        page.goto(server.url + "#gate=1")
        page.wait_for_selector('.card[data-job="icons/icon-07"] .verdict.v-fail')
        assert page.locator(".group:not([hidden])").count() == 3
        page.uncheck('#filters input[name="gate"]')
        assert page.locator(".group:not([hidden])").count() == 12
        page.screenshot(path=str(docs_image("review-qa", tmp_path)))
