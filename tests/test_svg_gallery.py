"""An SVG icon set and its raster renditions in the static gallery, in real Chromium.

The icons come from the fake Images API (``output_format: svg`` on a gpt-image-2.6
model draws an SVG icon), built as a person builds them (``assetpipe build``, its own
process); the page is ``output/index.html`` opened from the file system. The test marked
``docs_screenshots`` takes docs/images/svg-gallery.png for docs/delivery.md, written
only under scripts/screenshots.sh (``ASSETPIPE_DOCS_SCREENSHOTS=1``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from review_kit import WAIT_MS, cli, docs_image, launched, watched_tab

ICONS = ["shield", "sword", "map", "bow", "axe", "gem", "ring", "heart"]
SPEC = """
assets:
  - id: "{{ name }}"
    prompt: "a flat {{ name }} icon"
    matrix: {name: NAMES}
    model: gpt-image-2.6-flare
    format: svg
    size: 1024x1024
    tags: [icons]
    renditions:
      - {size: 64x64, format: png}
      - {size: 256x256, format: png}
""".replace("NAMES", str(ICONS))
"""Eight SVG icons (the fake colors each by its prompt), each with two raster
renditions: 24 delivered files."""


def expect(target: Any) -> Any:
    """Playwright's ``expect``, waiting as long as the browser tests do."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    return playwright_expect(target)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tab at 1280x900 in a fresh context that fails the test on any script error."""
    with watched_tab(browser, 900) as tab:
        yield tab


@pytest.mark.docs_screenshots
def test_an_svg_icon_set_and_its_raster_renditions_show_in_the_gallery(
    page, project, api, tmp_path
):
    """Every icon is a card whose thumbnail is the SVG drawn by resvg (a WebP the browser
    loads, none broken), with its two png renditions as chips; the rendition files are
    real PNGs at their sizes."""
    project.gen({"specs/icons.yaml": SPEC.lstrip()})
    result = cli(project.root, "build", "--provider", "openai", "-q")
    assert result.returncode == 0, result.stderr
    assert [r.fields["output_format"] for r in api.requests] == ["svg"] * len(ICONS)
    for name in ICONS:
        assert (project / f"output/icons/{name}.svg").read_bytes().startswith(b"<svg")
        for edge in (64, 256):
            with Image.open(project / f"output/icons/{name}@{edge}x{edge}.png") as png:
                assert (png.format, png.size) == ("PNG", (edge, edge))

    page.goto((project / "output/index.html").as_uri())
    page.wait_for_function("() => document.body.dataset.imagesPending === '0'")
    assert page.evaluate("document.body.dataset.imagesBroken") == "0"
    cards = page.locator("article.card")
    expect(cards).to_have_count(len(ICONS))
    shield = page.locator('.card[data-job="icons/shield"]')
    expect(shield.locator("img")).to_be_visible()
    assert shield.locator("img").get_attribute("src").endswith(".webp")  # the SVG, drawn
    chips = shield.locator(".renditions a.chip")
    expect(chips).to_have_text(["64x64 png", "256x256 png"])  # a format of their own
    assert page.locator(".renditions a.chip").count() == 2 * len(ICONS)
    widths = page.eval_on_selector_all("article.card img", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == len(ICONS)
    assert all(w > 0 for w in widths), widths  # every thumbnail decoded in the browser

    path = docs_image("svg-gallery", tmp_path)
    with Image.open(io.BytesIO(page.screenshot(full_page=True))) as shot:
        shot.convert("RGB").quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        ).save(path, optimize=True)
    with Image.open(path) as image:
        assert image.width == 1280
    assert path.stat().st_size < 400_000
