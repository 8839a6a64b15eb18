"""The static gallery: output/index.html and its thumbnails, checked as text and in Chromium."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from processes import preview_build
from review_kit import WAIT_MS, docs_image, launched, watched_tab

from pipeline.gallery import INDEX, THUMB_DIR, THUMB_EDGE, write_gallery
from pipeline.hashing import sha256_file
from pipeline.output import ManifestEntry, OutputTree

# Read at import: the autouse clean_env fixture removes ASSETPIPE_* variables before each test.
SKIP_BROWSER = os.environ.get("ASSETPIPE_SKIP_BROWSER") == "1"
XSS = "<script>alert(1)</script>"
THUMB_SRC = re.compile(r'src="(\.gallery/[0-9a-f]{64}\.webp)"')


def entry(out: Path, rel: str, image: Image.Image | None, fmt: str = "PNG", **fields: Any):
    """A manifest-like entry for ``rel``; writes the image there when one is given."""
    collection, _, name = rel.rpartition("/")
    asset = name.split(".")[0].split("@")[0]
    doc: dict[str, Any] = {
        "job": f"{collection}/{name.rsplit('.', 1)[0]}",
        "collection": collection,
        "asset": asset,
        "variant": 1,
        "kind": "generate",
        "path": rel,
        "format": fmt.lower(),
        "prompt": f"a {asset}, hand-painted",
        "status": "generated",
        "cost_usd": 0.042,
    }
    if image is not None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, fmt)
        stat = path.stat()
        doc.update(
            sha256=sha256_file(path),
            bytes=stat.st_size,
            mtime_ns=stat.st_mtime_ns,
            width=image.width,
            height=image.height,
        )
    doc.update(fields)
    if doc.get("cost_usd") is None:  # a job that failed before it cost anything
        doc.pop("cost_usd", None)
    return doc


def typed(entries: list[dict[str, Any]]) -> list[ManifestEntry]:
    """The entries as the manifest loader hands them to the gallery (each one valid)."""
    out = [ManifestEntry.from_json(e) for e in entries]
    assert all(e is not None for e in out), entries
    return [e for e in out if e is not None]


def disc(size: tuple[int, int], color: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((4, 4, size[0] - 4, size[1] - 4), fill=(*color, 255))
    return image


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """An output tree: three collections, variants, a rendition, and two entries with no file."""
    out = tmp_path / "output"
    long_prompt = f"A heroic banner {XSS} with a <b>bold</b> title & rim light. " * 4
    entries = [
        entry(out, "icons/sword.png", disc((512, 512), (228, 87, 46))),
        entry(out, "icons/sword.v2.webp", disc((600, 300), (43, 45, 66)), "WEBP", variant=2),
        entry(out, "icons/sword@64x64.png", disc((64, 64), (228, 87, 46)), kind="rendition"),
        entry(out, "icons/bow.jpeg", Image.new("RGB", (300, 200), (242, 193, 78)), "JPEG"),
        entry(
            out,
            "icons/axe.png",
            None,
            status="failed",
            cost_usd=None,
            error={"type": "ProviderError", "message": "rejected <img src=x onerror=alert(2)>"},
        ),
        entry(
            out,
            "banners/hero.png",
            Image.new("RGB", (400, 100), (141, 153, 174)),
            status="cached",
            prompt=long_prompt,
            checks=[
                {"name": "size", "ok": True, "detail": "400x100 as asked"},
                {"name": "palette", "ok": False, "detail": f"mean ΔE 31.0 {XSS}"},
            ],
        ),
        entry(
            out,
            "banners/ghost.png",
            None,
            status="blocked",
            cost_usd=None,
            error={"message": "over budget"},
        ),
    ]
    return out, entries


def thumbs(html: str) -> list[str]:
    return THUMB_SRC.findall(html)


def test_page_counts_cards_and_statuses(tree):
    out, entries = tree
    path = write_gallery(OutputTree(out), typed(entries), title="Emberfall")
    assert path == out / INDEX
    html = path.read_text("utf-8")
    body = re.search(r"<body[^>]*>", html)
    assert body is not None
    assert 'data-entries="7"' in body.group()
    assert 'data-failed="1"' in body.group()
    assert 'data-blocked="1"' in body.group()
    assert 'data-thumbnails="5"' in body.group()
    assert html.count("<article") == 6  # the rendition is a chip on its source's card
    assert html.count('class="chip rendition"') == 1
    assert html.count('data-status="failed"') == 1
    assert sorted(re.findall(r'data-job="([^"]+)"', html)) == sorted(e["job"] for e in entries)
    # Collections then assets in order; in an asset, each variant then its renditions.
    assert re.findall(r'data-collection="([^"]+)"', html) == ["banners", "icons"]
    assert re.findall(r'data-asset="([^"]+)"', html) == ["ghost", "hero", "axe", "bow", "sword"]
    sword = html[html.index('data-asset="sword"') :]
    assert sword.index("sword.png") < sword.index("sword@64x64") < sword.index("sword.v2.webp")
    assert "$0.0420" in html
    assert "$0.2100" in html  # total cost of the five entries with a cost


def test_untrusted_text_is_escaped(tree):
    out, entries = tree
    html = write_gallery(OutputTree(out), typed(entries)).read_text("utf-8")
    assert XSS not in html
    assert "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "rejected &lt;img src=x onerror=alert(2)&gt;" in html
    assert html.count("<script") == 1  # only the page's own counting script
    assert "default-src 'none'" in html  # and a CSP that would block any other one


def test_long_prompts_collapse_and_checks_show(tree):
    out, entries = tree
    html = write_gallery(OutputTree(out), typed(entries)).read_text("utf-8")
    assert html.count("<details") == 1
    assert re.search(r'<li class="ok">✓ size: 400x100 as asked</li>', html)
    assert re.search(r'<li class="bad">✗ palette: mean ΔE 31.0 &lt;script&gt;', html)


def test_thumbnails_are_small_webp_files_referenced_relatively(tree):
    out, entries = tree
    html = write_gallery(OutputTree(out), typed(entries)).read_text("utf-8")
    srcs = thumbs(html)
    assert len(srcs) == 4  # a rendition is a chip (its size, a link), not a picture
    for src in srcs:
        with Image.open(out / src) as image:
            assert image.format == "WEBP"
            assert max(image.size) <= THUMB_EDGE
    names = {Path(s).name for s in srcs}
    shown = [e for e in entries if "sha256" in e and e["kind"] != "rendition"]
    assert {f"{e['sha256']}.webp" for e in shown} == names
    assert (out / THUMB_DIR / f"{entries[2]['sha256']}.webp").is_file()  # its file is still read
    with Image.open(out / THUMB_DIR / f"{entries[0]['sha256']}.webp") as sword:
        assert sword.size == (256, 256)
        assert sword.mode == "RGBA"  # transparency kept
    assert 'href="icons/sword%4064x64.png"' in html
    assert "placeholder" in html
    assert "over budget" in html


def test_rewrite_is_idempotent_and_removes_stale_thumbnails(tree):
    out, entries = tree
    first = write_gallery(OutputTree(out), typed(entries)).read_bytes()
    gallery = out / THUMB_DIR
    stale = gallery / f"{'0' * 64}.webp"
    stale.write_bytes(b"old")
    notes = gallery / "notes.txt"
    notes.write_text("not a thumbnail")
    mtimes = {p.name: p.stat().st_mtime_ns for p in gallery.iterdir()}
    time.sleep(0.01)

    assert write_gallery(OutputTree(out), typed(entries)).read_bytes() == first
    assert not stale.exists()
    assert notes.exists()  # only files named like thumbnails are the gallery's to remove
    assert all(p.stat().st_mtime_ns == mtimes[p.name] for p in gallery.iterdir())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    dropped = entries[1]
    write_gallery(OutputTree(out), typed([e for e in entries if e is not dropped]))
    assert not (gallery / f"{dropped['sha256']}.webp").exists()
    assert (gallery / f"{entries[0]['sha256']}.webp").exists()


def test_a_changed_file_gets_a_new_thumbnail(tree):
    out, entries = tree
    write_gallery(OutputTree(out), typed(entries))
    Image.new("RGB", (300, 200), (0, 0, 255)).save(out / "icons/bow.jpeg", "JPEG")
    html = write_gallery(OutputTree(out), typed(entries)).read_text("utf-8")
    actual = sha256_file(out / "icons/bow.jpeg")
    assert f".gallery/{actual}.webp" in html
    assert not (out / THUMB_DIR / f"{entries[3]['sha256']}.webp").exists()


def test_missing_corrupt_and_escaping_files_get_placeholders(tree, tmp_path):
    out, _ = tree
    (out / "icons/broken.png").write_bytes(b"\x89PNG not really")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(secret)
    (out / "icons/link.png").symlink_to(secret)
    entries = [
        entry(out, "icons/broken.png", None),
        entry(out, "icons/link.png", None),
        entry(out, "icons/gone.png", None),
        entry(out, "javascript:alert(1)", Image.new("RGB", (8, 8), (9, 9, 9))),
        entry(out, "icons/odd.png", Image.new("RGB", (8, 8)), sha256="../../../etc/passwd"),
    ]
    html = write_gallery(OutputTree(out), typed(entries)).read_text("utf-8")
    assert sorted(thumbs(html)) == sorted(
        f".gallery/{sha256_file(out / rel)}.webp"
        for rel in ("icons/odd.png", "javascript:alert(1)")
    )
    assert 'href="javascript%3Aalert%281%29"' in html
    assert 'data-placeholders="3"' in html
    assert "cannot read icons/broken.png" in html
    assert "refusing to write through the symbolic link" in html
    assert "file missing: icons/gone.png" in html


def test_a_deleted_thumbnail_is_drawn_again_and_the_page_is_the_same(tree):
    out, entries = tree
    first = write_gallery(OutputTree(out), typed(entries)).read_bytes()
    gone = out / THUMB_DIR / f"{entries[0]['sha256']}.webp"
    gone.unlink()
    assert write_gallery(OutputTree(out), typed(entries)).read_bytes() == first
    assert gone.is_file()


def test_links_in_the_thumbnail_folder_are_never_taken_for_thumbnails(tree, tmp_path):
    out, entries = tree
    write_gallery(OutputTree(out), typed(entries))
    planted = out / THUMB_DIR / f"{entries[0]['sha256']}.webp"
    secret = tmp_path / "secret.webp"
    kept = planted.read_bytes()
    secret.write_bytes(kept)
    planted.unlink()
    planted.symlink_to(secret)
    html = write_gallery(OutputTree(out), typed(entries)).read_text("utf-8")
    assert f'src=".gallery/{entries[0]["sha256"]}.webp"' not in html
    assert "refusing to write through the symbolic link" in html
    assert secret.read_bytes() == kept

    elsewhere = tmp_path / "elsewhere"
    (out / THUMB_DIR).rename(elsewhere)
    (out / THUMB_DIR).symlink_to(elsewhere)
    html = write_gallery(OutputTree(out), typed(entries)).read_text("utf-8")
    assert thumbs(html) == [], "a linked thumbnail folder is not the tree's"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.mark.skipif(SKIP_BROWSER, reason="ASSETPIPE_SKIP_BROWSER=1")
def test_every_thumbnail_loads_in_headless_chromium(tree, tmp_path):
    browser = find_chromium()
    if browser is None:
        pytest.fail(
            "chromium is not installed: run scripts/install-tools.sh "
            "(apt-get install -y chromium), or set ASSETPIPE_SKIP_BROWSER=1 to skip this test"
        )
    out, entries = tree
    index = write_gallery(OutputTree(out), typed(entries))
    html = index.read_text("utf-8")
    profile = tmp_path / "chromium-profile"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
        "--dump-dom",
        index.as_uri(),
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", result.stdout)
    assert body is not None, result.stdout[:2000] + result.stderr[-2000:]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    assert attrs["images-broken"] == "0", attrs
    assert attrs["images-pending"] == "0", attrs
    assert attrs["images-loaded"] == str(len(thumbs(html))) == "4"
    assert attrs["entries"] == str(len(entries))
    assert attrs["failed"] == str(sum(e["status"] == "failed" for e in entries))
    assert result.stdout.count("<article") == len(entries) - 1  # and one rendition chip
    assert result.stdout.count("<script") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.stdout


ICONS = """
assets:
  - id: "icon-{{ i }}"
    prompt: "game icon number {{ i }}, flat style"
    matrix: {i: NUMBERS}
    size: 256x256
    tags: [icons]
    renditions:
      - {size: 64x64}
      - {size: 32x32}
""".replace("NUMBERS", str(list(range(1, 57))))
"""A real set: 56 icons, two renditions each (168 files)."""
NORMAL_MAX = 8_000
"""Scroll height (px, at 1280x800) of the 56 icons: 6,650 measured; 19,092 when each
rendition was a full card of its own."""
COMPACT_MAX = 1_500
"""The same in compact mode: 988 measured, about a screen and a quarter."""


def expect(target: Any) -> Any:
    """Playwright's ``expect``, waiting as long as the browser tests do; imported only
    once a browser test runs, as review_kit imports Playwright."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    return playwright_expect(target)


@pytest.fixture(scope="module")
def icons56(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 56 icons built once as a person builds them (``assetpipe build --provider
    preview``, its own process); returns output/index.html."""
    root = tmp_path_factory.mktemp("gallery") / "icons56"
    output = preview_build(root, {"icons.yaml": ICONS}, tmp_path_factory.mktemp("state"))
    return output / INDEX


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tab at 1280x800 in a fresh context (its own localStorage)."""
    with watched_tab(browser, 800) as tab:
        yield tab


def scroll_height(page: Any, url: str) -> int:
    """The page's full height once every thumbnail has loaded (or failed to)."""
    page.goto(url)
    page.wait_for_function("() => document.body.dataset.imagesPending === '0'")
    return int(page.evaluate("document.documentElement.scrollHeight"))


def doc_screenshot(page: Any, name: str, scratch: Path) -> Path:
    """The whole page as NAME.png, 1280 px wide, in 256 colours: a third of the bytes of
    Chromium's own PNG, so the docs stay small. Written to docs/images/ only when
    scripts/screenshots.sh asks (:func:`review_kit.docs_image`), else under ``scratch``:
    the test measures the same picture either way."""
    path = docs_image(name, scratch)
    with Image.open(io.BytesIO(page.screenshot(full_page=True))) as shot:
        palette = shot.convert("RGB").quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        palette.save(path, optimize=True)
    return path


def test_renditions_are_chips_on_their_card_and_a_chip_opens_the_image(page, icons56):
    page.goto(icons56.as_uri())
    assert page.locator("article.card").count() == 56  # one card per icon
    assert page.locator(".renditions a.chip").count() == 112
    first = page.locator('.card[data-job="icons/icon-1"]')
    expect(first.locator(".renditions a.chip")).to_have_text(["32x32", "64x64"])
    groups = page.eval_on_selector_all(".group", "gs => gs.map(g => g.dataset.asset)")
    assert groups[:3] == ["icon-1", "icon-2", "icon-3"]  # counted, not icon-1, icon-10
    assert groups[-1] == "icon-56"
    first.locator("a.chip", has_text="64x64").click()
    page.wait_for_url(re.compile(r"/icons/icon-1%4064x64\.png$"))  # "@", quoted in the link


@pytest.mark.docs_screenshots
def test_compact_mode_shows_56_icons_in_little_more_than_a_screen(page, icons56, tmp_path):
    """Image and id only, in a dense grid a lead can scan; measured at 1280x800."""
    normal = scroll_height(page, icons56.as_uri())
    compact = scroll_height(page, icons56.as_uri() + "?compact=1")
    assert normal <= NORMAL_MAX, normal
    assert compact <= COMPACT_MAX, compact
    expect(page.locator('#filters input[name="compact"]')).to_be_checked()
    icon = page.locator('.card[data-job="icons/icon-1"]')
    expect(icon.locator("img")).to_be_visible()
    expect(icon.locator(".job")).to_have_text("icons/icon-1")
    for detail in (".meta", ".renditions", ".prompt", ".checks"):
        expect(icon.locator(detail)).to_be_hidden()
    expect(page.locator(".group h3").first).to_be_hidden()
    assert page.evaluate("document.body.dataset.imagesBroken") == "0"
    shot = doc_screenshot(page, "gallery-compact", tmp_path)
    with Image.open(shot) as image:
        assert image.width == 1280
    assert shot.stat().st_size < 400_000


def test_the_compact_toggle_is_remembered_and_the_address_can_ask_for_either(page, icons56):
    compact = re.compile(r"\bcompact\b")
    html = page.locator("html")
    toggle = page.locator('#filters input[name="compact"]')
    page.goto(icons56.as_uri())
    expect(html).not_to_have_class(compact)
    toggle.check()
    expect(html).to_have_class(compact)
    page.reload()  # remembered (localStorage)
    expect(html).to_have_class(compact)
    expect(toggle).to_be_checked()
    page.goto(icons56.as_uri() + "?compact=0")  # the address wins over what was remembered
    expect(html).not_to_have_class(compact)
    expect(toggle).not_to_be_checked()
    page.goto(icons56.as_uri())
    expect(html).to_have_class(compact)
    toggle.uncheck()
    page.reload()
    expect(html).not_to_have_class(compact)
