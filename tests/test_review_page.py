"""The review page in real headless Chromium: pick by clicking, reject and reroll by key,
filters, live updates from a build in another process, and the static page read-only.

Debian's chromium driven by Playwright (``executable_path``, nothing downloaded). The
server runs on a real local port against a project built with the preview provider, or
with the fake Images API (``api`` fixture) where a reroll must bill exactly one image.
The tests marked ``docs_screenshots`` take the pictures in docs/review.md; they write
docs/images/ only under scripts/screenshots.sh (``ASSETPIPE_DOCS_SCREENSHOTS=1``).
"""

from __future__ import annotations

import json
import re
from typing import Any

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
    watched_tab,
)


@pytest.fixture(scope="module")
def browser():
    with launched() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    need_browser()
    with watched_tab(browser, 900) as tab:
        yield tab


@pytest.fixture
def built(project):
    """Two collections built with preview; hero has three variants and a rendition."""
    project.gen({"specs/chars.yaml": SPEC, "specs/props.yaml": PROPS})
    result = cli(project.root, "build", "--provider", "preview", "-q")
    assert result.returncode == 0, result.stderr
    return project


def card(ref: str) -> str:
    return f'.card[data-ref="{ref}"]'


def expect(target: Any) -> Any:
    """Playwright's ``expect`` (it waits for what the page must show, as long as every
    wait here: :data:`WAIT_MS`), imported as review_kit imports Playwright: only once a
    browser test runs."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    return playwright_expect(target)


def polled(page: Any, times: int = 3) -> None:
    """Wait until the page has asked the server for its state ``times`` more times: long
    enough for a message a poll could bring back to be back (the page counts its polls)."""
    start = int(page.evaluate("document.body.dataset.polls || '0'"))
    page.wait_for_function(
        "n => Number(document.body.dataset.polls || '0') >= n", arg=start + times
    )


@pytest.mark.docs_screenshots
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
        # The pick is in the lock; output/chars/hero.png changes on the next build.
        expect(page.locator("#live-status")).to_have_text(
            "picked chars/hero#2; delivered on next build"
        )
        expect(hero.locator("h3 .badge.pending")).to_have_text("delivered on next build")
        expect(page.locator(f"{card('chars/hero#2')} .status")).to_have_text("approved")
        # Renditions are chips on their source's card; the edit shows its input beside it.
        assert page.locator("article.rendition").count() == 0
        expect(page.locator(f"{card('chars/hero#1')} .renditions a.chip")).to_have_text(["64x64"])
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
        expect(page.locator("#task-status")).to_contain_text("reroll of chars/hero done")


@pytest.mark.docs_screenshots
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


@pytest.mark.docs_screenshots
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


def test_an_error_stays_until_dismissed_and_an_older_builds_message_never_replaces_it(page, built):
    """The server keeps reporting its last build's outcome on every poll: that repeat
    must neither replace a newer error nor show on a page opened after the build."""
    with serving(built.root) as server:
        page.goto(server.url)
        page.click('.group[data-name="chars/hero"] button.reroll')
        page.locator("#confirm").wait_for(state="visible")
        page.click("#confirm-yes")
        task = page.locator("#task-status")
        expect(task).to_contain_text("reroll of chars/hero done")
        page.wait_for_selector(card("chars/hero#4"))

        page.click(f"{card('chars/hero#2')} button.pick")
        page.wait_for_selector(f"{card('chars/hero#2')}.picked")
        status = page.locator("#live-status")
        action = page.locator('.message[data-line="action"]')
        page.focus(card("chars/hero#2"))
        page.keyboard.press("x")  # the picked variant cannot be rejected
        expect(status).to_contain_text("chars/hero#2 is the picked variant")
        expect(action).to_have_class(re.compile(r"\bbad\b"))
        polled(page)
        expect(status).to_contain_text("chars/hero#2 is the picked variant")
        expect(task).to_contain_text("reroll of chars/hero done")  # on its own line

        action.locator("button.dismiss").click()
        expect(action).to_be_hidden()
        polled(page)
        expect(action).to_be_hidden()  # dismissed stays dismissed

        page.focus(card("chars/hero#2"))
        page.keyboard.press("x")
        expect(status).to_contain_text("chars/hero#2 is the picked variant")
        page.focus(card("chars/hero#3"))
        page.keyboard.press("p")  # acting again replaces the error
        expect(status).to_have_text("picked chars/hero#3; delivered on next build")
        expect(action).not_to_have_class(re.compile(r"\bbad\b"))

        page.reload()  # a fresh page: the last build's outcome is old news
        polled(page)
        expect(task).to_have_text("")
        expect(status).to_have_text("")


def test_a_slow_answer_never_replaces_the_message_of_a_newer_action(page, built):
    """The cost of a reroll is asked for, then the user rejects a variant before it comes:
    the late quote opens no dialog and leaves the newer message alone."""
    with serving(built.root) as server:
        page.goto(server.url)
        held: list[Any] = []

        def hold(route: Any) -> None:
            held.append(route)  # answered below, after a newer action

        page.route("**/api/quote", hold)
        page.click('.group[data-name="chars/hero"] button.reroll')
        status = page.locator("#live-status")
        expect(status).to_have_text("asking what it costs…")
        page.focus(card("chars/hero#3"))
        page.keyboard.press("x")
        expect(status).to_have_text("rejected chars/hero#3")
        assert len(held) == 1
        answers = int(page.evaluate("document.body.dataset.answers"))
        held[0].continue_()
        page.wait_for_function("n => Number(document.body.dataset.answers) > n", arg=answers)
        expect(status).to_have_text("rejected chars/hero#3")
        expect(page.locator("#confirm")).to_be_hidden()


def hero_statuses(page: Any) -> Any:
    """The status of each card of chars/hero: the delivered pick first, then #1 to #3."""
    return page.locator('.group[data-name="chars/hero"] article.card .status')


def test_one_card_shows_one_status_and_an_approved_image_of_an_older_spec_says_so(page, built):
    """After the spec moves on, a card says ``older spec`` alone (no ``up-to-date`` beside
    it), and the pinned image ``approved (older spec)``, on its variant and delivered."""
    assert cli(built.root, "pick", "chars/hero#2", "--provider", "preview").returncode == 0
    assert cli(built.root, "build", "--provider", "preview", "-q").returncode == 0
    with serving(built.root) as server:
        page.goto(server.url)
        hero = page.locator('.group[data-name="chars/hero"]')
        expect(hero.locator("article.card")).to_have_count(4)
        expect(hero.locator(f"{card('chars/hero#2')} .status")).to_have_text("approved")
        expect(hero.locator('.card[data-job="chars/hero"] .status')).to_have_text("approved")

        spec = built / "specs/chars.yaml"
        spec.write_text(spec.read_text("utf-8").replace("a brave knight", "a tired knight"))
        expect(hero_statuses(page)).to_have_text(
            ["approved (older spec)", "older spec", "approved (older spec)", "older spec"]
        )
        counts = page.eval_on_selector_all(
            "article.card", "cs => cs.map(c => c.querySelectorAll('.status').length)"
        )
        assert set(counts) == {1}
        assert hero.locator(".badge.stale").count() == 0
        expect(hero.locator("h3 .badge.changed")).to_have_text("changed since approval")


def test_a_variant_made_again_is_not_picked_until_its_new_image_is(page, built):
    """The lock pins an image (its sha256), not a variant number: once #2 is made again
    from a new spec, its card is not "picked"; one click picks the new image, and the
    page says it is delivered on the next build, which then delivers it."""
    assert cli(built.root, "pick", "chars/hero#2", "--provider", "preview").returncode == 0
    assert cli(built.root, "build", "--provider", "preview", "-q").returncode == 0
    spec = built / "specs/chars.yaml"
    spec.write_text(spec.read_text("utf-8").replace("a brave knight", "a tired knight"))
    assert cli(built.root, "build", "--provider", "preview", "-q").returncode == 0
    old = lock(built.root)["assets"]["chars/hero"]["sha256"]
    assert sha(built / "output/chars/hero.png") == old != sha(built / "output/chars/hero.v2.png")
    with serving(built.root) as server:
        page.goto(server.url)
        v2 = page.locator(card("chars/hero#2"))
        expect(v2.locator(".badge.differs")).to_have_text("picked image differs (older)")
        expect(v2.locator(".status")).to_have_text("generated")
        assert page.locator(".card.picked").count() == 0
        delivered = page.locator('.card[data-job="chars/hero"] .status')
        expect(delivered).to_have_text("approved (older spec)")

        v2.locator("button.repick").click()  # "pick this image"
        expect(v2).to_have_class(re.compile(r"\bpicked\b"))
        assert lock(built.root)["assets"]["chars/hero"]["sha256"] == sha(
            built / "output/chars/hero.v2.png"
        )
        expect(v2.locator(".status")).to_have_text("approved")
        expect(v2.locator(".badge.differs")).to_have_count(0)
        expect(page.locator("#live-status")).to_have_text(
            "picked chars/hero#2; delivered on next build"
        )
        pending = page.locator('.group[data-name="chars/hero"] h3 .badge.pending')
        expect(pending).to_have_text("delivered on next build")
        expect(delivered).to_have_text("previous pick")
        assert sha(built / "output/chars/hero.png") == old  # only the lock changed

        done = cli(built.root, "build", "--provider", "preview", "-q")  # another process
        assert done.returncode == 0, done.stderr
        expect(pending).to_have_count(0)
        expect(delivered).to_have_text("approved")
    assert sha(built / "output/chars/hero.png") == sha(built / "output/chars/hero.v2.png")
