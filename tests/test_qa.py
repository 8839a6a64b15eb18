"""The quality gate: delivered images judged against their spec's ``expect``, through the
real SDK against the fake Responses API, with verdicts cached and the budget held."""

from __future__ import annotations

import io
import json

from PIL import Image, ImageDraw, ImageFont

FAILING = ("icon-03", "icon-07", "icon-11")


def icons_spec(fail_marker: str = "[qa:fail]") -> str:
    """Twelve icons; three of them drawn (by the fake) to fail the judge."""
    lines = [
        "defaults:",
        "  quality: low",
        "  size: 1024x1024",
        "  expect: {shows: 'one sword, centered, no text', min_score: 0.7}",
        "assets:",
    ]
    for i in range(1, 13):
        name = f"icon-{i:02d}"
        marker = f" {fail_marker}" if name in FAILING else ""
        lines.append(f"  - id: {name}\n    prompt: 'a sword icon number {i}{marker}'")
    return "\n".join(lines) + "\n"


def manifest_entries(project) -> dict[str, dict]:
    data = json.loads((project / "output/manifest.json").read_text())
    return {e["job"]: e for e in data["entries"]}


def qa_check(entry: dict) -> dict:
    return next(c for c in entry["checks"] if c["name"] == "qa")


def test_build_qa_judges_every_icon_once_and_a_rebuild_pays_nothing(project, run, api):
    """12 icons, 3 drawn to fail: 12 judge calls, the verdicts in checks.qa, and a second
    build (output/ deleted, so it is not answered by the stamp) makes 0 calls of either kind."""
    project.gen({"specs/icons.yaml": icons_spec()})
    result = run("build", "--provider", "openai", "--qa")
    assert result.code == 0, result.err
    assert api.count() == 12
    assert api.judge.judge_calls == 12
    got = manifest_entries(project)
    failed = sorted(j.split("/")[1] for j, e in got.items() if not qa_check(e)["ok"])
    assert failed == list(FAILING)
    passing = qa_check(got["icons/icon-01"])
    assert passing["verdict"] == "pass"
    assert passing["score"] == 0.9
    assert passing["judge"] == "gpt-5-mini"
    # 385 input tokens at $0.25/1M and 120 output tokens at $2/1M
    assert passing["cost_usd"] == round((385 * 0.25 + 120 * 2.0) / 1e6, 6)
    assert qa_check(got["icons/icon-03"])["reasons"] == ["the subject is wrong"]
    request = api.judge.requests[0]
    assert request["text"]["format"]["type"] == "json_schema"
    assert request["text"]["format"]["strict"] is True
    assert request["input"][0]["content"][1]["detail"] == "low"

    import shutil

    shutil.rmtree(project / "output")
    api.reset_counters()
    calls = api.judge.judge_calls
    again = run("build", "--provider", "openai", "--qa")
    assert again.code == 0, again.err
    assert api.count() == 0
    assert api.judge.judge_calls == calls
    assert qa_check(manifest_entries(project)["icons/icon-03"])["score"] == 0.2


def test_judge_outage_fails_only_the_check(project, run, api):
    """A judge that answers 500 every time and one that refuses: the images are delivered,
    the build exits 0, and the check says why with a warning."""
    project.gen({"specs/icons.yaml": icons_spec()})
    api.judge.judge_script.extend(["refusal"] + ["server_error"] * 100)
    result = run("build", "--provider", "openai", "--qa", "--only", "icons/icon-0[12]")
    assert result.code == 0, result.err
    got = manifest_entries(project)
    checks = sorted(qa_check(got[j])["verdict"] for j in ("icons/icon-01", "icons/icon-02"))
    assert checks == ["error", "error"]
    details = sorted(qa_check(got[j])["detail"] for j in ("icons/icon-01", "icons/icon-02"))
    assert "declined" in details[1] or "declined" in details[0]
    assert (project / "output/icons/icon-01.png").is_file()
    assert "the judge gave no verdict" in result.err


def test_malformed_verdict_is_a_failed_check_not_a_crash(project, run, api):
    """An answer that is not JSON, then one off the schema (score 7): both are failures
    of the check, never a traceback."""
    project.gen({"specs/icons.yaml": icons_spec()})
    api.judge.judge_script.extend(["malformed", "off_schema"] * 10)
    result = run("build", "--provider", "openai", "--qa", "--only", "icons/icon-01")
    assert result.code == 0, result.err
    assert qa_check(manifest_entries(project)["icons/icon-01"])["verdict"] == "error"


def test_judging_holds_the_budget(project, run, api):
    """--max-cost that pays for the images but not for judging them: exit 3, the images
    delivered, and no judge call sent past the cap."""
    project.gen({"specs/icons.yaml": icons_spec()})
    first = run("build", "--provider", "openai", "--only", "icons/icon-0[12]")
    assert first.code == 0, first.err
    spent = json.loads((project / "output/manifest.json").read_text())["totals"]
    assert spent is not None
    result = run(
        "build", "--provider", "openai", "--qa", "--max-cost", "0", "--only", "icons/icon-0[12]"
    )
    assert result.code == 3, result.err
    assert api.judge.judge_calls == 0
    assert qa_check(manifest_entries(project)["icons/icon-01"])["verdict"] == "error"


def _banner(text: str) -> bytes:
    image = Image.new("RGB", (1536, 1024), "white")
    font = ImageFont.load_default(size=150)
    ImageDraw.Draw(image).text((80, 420), text, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_banner_with_a_typo_fails_text_offline(project, run, api):
    """The fake draws a headline with a typo; the text check fails with what it read, and
    no judge call is made (the spec asks for text only)."""
    project.gen(
        {
            "specs/banners.yaml": """
                assets:
                  - id: sale
                    prompt: "a summer sale banner"
                    size: 1536x1024
                    quality: low
                    expect: {text: "SUMMER SALE"}
                  - id: good
                    prompt: "a summer sale banner, the good one"
                    size: 1536x1024
                    quality: low
                    expect: {text: "SUMMER SALE"}
            """
        }
    )
    api.image_bytes = _banner("SUMMER SLAE")
    result = run("build", "--provider", "openai", "--qa", "--only", "banners/sale")
    assert result.code == 0, result.err
    check = next(
        c for c in manifest_entries(project)["banners/sale"]["checks"] if c["name"] == "text"
    )
    assert check["ok"] is False
    assert "SLAE" in check["read"].upper()
    assert api.judge.judge_calls == 0
    api.image_bytes = _banner("SUMMER SALE")
    result = run("build", "--provider", "openai", "--qa", "--only", "banners/good")
    check = next(
        c for c in manifest_entries(project)["banners/good"]["checks"] if c["name"] == "text"
    )
    assert check["ok"] is True, check


def test_expect_is_validated_at_its_line(project, run):
    """An expect with a score out of range is an error at its file and line."""
    project.gen(
        {
            "specs/icons.yaml": """
                assets:
                  - id: a
                    prompt: "a sword"
                    expect: {shows: "a sword", min_score: 3}
            """
        }
    )
    result = run("validate")
    assert result.code == 2
    assert "icons.yaml:4" in result.err


def test_check_qa_exits_1_for_failing_assets(project, run, api, monkeypatch):
    """After a judged build, ``check --qa`` lists the three failing icons with their score
    and reasons and exits 1; ``--no-qa`` (over ASSETPIPE_QA=1) exits 0 on the same tree."""
    project.gen({"specs/icons.yaml": icons_spec()})
    assert run("build", "--provider", "openai", "--qa").code == 0
    result = run("check", "--provider", "openai", "--qa")
    assert result.code == 1, result.out
    failing = sorted(
        line.split()[2].rstrip(":") for line in result.out.splitlines() if line.startswith("qa")
    )
    assert failing == [f"icons/{name}" for name in FAILING]
    assert "scored 0.20 (min 0.7): the subject is wrong" in result.out
    assert "3 assets fail the quality gate" in result.out
    monkeypatch.setenv("ASSETPIPE_QA", "1")
    assert run("check", "--provider", "openai").code == 1
    off = run("check", "--provider", "openai", "--no-qa")
    assert off.code == 0, off.out


def test_check_qa_fails_an_asset_never_judged(project, run, api):
    """An image built without the gate has no verdict: ``check --qa`` says to judge it."""
    project.gen({"specs/icons.yaml": icons_spec()})
    assert run("build", "--provider", "openai", "--only", "icons/icon-01").code == 0
    result = run("check", "--provider", "openai", "--qa", "--only", "icons/icon-01")
    assert result.code == 1
    assert "icons/icon-01: it was not judged; run assetpipe build --qa" in result.out


def test_plan_prices_judging_and_nothing_once_judged(project, run, api):
    """``plan --qa --json`` prices one judge call per image not judged yet, in the totals;
    after a judged build the verdicts are kept and judging costs nothing."""
    project.gen({"specs/icons.yaml": icons_spec()})
    before = json.loads(run("plan", "--provider", "openai", "--qa", "--json").out)["totals"]
    assert before["judging"]["images"] == 12
    assert before["judging"]["judged"] == 0
    assert before["judging"]["estimated_cost_usd"] == round(12 * _one_judge_call(), 6)
    images = json.loads(run("plan", "--provider", "openai", "--json").out)["totals"]
    assert "judging" not in images
    assert before["estimated_cost_usd"] == round(
        images["estimated_cost_usd"] + before["judging"]["estimated_cost_usd"], 6
    )
    assert run("build", "--provider", "openai", "--qa").code == 0
    after = json.loads(run("plan", "--provider", "openai", "--qa", "--json").out)["totals"]
    assert after["judging"] == {
        "model": "gpt-5-mini",
        "images": 0,
        "judged": 12,
        "estimated_cost_usd": 0.0,
    }
    table = run("plan", "--provider", "openai", "--qa")
    assert "judging with gpt-5-mini: 0 images, $0.0000 of that" in table.out


def _one_judge_call() -> float:
    """The judge table's estimate of one gpt-5-mini call at detail low."""
    from pipeline.providers.openai_judge_catalog import openai_judges

    return openai_judges()["gpt-5-mini"].estimate("low")
