"""``format: gif`` end to end on the fake API: the GIF is delivered as it came, each of
its frames as a checked PNG, and a sheet that selects the asset packs those frames."""

from __future__ import annotations

import io
import json

from PIL import Image, ImageChops

from pipeline.postprocess import gif

SPEC = """\
assets:
  - id: walk
    prompt: "A walking knight"
    model: gpt-image-2.6-flare
    format: gif
    frames: 16
    frame_ms: 80
    size: 1024x1024
sheets:
  - id: walk-sheet
    assets: [walk]
    frame_size: 128x128
    atlas: [texturepacker-hash, pixi]
    animation: {fps: 12}
"""


def built(project) -> dict:
    doc = json.loads((project / "output/manifest.json").read_text())
    return {e["path"]: e for e in doc["entries"]}


def test_sixteen_frames_are_asked_for_delivered_and_checked(project, run, api) -> None:
    """frame_count and frame_duration_ms go on the wire; the GIF and its 16 frame PNGs
    are delivered, each frame equal to the GIF's and its checks passing."""
    project.gen({"specs/s.yaml": SPEC})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    (request,) = [r for r in api.requests if r.endpoint == "generations"]
    assert (request.fields["frame_count"], request.fields["frame_duration_ms"]) == (16, 80)
    data = (project / "output/s/walk.gif").read_bytes()
    frames = gif.frames(data)
    assert len(frames) == 16
    entries = built(project)
    for k, expected in enumerate(frames, start=1):
        path = f"s/walk.f{k}.png"
        with Image.open(project / "output" / path) as image:
            assert image.format == "PNG"
            assert ImageChops.difference(image.convert("RGBA"), expected).getbbox() is None
        assert all(c["ok"] for c in entries[path]["checks"]), entries[path]["checks"]


def test_the_sheet_packs_the_gifs_frames_in_order(project, run, api) -> None:
    """The sheet's atlas lists the 16 frames (its animation plays them in the GIF's
    order); each frame cut from the sheet equals the GIF's frame at the sheet's frame
    size."""
    project.gen({"specs/s.yaml": SPEC})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    atlas = json.loads((project / "output/s/walk-sheet.json").read_text())
    names = [f"walk.f{k}.png" for k in range(1, 17)]
    assert sorted(atlas["frames"]) == sorted(names)
    pixi = [p for p in (project / "output/s").iterdir() if "pixi" in p.name]
    assert json.loads(pixi[0].read_text())["animations"]["walk-sheet"] == names
    frames = gif.frames((project / "output/s/walk.gif").read_bytes())
    sheet = Image.open(io.BytesIO((project / "output/s/walk-sheet.png").read_bytes()))
    sheet = sheet.convert("RGBA")
    for name, expected in zip(names, frames, strict=True):
        box = atlas["frames"][name]["frame"]
        cut = sheet.crop((box["x"], box["y"], box["x"] + box["w"], box["y"] + box["h"]))
        want = expected.resize((128, 128), Image.Resampling.LANCZOS)
        diff = ImageChops.difference(cut, want).getextrema()
        assert max(hi for _, hi in diff) <= 8, name
