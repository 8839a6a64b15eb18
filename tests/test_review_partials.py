"""Partial previews of a reroll on the review page: the build the page starts streams
previews through a pipe, the server keeps the latest (checked and capped), and the page
shows it until the made image's card arrives; the cache keeps only the final image.

The real SDK against the fake Images API (``api``), the review server on a real port,
its reroll a real child ``assetpipe build``, and Debian's Chromium under Playwright. The
fake holds its completed event until the test has seen a preview (``stream_hold``), so
nothing here waits on the clock.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeImagesAPI
from PIL import Image
from processes import ASSETPIPE
from review_kit import (
    PROPS,
    SPEC,
    cli,
    launched,
    lock,
    need_browser,
    post,
    request,
    serving,
    wait_until,
    watched_tab,
)

from pipeline.api.partials import FRAME, MAGIC, MAX_PREVIEW_BYTES, frame
from pipeline.review.partials import Preview, image_type, read_previews

HERO = '.group[data-name="chars/hero"]'


@pytest.fixture
def paid(project, api):
    """The review test project built on the fake API (1024x1024: a size the model
    makes), with two previews per reroll."""
    project.gen(
        {
            "specs/chars.yaml": SPEC.replace("256x256", "1024x1024"),
            "specs/props.yaml": PROPS,
            "assetpipe.yaml": "review: {partial_images: 2}\n",
        }
    )
    result = cli(project.root, "build", "--provider", "openai", "-q")
    assert result.returncode == 0, result.stderr
    return project


def blobs(root: Path) -> dict[str, bytes]:
    """The cache's blobs by name."""
    return {
        p.name: p.read_bytes() for p in (root / ".assetpipe/cache/blobs").rglob("*") if p.is_file()
    }


def reroll(server) -> None:
    """Quote and confirm a reroll of chars/hero as the page does."""
    status, quote = post(server, "/api/quote", {"action": "reroll", "asset": "chars/hero"})
    assert status == 200, quote
    status, task = post(
        server, "/api/run", {"action": "reroll", "asset": "chars/hero", "quote": quote["quote"]}
    )
    assert status == 200, task


@contextlib.contextmanager
def released(hold: threading.Event) -> Iterator[None]:
    """Set ``hold`` when the block ends, however it ends: a failed test must not leave the
    reroll's build waiting on the fake (the server waits for its build when it stops)."""
    try:
        yield
    finally:
        hold.set()


@contextlib.contextmanager
def rerolled_from_the_page(paid, api, group: str) -> Iterator[tuple[Any, Any]]:
    """A tab on the review page with the reroll of ``group``'s asset confirmed (two
    previews quoted) and its first preview shown, while the fake holds the final image
    until the test sets ``api.stream_hold``; yields the page and the server."""
    api.stream_hold = threading.Event()
    with (
        launched() as browser,
        watched_tab(browser, 900) as page,
        serving(paid.root, provider="openai") as server,
        released(api.stream_hold),
    ):
        page.goto(server.url)
        page.click(f"{group} button.reroll")
        page.locator("#confirm").wait_for(state="visible")
        assert "with 2 preview(s) shown while it is made" in page.inner_text("#confirm-text")
        page.click("#confirm-yes")
        page.wait_for_function("() => Number(document.body.dataset.partialsShown || '0') >= 1")
        yield page, server


def state(server) -> dict:
    status, _, body = request(server, "GET", "/api/state")
    assert status == 200
    return json.loads(body)


def test_the_page_shows_a_preview_while_the_reroll_is_made_and_the_cache_keeps_the_final(paid, api):
    """A preview card (data-partial) appears in the group while the image is made; once
    the image's card arrives it is gone; the request streamed 2 partials, one image was
    billed, and the cache has exactly one new blob: the delivered image."""
    need_browser()
    before = blobs(paid.root)
    billed = api.billed_images
    with rerolled_from_the_page(paid, api, HERO) as (page, server):
        preview = page.locator(f"{HERO} .card.partial")
        assert preview.count() == 1
        assert preview.get_attribute("data-partial") in {"0", "1"}
        assert preview.get_attribute("data-for") == "chars/hero#4"
        assert page.locator('.card[data-ref="chars/hero#4"]').count() == 0
        shown = page.evaluate("document.querySelector('.card.partial img').naturalWidth")
        assert shown == 1024
        served = state(server)["task"]["partial"]
        status, headers, partial_bytes = request(server, "GET", f"/api/partial?seq={served['seq']}")
        assert (status, headers["content-type"]) == (200, "image/png")

        api.stream_hold.set()  # the image is made: the completed event goes out
        page.wait_for_selector('.card[data-ref="chars/hero#4"]')
        page.wait_for_selector(".card.partial", state="detached")
        wait_until(lambda: server.tasks.current.state == "done", "the reroll to finish")
        polls = int(page.evaluate("document.body.dataset.polls || '0'"))
        page.wait_for_function("n => Number(document.body.dataset.polls) >= n", arg=polls + 3)
        assert state(server)["task"]["partial"] is not None  # still reported after the build
        assert page.locator(".card.partial").count() == 0  # and never shown again
    assert api.billed_images == billed + 1
    streamed = api.requests[-1].fields
    assert (streamed["stream"], streamed["partial_images"]) == (True, 2)
    assert lock(paid.root)["assets"]["chars/hero"]["rerolls"] == 1
    new = {name: data for name, data in blobs(paid.root).items() if name not in before}
    final = (paid / "output/chars/hero.v4.png").read_bytes()
    assert list(new) == [hashlib.sha256(final).hexdigest()]
    assert partial_bytes not in blobs(paid.root).values()
    with Image.open(io.BytesIO(final)) as image:
        assert image.size == (1024, 1024)


def test_a_reroll_of_an_edit_shows_a_preview_and_caches_only_the_final(paid, api):
    """chars/hero-winter is an edit of chars/hero: its reroll streams too. A preview card
    appears in its group while the fake holds the final image; the request was the
    multipart edit (hero's delivered image uploaded) with stream and 2 partials; once
    the image lands the preview is gone, one image was billed, and the cache has one new
    blob, the delivered edit. A plain build afterwards finds it up to date, so the
    streamed edit was cached under the key an unstreamed one has."""
    need_browser()
    group = '.group[data-name="chars/hero-winter"]'
    before = blobs(paid.root)
    billed = api.billed_images
    with rerolled_from_the_page(paid, api, group) as (page, server):
        preview = page.locator(f"{group} .card.partial")
        assert preview.count() == 1
        assert preview.get_attribute("data-for") == "chars/hero-winter#2"
        assert page.locator(f"{HERO} .card.partial").count() == 0
        shown = page.evaluate(f"document.querySelector('{group} .card.partial img').naturalWidth")
        assert shown == 1024

        api.stream_hold.set()  # the edit is made: the completed event goes out
        page.wait_for_selector('.card[data-ref="chars/hero-winter#2"]')
        page.wait_for_selector(".card.partial", state="detached")
        wait_until(lambda: server.tasks.current.state == "done", "the reroll to finish")
    assert api.billed_images == billed + 1
    streamed = api.requests[-1]
    assert streamed.endpoint == "edits"
    assert (streamed.fields["stream"], streamed.fields["partial_images"]) == ("true", "2")
    hero = (paid / "output/chars/hero.png").read_bytes()
    assert streamed.image_sha256 == [hashlib.sha256(hero).hexdigest()]
    new = {name: data for name, data in blobs(paid.root).items() if name not in before}
    final = (paid / "output/chars/hero-winter.v2.png").read_bytes()
    assert list(new) == [hashlib.sha256(final).hexdigest()]
    again = cli(paid.root, "build", "--provider", "openai", "--json")
    assert again.returncode == 0, again.stderr
    assert "generated" not in json.loads(again.stdout)["counts"]
    assert api.billed_images == billed + 1


def test_state_reports_the_latest_preview_and_keeps_it_after_the_build(paid, api):
    """Without a page: /api/state names the preview's job, index and number; the bytes
    are served as PNG; after the build ends the same preview is still reported, and a
    number that is not the latest is a 404."""
    with serving(paid.root, provider="openai") as server:
        reroll(server)
        wait_until(lambda: server.tasks.current.state != "running", "the reroll to end")
        task = state(server)["task"]
        assert task["state"] == "done", task["message"]
        partial = task["partial"]
        assert (partial["job"], partial["index"]) == ("chars/hero#4", 1)
        status, headers, data = request(server, "GET", f"/api/partial?seq={partial['seq']}")
        assert (status, headers["content-type"], headers["cache-control"]) == (
            200,
            "image/png",
            "no-store",
        )
        assert image_type(data) == "image/png"
        assert data != (paid / "output/chars/hero.v4.png").read_bytes()
        for seq in (str(partial["seq"] + 1), "0", "x", "-1", "9" * 40):
            status, _, _ = request(server, "GET", f"/api/partial?seq={seq}")
            assert status == 404, seq


def test_a_preview_that_is_not_an_image_is_refused_and_the_reroll_still_lands(paid, api, caplog):
    """The fake streams HTML as the partials: the server keeps none (and says why), the
    page is told of no preview, and the final image is delivered as usual."""
    api.stream_hostile = "not_image"
    with (
        caplog.at_level(logging.WARNING, "assetpipe.review"),
        serving(paid.root, provider="openai") as server,
    ):
        reroll(server)
        wait_until(lambda: server.tasks.current.state != "running", "the reroll to end")
        task = state(server)["task"]
        assert task["state"] == "done", task["message"]
        assert task["partial"] is None
        assert request(server, "GET", "/api/partial?seq=1")[0] == 404
    refused = [r.getMessage() for r in caplog.records if "refused a preview" in r.getMessage()]
    assert refused == ["refused a preview from the build: not a PNG, WebP or JPEG"] * 2
    assert (paid / "output/chars/hero.v4.png").is_file()


def test_review_partial_images_0_sends_an_unstreamed_request(paid, api):
    """``review: {partial_images: 0}`` turns previews off: the reroll's request is the
    plain one, and the quote says nothing of previews."""
    paid.gen({"assetpipe.yaml": "review: {partial_images: 0}\n"})
    with serving(paid.root, provider="openai") as server:
        status, quote = post(server, "/api/quote", {"action": "reroll", "asset": "chars/hero"})
        assert status == 200
        assert "preview" not in quote["summary"]
        reroll(server)
        wait_until(lambda: server.tasks.current.state != "running", "the reroll to end")
        assert state(server)["task"]["partial"] is None
    assert "stream" not in api.requests[-1].fields


def test_partial_images_out_of_range_is_an_error_at_its_line(paid):
    """Like every setting, ``review.partial_images`` has its range, said at its line."""
    paid.gen({"assetpipe.yaml": "review:\n  partial_images: 4\n"})
    result = cli(paid.root, "plan")
    assert result.returncode == 2
    assert "assetpipe.yaml:2" in result.stderr
    assert "partial_images" in result.stderr


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    return out.getvalue()


def test_a_frame_that_breaks_the_format_ends_the_reading_and_the_writer_sees_it():
    """A frame longer than the cap is never read: what came before it is kept, the pipe is
    closed, and the build's next write fails (which ends its previews, not the build)."""
    read_end, write_end = os.pipe()
    good = frame(0, png())
    too_long = FRAME.pack(MAGIC, 1, MAX_PREVIEW_BYTES + 1)
    os.write(write_end, good + too_long)
    kept: list[Preview] = []
    read_previews(read_end, "chars/hero#4", kept.append)
    assert [(p.job, p.index, p.media_type, p.data) for p in kept] == [
        ("chars/hero#4", 0, "image/png", png())
    ]
    with pytest.raises(BrokenPipeError):
        os.write(write_end, good)
    os.close(write_end)


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"JUNK" + b"\x00" * 5, "bytes that are not a preview frame"),
        (FRAME.pack(MAGIC, 3, 10), "a preview frame with index 3 and 10 bytes"),
    ],
)
def test_garbage_and_an_index_out_of_range_end_the_reading(head, why, caplog):
    """Bytes that are not a frame, or an index past 2, end the reading, and the server's
    log says what arrived."""
    read_end, write_end = os.pipe()
    os.write(write_end, head + b"x" * 10)
    os.close(write_end)
    kept: list[Preview] = []
    with caplog.at_level(logging.WARNING, "assetpipe.review"):
        read_previews(read_end, "a#1", kept.append)
    assert kept == []
    assert why in caplog.text


def test_only_png_webp_and_jpeg_are_images():
    """The magic bytes decide; a name or a header never does."""
    assert image_type(png()) == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    for data in (b"", b"<svg/>", b"GIF89a", b"RIFF\x00\x00\x00\x00WAVE", b"\x89PN"):
        assert image_type(data) is None


@pytest.mark.parametrize("fd", ["1", "opened file"])
def test_partials_fd_must_be_a_pipe(project, fd, tmp_path):
    """A build given ``--partials-fd`` of anything but a pipe (its own stdout, a file)
    exits 2 before it builds anything, so a stray flag can never write into it."""
    project.gen({"specs/a.yaml": PROPS})
    with (tmp_path / "f").open("wb") as handle:
        number = str(handle.fileno()) if fd == "opened file" else fd
        result = subprocess.run(
            [
                *ASSETPIPE,
                "build",
                "--provider",
                "preview",
                "--partials-fd",
                number,
                "--project",
                str(project.root),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            pass_fds=(handle.fileno(),),
        )
    assert result.returncode == 2, result.stderr
    assert f"--partials-fd {number} is not an open pipe" in result.stderr
    assert not (project / "output").exists()


def test_the_build_streams_previews_through_its_pipe_and_prints_its_usual_summary(
    paid, api: FakeImagesAPI
):
    """The child as the server starts it: frames on the pipe (real PNGs, indexes 0 and 1),
    the usual ``--json`` summary on stdout, one image billed."""
    paid.gen({"assetpipe.lock": 'version = 1\n\n[assets."chars/hero"]\nrerolls = 1\n'})
    billed = api.billed_images
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [
            *ASSETPIPE,
            "build",
            "--json",
            "--provider",
            "openai",
            "--only",
            "chars/hero#4",
            "--partials-fd",
            str(write_end),
            "--project",
            str(paid.root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    kept: list[Preview] = []
    read_previews(read_end, "chars/hero#4", kept.append)  # until the build closes it
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert [p.index for p in kept] == [0, 1]
    assert {p.media_type for p in kept} == {"image/png"}
    summary = json.loads(out)
    assert summary["counts"] == {"generated": 2}  # the variant and its 64x64 rendition
    assert api.billed_images == billed + 1
