"""The review page in real headless Chromium: pick by clicking, reject and reroll by key,
filters, live updates from a build in another process, and the static page read-only.

Debian's chromium driven by Playwright (``executable_path``, nothing downloaded). The
server runs on a real local port against a project built with the preview provider, or
with the fake Images API (``api`` fixture) where a reroll must bill exactly one image.
Screenshots land in docs/images/ for docs/review.md.
"""

from __future__ import annotations

import json

import pytest
from review_kit import (
    PROPS,
    SPEC,
    WAIT_MS,
    cli,
    launched,
    lock,
    need_browser,
    screenshot,
    serving,
    sha,
    wait_until,
)


@pytest.fixture(scope="module")
def browser():
    with launched() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    need_browser()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == []  # no script error on the page, whatever the test did


@pytest.fixture
def built(project):
    """Two collections built with preview; hero has three variants and a rendition."""
    project.gen({"specs/chars.yaml": SPEC, "specs/props.yaml": PROPS})
    result = cli(project.root, "build", "--provider", "preview", "-q")
    assert result.returncode == 0, result.stderr
    return project


def card(ref: str) -> str:
    return f'.card[data-ref="{ref}"]'


def test_clicking_a_variant_picks_it_the_lock_records_it_and_the_page_shows_it(page, built):
    with serving(built.root) as server:
        page.goto(server.url)
        hero = page.locator('.group[data-name="chars/hero"]')
        assert hero.get_attribute("data-needs-review") == "1"
        assert page.locator(card("chars/hero#2")).count() == 1
        assert not (built / "assetpipe.lock").exists()

        page.click(f"{card('chars/hero#2')} button.pick")
        page.wait_for_selector(f"{card('chars/hero#2')}.picked")

        entry = lock(built.root)["assets"]["chars/hero"]
        assert entry["variant"] == 2
        assert entry["sha256"] == sha(built / "output/chars/hero.v2.png")
        assert hero.locator("h3 .badge.picked").inner_text() == "picked v2"
        assert page.locator(".card.picked").count() == 1
        assert hero.get_attribute("data-needs-review") == "0"
        assert page.locator("#live-status").inner_text() == "picked chars/hero#2"
        # Renditions sit under their source; the edit shows its input beside it.
        assert page.locator(f"{card('chars/hero')} ~ .renditions .card").count() == 0
        assert page.locator('.stack:has([data-ref="chars/hero#1"]) .renditions .card').count() == 1
        winter = page.locator('.card[data-job="chars/hero-winter"] .inputs img')
        assert winter.get_attribute("title") == "chars/hero"
        assert page.evaluate("document.body.dataset.imagesBroken") == "0"
        screenshot(page, "review-page")

        page.click('.group[data-name="chars/hero"] button.unpick')
        page.wait_for_selector(".card.picked", state="detached")
        assert "pick" not in lock(built.root).get("assets", {}).get("chars/hero", {})


def test_x_rejects_the_focused_variant_and_again_restores_it(page, built):
    with serving(built.root) as server:
        page.goto(server.url)
        page.focus(card("chars/hero#3"))
        page.keyboard.press("x")
        page.wait_for_selector(f"{card('chars/hero#3')}.rejected")
        assert lock(built.root)["assets"]["chars/hero"]["rejected"] == [3]
        assert page.locator(f"{card('chars/hero#3')} .badge.rejected").is_visible()

        page.check('#filters input[name="rejected"]')  # "hide rejected"
        assert not page.locator(card("chars/hero#3")).is_visible()
        assert page.locator(card("chars/hero#2")).is_visible()
        page.uncheck('#filters input[name="rejected"]')

        page.focus(card("chars/hero#3"))
        page.keyboard.press("x")
        page.wait_for_selector(f"{card('chars/hero#3')}:not(.rejected)")
        assert not (built / "assetpipe.lock").exists()  # nothing left to record


def test_filters_by_collection_tag_failed_checks_and_needs_review(page, built):
    with serving(built.root) as server:
        page.goto(server.url)
        visible = lambda: sorted(  # noqa: E731
            page.eval_on_selector_all(
                ".group", "gs => gs.filter(g => g.offsetParent !== null).map(g => g.dataset.name)"
            )
        )
        everything = ["chars/hero", "chars/hero-winter", "props/sword"]
        assert visible() == everything
        page.select_option('#filters select[name="collection"]', "props")
        assert visible() == ["props/sword"]
        page.select_option('#filters select[name="collection"]', "")
        page.select_option('#filters select[name="tag"]', "people")
        assert visible() == ["chars/hero", "chars/hero-winter"]
        page.select_option('#filters select[name="tag"]', "")
        page.check('#filters input[name="review"]')
        assert visible() == ["chars/hero"]
        assert "review=1" in page.url  # filters survive a reload
        page.reload()
        assert visible() == ["chars/hero"]
        page.uncheck('#filters input[name="review"]')
        page.check('#filters input[name="failed"]')
        assert visible() == []
        page.uncheck('#filters input[name="failed"]')
        assert visible() == everything


def test_reroll_shows_its_cost_and_builds_one_variant_only_after_confirm(page, built):
    with serving(built.root) as server:
        page.goto(server.url)
        page.click('.group[data-name="chars/hero"] button.reroll')
        dialog = page.locator("#confirm")
        dialog.wait_for(state="visible")
        text = page.locator("#confirm-text").inner_text()
        assert "Reroll chars/hero: generate one more variant (chars/hero#4)" in text
        assert "free on preview" in text
        page.click("#confirm-no")
        assert not (built / "assetpipe.lock").exists()
        assert page.locator("#live-status").inner_text() == "nothing was built"

        page.focus(card("chars/hero#1"))
        page.keyboard.press("r")
        dialog.wait_for(state="visible")
        page.click("#confirm-yes")
        page.wait_for_selector(card("chars/hero#4"))
        assert lock(built.root)["assets"]["chars/hero"]["rerolls"] == 1
        assert (built / "output/chars/hero.v4.png").is_file()
        wait_until(lambda: server.tasks.current and server.tasks.current.state == "done", "done")
        status = page.locator("#live-status")
        status.filter(has_text="reroll of chars/hero done").wait_for()


def test_reroll_against_the_api_bills_exactly_one_image_after_the_cost_was_shown(
    page, project, api
):
    """The fake Images API counts what it bills: nothing while the dialog shows the price,
    one image after the confirm."""
    project.gen(
        {"specs/chars.yaml": SPEC.replace("256x256", "1024x1024"), "specs/props.yaml": PROPS}
    )
    result = cli(project.root, "build", "--provider", "openai", "-q")
    assert result.returncode == 0, result.stderr
    plan = json.loads(cli(project.root, "plan", "--json", "--provider", "openai").stdout)
    price = next(j["estimated_cost_usd"] for j in plan["jobs"] if j["id"] == "chars/hero#3")
    billed = api.billed_images
    sent = len(api.requests)
    with serving(project.root, provider="openai") as server:
        page.goto(server.url)
        page.click('.group[data-name="chars/hero"] button.reroll')
        page.locator("#confirm").wait_for(state="visible")
        text = page.locator("#confirm-text").inner_text()
        assert f"estimated cost ${price:.4f} on openai" in text
        screenshot(page, "review-reroll")
        assert api.billed_images == billed  # the price is shown; nothing is paid yet
        page.click("#confirm-yes")
        page.wait_for_selector(card("chars/hero#4"))
        wait_until(lambda: server.tasks.current and server.tasks.current.state == "done", "done")
    assert api.billed_images == billed + 1
    assert [r.fields.get("prompt") for r in api.requests[sent:]] == [
        "a brave knight <script>alert(1)</script>"
    ]
    assert lock(project.root)["assets"]["chars/hero"]["rerolls"] == 1
    manifest = json.loads((project / "output/manifest.json").read_text("utf-8"))
    new = next(e for e in manifest["entries"] if e["job"] == "chars/hero#4")
    assert new["status"] == "generated"
    assert new["cost_usd"] > 0


def test_a_build_in_another_process_updates_the_open_page(page, built):
    """No reload: the page polls the manifest's stat and swaps in the new cards."""
    with serving(built.root) as server:
        page.goto(server.url)
        page.evaluate("window.__sameDocument = 'yes'")
        shield = '      - id: shield\n        prompt: "a round shield"\n        size: 256x256\n'
        built.gen({"specs/props.yaml": PROPS + shield})
        page.wait_for_selector('.group[data-name="props/shield"] .empty')  # planned, not built
        done = cli(built.root, "build", "--provider", "preview", "-q")  # another process
        assert done.returncode == 0, done.stderr
        page.wait_for_selector('.card[data-job="props/shield"] img')
        assert page.evaluate("window.__sameDocument") == "yes"
        assert int(page.evaluate("document.body.dataset.refreshes")) >= 2
        screenshot(page, "review-live")


def test_the_static_page_is_the_same_page_read_only(page, built):
    """output/index.html: same groups, picks and filters, no controls, no token."""
    with serving(built.root) as server:
        served = page.goto(server.url)
        assert served is not None
        live_groups = page.eval_on_selector_all(".group", "gs => gs.map(g => g.dataset.name)")
    assert cli(built.root, "pick", "chars/hero#3", "--provider", "preview").returncode == 0
    assert cli(built.root, "build", "--provider", "preview", "-q").returncode == 0
    index = built / "output/index.html"
    html = index.read_text("utf-8")
    assert '<meta name="assetpipe-token"' not in html
    assert 'data-mode="static"' in html
    page.goto(index.as_uri())
    assert page.eval_on_selector_all(".group", "gs => gs.map(g => g.dataset.name)") == live_groups
    assert page.locator("button").count() == 0
    assert page.locator(".card.picked").get_attribute("data-ref") == "chars/hero#3"
    assert page.locator('.group[data-name="chars/hero"] h3 .badge.picked').inner_text() == (
        "picked v3"
    )
    page.select_option('#filters select[name="collection"]', "props")
    assert not page.locator('.group[data-name="chars/hero"]').is_visible()
    page.select_option('#filters select[name="collection"]', "")
    assert page.evaluate("document.body.dataset.imagesBroken") == "0"
    page.click(f"{card('chars/hero#3')} a.thumb")  # static: a thumbnail opens the file
    page.wait_for_url("**/chars/hero.v3.png")
