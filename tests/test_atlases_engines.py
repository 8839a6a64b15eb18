"""The atlases as the engines read them: PixiJS 8 and Phaser 4 load a built sheet's files
in headless Chromium from a real local server, and report each frame's rectangle and the
animation; the Godot resource is read back with godot_parser.

The engines are the npm packages scripts/install-tools.sh puts in tests/engines/
(pinned by its package-lock.json); the browser is Debian's chromium, as for the review
page. Every wait is on something the page says (a result it sets), never on time.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from processes import preview_build
from pyparsing.warnings import PyparsingDeprecationWarning
from review_kit import SKIP_BROWSER, docs_image, launched, watched_tab

from pipeline.jobs import RenditionOp
from pipeline.postprocess import render_rendition

with warnings.catch_warnings():  # godot_parser builds its grammar with deprecated arguments
    warnings.simplefilter("ignore", PyparsingDeprecationWarning)
    from godot_parser import parse

ENGINES = Path(__file__).resolve().parent / "engines" / "node_modules"
PIXI_JS = ENGINES / "pixi.js" / "dist" / "pixi.min.js"
PHASER_JS = ENGINES / "phaser" / "dist" / "phaser.min.js"
FPS = 8
FRAME = (96, 96)
SPEC = f"""
assets:
  - id: "walk-{{{{ n }}}}"
    prompt: "a knight walking, frame {{{{ n }}}}"
    matrix: {{n: [1, 2, 3, 4, 5, 6, 7, 8]}}
    size: 1024x1024
    quality: low
sheets:
  - id: walker
    assets: ["walk-*"]
    frame_size: {FRAME[0]}x{FRAME[1]}
    atlas: [pixi, phaser, godot, texturepacker-array]
    animation: {{fps: {FPS}, loop: true, name: walk}}
"""
ORDER = [f"walk-{n}.png" for n in range(1, 9)]
"""The sheet's frames in the order the spec lists them: the animation's order."""

RESULT = """
<script>
function report(promise) {
  promise.then(r => { window.result = r; }, e => { window.failure = String(e && e.stack || e); });
}
</script>
"""
"""Each page hands its finding to ``report``; the test waits for it to be set."""

PIXI_PAGE = (
    """<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<title>PixiJS atlas</title>
<body style="margin:0;background:#20242c">
<script src="/node_modules/pixi.js/dist/pixi.min.js"></script>"""
    + RESULT
    + """<script>
report((async () => {
  const sheet = await PIXI.Assets.load('/out/hero/walker.pixi.json');
  const nameOf = new Map(Object.entries(sheet.textures).map(([n, t]) => [t, n]));
  const frames = {};
  for (const [name, t] of Object.entries(sheet.textures)) {
    frames[name] = [t.frame.x, t.frame.y, t.frame.width, t.frame.height];
  }
  const animations = {};
  for (const [name, list] of Object.entries(sheet.animations)) {
    animations[name] = list.map(t => nameOf.get(t));
  }
  const meta = sheet.data.meta.animation;
  const app = new PIXI.Application();
  await app.init({width: 960, height: 330, background: '#20242c', antialias: true});
  document.body.appendChild(app.canvas);
  const style = {fill: '#e8e8e8', fontFamily: 'sans-serif', fontSize: 15};
  const sprite = new PIXI.AnimatedSprite(sheet.animations[meta.name]);
  sprite.animationSpeed = meta.fps / 60;  // frames per 60 Hz tick
  sprite.loop = meta.loop;
  sprite.scale.set(2);
  sprite.position.set(24, 48);
  sprite.play();
  app.stage.addChild(sprite);
  const title = `AnimatedSprite "${meta.name}": ${meta.fps} fps, animationSpeed = ${meta.fps}/60`;
  app.stage.addChild(Object.assign(new PIXI.Text({text: title, style}), {x: 24, y: 14}));
  animations[meta.name].forEach((name, i) => {
    const x = 260 + (i % 4) * 172, y = 48 + Math.floor(i / 4) * 140;
    app.stage.addChild(Object.assign(new PIXI.Sprite(sheet.textures[name]), {x, y}));
    const f = sheet.textures[name].frame;
    const label = `${i + 1}. ${name}\\n(${f.x}, ${f.y}) ${f.width}x${f.height}`;
    const text = new PIXI.Text({text: label, style: {...style, fontSize: 12}});
    app.stage.addChild(Object.assign(text, {x, y: y + 100}));
  });
  window.sprite = sprite;
  return {frames, animations, meta, totalFrames: sprite.totalFrames,
          speed: sprite.animationSpeed, loop: sprite.loop, renderer: app.renderer.name};
})());
</script>"""
)

PHASER_PAGE = (
    """<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Phaser atlas</title>
<script src="/node_modules/phaser/dist/phaser.min.js"></script>"""
    + RESULT
    + """<script>
const rects = (texture) => Object.fromEntries(texture.getFrameNames().map(name => {
  const f = texture.get(name);
  return [name, [f.cutX, f.cutY, f.cutWidth, f.cutHeight]];
}));
report(new Promise((resolve, reject) => {
  new Phaser.Game({type: Phaser.HEADLESS, width: 64, height: 64, banner: false,
                   audio: {noAudio: true}, scene: {
    preload() {
      this.load.on('loaderror', file => reject(new Error('could not load ' + file.src)));
      this.load.setPath('/out/hero/');
      this.load.multiatlas('walker', 'walker.phaser.json');
      this.load.animation('walker-anims', 'walker.anims.json');
      this.load.atlas('walker-array', 'walker.png', 'walker.array.json');
    },
    create() {
      const anim = this.anims.get('walk');
      const source = this.textures.get('walker').source[0];
      resolve({
        multiatlas: rects(this.textures.get('walker')),
        array: rects(this.textures.get('walker-array')),
        image: [source.width, source.height],
        anim: anim && {key: anim.key, frameRate: anim.frameRate, repeat: anim.repeat,
                       frames: anim.frames.map(f => [f.textureKey, f.textureFrame])},
      });
    },
  }});
}));
</script>"""
)


def need_engines() -> None:
    """The npm packages, or the test fails saying what to run (skips with the browser)."""
    if SKIP_BROWSER:
        pytest.skip("ASSETPIPE_SKIP_BROWSER=1")
    missing = [str(p.relative_to(ENGINES)) for p in (PIXI_JS, PHASER_JS) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run scripts/install-tools.sh")


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The walker sheet built as a person builds it (``assetpipe build --provider preview``,
    its own process, since Playwright's sync API keeps an event loop in this thread)."""
    root = tmp_path_factory.mktemp("engines") / "walker"
    return preview_build(root, {"hero.yaml": SPEC}, tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def rects(output: Path) -> dict[str, list[int]]:
    """Each frame's rectangle, from the TexturePacker array atlas, once proven against the
    sheet's pixels: the crop at each rectangle is exactly that frame's image at the
    sheet's frame size. Every engine must report these."""
    atlas = json.loads((output / "hero/walker.array.json").read_text())
    found = {f["filename"]: [f["frame"][k] for k in ("x", "y", "w", "h")] for f in atlas["frames"]}
    assert list(found) == ORDER
    with Image.open(output / "hero/walker.png") as image:
        sheet = image.convert("RGBA")
    for name, (x, y, w, h) in found.items():
        op = RenditionOp(*FRAME, "cover", "png", None)
        framed = render_rendition((output / "hero" / name).read_bytes(), op)
        with Image.open(io.BytesIO(framed)) as want:
            expected = want.convert("RGBA").tobytes()
        assert sheet.crop((x, y, x + w, y + h)).tobytes() == expected, name
    return found


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, recording every request that failed (a wrong image path in an atlas
    is a 404 the engine may only log)."""

    failed: list[str]

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        self.failed.append(f"{code} {self.path}")
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def site(output: Path, folder: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on a free 127.0.0.1 port: the build's output at ``/out/``, the
    engines at ``/node_modules/``, the pages at the root; ``(base URL, failed requests)``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "out").symlink_to(output, target_is_directory=True)
    (folder / "node_modules").symlink_to(ENGINES, target_is_directory=True)
    (folder / "pixi.html").write_text(PIXI_PAGE, "utf-8")
    (folder / "phaser.html").write_text(PHASER_PAGE, "utf-8")
    failed: list[str] = []
    handler = type("Handler", (_Handler,), {"failed": failed})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", failed
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def served(output: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    need_engines()
    with site(output, tmp_path_factory.mktemp("site")) as (base, failed):
        yield base, failed
    assert failed == []


@pytest.fixture(scope="module")
def browser(served: Any) -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


def finding(page: Any, url: str) -> dict[str, Any]:
    """Open ``url`` and wait for what its page reports (a failure fails the test)."""
    page.goto(url)
    page.wait_for_function("() => window.result !== undefined || window.failure !== undefined")
    failure = page.evaluate("window.failure")
    assert failure is None, failure
    result: dict[str, Any] = page.evaluate("window.result")
    return result


def test_pixi_reads_every_frame_and_the_animation(browser, served, rects):
    """PixiJS 8's own spritesheet loader: each texture's frame is the frame's rectangle,
    ``animations.walk`` is the frames in the sheet's order, and an AnimatedSprite made
    as docs/delivery.md says plays them at fps/60 per tick, looping."""
    base, failed = served
    with watched_tab(browser, 330) as page:
        found = finding(page, f"{base}/pixi.html")
    assert found["frames"] == rects
    assert found["animations"] == {"walk": ORDER}
    assert found["meta"] == {"name": "walk", "fps": FPS, "loop": True}
    assert (found["totalFrames"], found["speed"], found["loop"]) == (8, FPS / 60, True)
    assert failed == []


def test_phaser_reads_the_multiatlas_the_array_and_the_animation(browser, served, rects, output):
    """Phaser 4's loader: ``multiatlas`` (the phaser file, its image found beside it),
    ``atlas`` (the TexturePacker array) and ``animation`` (anims.fromJSON) give each
    frame's rectangle and the animation's frames, rate and repeat."""
    base, failed = served
    with watched_tab(browser, 200) as page:
        found = finding(page, f"{base}/phaser.html")
    assert found["multiatlas"] == rects
    assert found["array"] == rects
    with Image.open(output / "hero/walker.png") as sheet:
        assert found["image"] == list(sheet.size)
    assert found["anim"] == {
        "key": "walk",
        "frameRate": FPS,
        "repeat": -1,
        "frames": [["walker", name] for name in ORDER],
    }
    assert failed == []


def test_godot_names_each_region_on_the_image_beside_it(output, rects):
    """The SpriteFrames resource: its texture is the sheet beside it, each AtlasTexture's
    region is its frame's rectangle, the animation lists them in order at the fps."""
    text = (output / "hero/walker.tres").read_text("utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PyparsingDeprecationWarning)
        resource = parse(text)
    sections = resource.get_sections()
    assert sections[0].header["type"] == "SpriteFrames"
    (image,) = [s for s in sections if s.header.name == "ext_resource"]
    assert (image.header["type"], image.header["path"]) == ("Texture2D", "walker.png")
    assert (output / "hero" / image.header["path"]).is_file()
    regions = {
        s["resource_name"]: list(s["region"].args)
        for s in sections
        if s.header.name == "sub_resource"
    }
    assert regions == rects
    names = {
        s.header["id"]: s["resource_name"] for s in sections if s.header.name == "sub_resource"
    }
    (anim,) = sections[-1]["animations"]
    assert [names[f["texture"].args[0]] for f in anim["frames"]] == ORDER
    assert (anim["name"], anim["loop"], anim["speed"]) == ("walk", True, float(FPS))


@pytest.mark.docs_screenshots
def test_the_pixi_page_pictures_the_animation_and_its_frames(browser, served, tmp_path):
    """docs/images/pixi-atlas.png: the AnimatedSprite and every frame with its rectangle,
    as PixiJS draws them from the atlas; the sprite is held on one frame so the picture
    only changes when the atlas does."""
    base, _ = served
    with watched_tab(browser, 330) as page:
        page.set_viewport_size({"width": 960, "height": 330})
        finding(page, f"{base}/pixi.html")
        page.evaluate(
            "() => new Promise(done => { window.sprite.gotoAndStop(2);"
            " requestAnimationFrame(() => requestAnimationFrame(done)); })"
        )
        path = docs_image("pixi-atlas", tmp_path)
        with Image.open(io.BytesIO(page.screenshot())) as shot:
            assert shot.size == (960, 330)
            small = shot.convert("RGB").quantize(
                128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            )
            small.save(path, optimize=True)
    assert path.stat().st_size < 200_000
