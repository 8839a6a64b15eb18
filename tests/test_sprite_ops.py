"""Sprite operations: ``trim``, ``canvas``, ``chroma_key``, ``pixelate`` and ``quantize``
on real Pillow images, their parameter errors at the spec's line, and a 16-frame walk
cycle that comes out with one canvas, one anchor line and one scale."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw
from review_kit import docs_image

from pipeline import ops
from pipeline.jobs.job import OpCall
from pipeline.ops import OpContext
from pipeline.ops.trim import content_box


def call(name: str, **params: object) -> OpCall:
    """A validated call of a registered operation (as a plan carries it)."""
    op = ops.get(name)
    assert op is not None
    checked = op.Params.model_validate(params)
    return OpCall(name=name, params=checked.model_dump(mode="json"), version=op.version)


def sprite(size=(100, 80), box=(30, 20, 60, 70), color=(200, 40, 40, 255)) -> Image.Image:
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=color)
    return image


def test_the_sprite_operations_are_registered_at_version_1() -> None:
    """All five are built in; chroma_key and quantize are memoised (expensive), trim's
    size is decided by its content."""
    names = ("trim", "canvas", "chroma_key", "pixelate", "quantize")
    assert all(ops.get(n).version == 1 for n in names)
    assert [n for n in names if ops.get(n).expensive] == ["chroma_key", "quantize"]
    assert [n for n in names if ops.get(n).sized_by_content] == ["trim"]


def test_trim_cuts_to_the_alpha_content_plus_its_margin_within_the_image() -> None:
    """By alpha: the content box, grown by ``margin`` but never past the image."""
    image = sprite()
    assert ops.apply_ops(image, [call("trim")]).size == (30, 50)
    assert ops.apply_ops(image, [call("trim", margin=5)]).size == (40, 60)
    assert ops.apply_ops(image, [call("trim", margin=500)]).size == (100, 80)


def test_trim_on_an_opaque_image_cuts_away_the_corner_color() -> None:
    """No transparency: what differs from the top-left color by more than the tolerance."""
    image = Image.new("RGB", (64, 64), (250, 250, 250))
    ImageDraw.Draw(image).rectangle((10, 12, 29, 49), fill=(10, 10, 10))
    ImageDraw.Draw(image).point((60, 60), fill=(245, 245, 245))  # noise under the tolerance
    assert content_box(image) == (10, 12, 30, 50)
    assert ops.apply_ops(image, [call("trim")]).size == (20, 38)


def test_trim_of_an_empty_image_keeps_it_whole() -> None:
    """Nothing visible: nothing to cut to, and no crash."""
    empty = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    assert ops.apply_ops(empty, [call("trim")]).size == (20, 10)


def test_a_trim_followed_by_a_canvas_has_a_known_size_alone_it_has_not() -> None:
    """The plan knows the delivered size after canvas; after trim alone only a bound."""
    assert not ops.chain_exact([call("trim")])
    assert ops.chain_exact([call("trim"), call("canvas", size="64x96")])
    assert not ops.chain_exact([call("trim"), call("flip")])
    assert ops.chain_exact([call("flip")])


def test_canvas_per_image_scales_the_longer_side_to_its_fill_share_at_the_anchor() -> None:
    """``scale_by: image``: the content's longer side takes ``fill`` of the canvas."""
    made = ops.apply_ops(sprite(), [call("trim"), call("canvas", size="100x100", fill=0.5)])
    assert made.size == (100, 100)
    assert made.getchannel("A").getbbox() == (35, 50, 65, 100)  # 30x50 -> 30x50: h=50


def test_canvas_with_one_scale_keeps_the_ratio_between_frames() -> None:
    """``scale_by: scale``: a wide frame and a narrow one drawn at the same factor, feet
    on the bottom line; per image they would not be."""
    wide, narrow = sprite(box=(10, 20, 90, 70)), sprite(box=(40, 20, 60, 70))
    fixed = [call("trim"), call("canvas", size="64x64", scale_by="scale", scale=0.5)]
    boxes = [ops.apply_ops(i, fixed).getchannel("A").getbbox() for i in (wide, narrow)]
    assert boxes == [(12, 39, 52, 64), (27, 39, 37, 64)]
    own = [call("trim"), call("canvas", size="64x64")]
    heights = [ops.apply_ops(i, own).getchannel("A").getbbox() for i in (wide, narrow)]
    assert heights[0][3] - heights[0][1] != heights[1][3] - heights[1][1]


def test_canvas_cuts_content_larger_than_it_without_allocating_the_scaled_image() -> None:
    """A fixed scale of 64 on a big image resamples only what lands on the canvas."""
    big = Image.new("RGBA", (4000, 4000), (9, 9, 9, 255))
    made = ops.apply_ops(big, [call("canvas", size="32x32", scale_by="scale", scale=64)])
    assert made.size == (32, 32)
    assert made.getpixel((0, 0)) == (9, 9, 9, 255)


def test_canvas_reference_height_gives_every_frame_one_scale() -> None:
    """``reference: 50`` with fill 0.5 on a 100-high canvas: factor 1 for every frame."""
    steps = [call("canvas", size="100x100", fill=0.5, scale_by="reference", reference=50)]
    made = ops.apply_ops(sprite(size=(30, 50), box=(0, 0, 30, 50)), steps)
    assert made.getchannel("A").getbbox() == (35, 50, 65, 100)


def keyed_picture(key=(255, 0, 255)) -> Image.Image:
    """A red disc on a flat key color, its edge blended with the key (antialiased)."""
    big = Image.new("RGB", (256, 256), key)
    ImageDraw.Draw(big).ellipse((48, 48, 208, 208), fill=(200, 40, 40))
    return big.resize((128, 128), Image.Resampling.BOX)


def near_key(image: Image.Image, key=(255, 0, 255), distance=80) -> int:
    """Visible pixels whose color is within ``distance`` (per channel) of the key."""
    count = 0
    for r, g, b, a in image.get_flattened_data():
        if a > 0 and max(abs(r - key[0]), abs(g - key[1]), abs(b - key[2])) < distance:
            count += 1
    return count


def test_chroma_key_makes_the_key_transparent_and_takes_the_cast_off_the_edges() -> None:
    """The key is gone, the subject opaque, edges partly transparent, and no visible
    pixel keeps the key's cast; without despill some do."""
    made = ops.apply_ops(keyed_picture(), [call("chroma_key", color="#FF00FF")])
    assert made.mode == "RGBA"
    assert made.getpixel((0, 0))[3] == 0
    assert made.getpixel((64, 64)) == (200, 40, 40, 255)
    assert near_key(made) == 0
    raw = ops.apply_ops(keyed_picture(), [call("chroma_key", color="#FF00FF", despill=False)])
    assert near_key(raw) > 0


def test_chroma_key_on_green_despills_green() -> None:
    """The same for a green key: a green fringe is lowered to the other channels."""
    made = ops.apply_ops(keyed_picture((0, 255, 0)), [call("chroma_key", color="#00FF00")])
    assert near_key(made, (0, 255, 0)) == 0


def test_pixelate_makes_a_grid_of_cells_in_the_brand_palette() -> None:
    """``palette: brand`` is filled in with the brand's colors when planned; each cell
    is one color of it, the image back at its size."""
    op = ops.get("pixelate")
    params = op.Params.model_validate({"cell": 8, "palette": "brand"})
    planned = op.planned(params, OpContext(("#FF0000", "#0000FF")))
    assert planned.palette == ["#FF0000FF", "#0000FFFF"]
    image = Image.new("RGB", (32, 16), (240, 10, 10))
    ImageDraw.Draw(image).rectangle((16, 0, 31, 15), fill=(20, 20, 220))
    step = OpCall("pixelate", planned.model_dump(mode="json"), 1)
    made = ops.apply_ops(image, [step])
    assert made.size == (32, 16)
    assert sorted(c for _, c in made.getcolors()) == [(0, 0, 255), (255, 0, 0)]
    small = ops.apply_ops(image, [call("pixelate", grid="4x2", colors=2, keep_size=False)])
    assert small.size == (4, 2)


def test_pixelate_brand_without_a_brand_is_an_error() -> None:
    op = ops.get("pixelate")
    params = op.Params.model_validate({"cell": 8, "palette": "brand"})
    with pytest.raises(ValueError, match="needs a brand kit"):
        op.planned(params, OpContext())


def test_quantize_reduces_colors_and_keeps_alpha() -> None:
    image = Image.linear_gradient("L").convert("RGBA").resize((64, 64))
    image.putalpha(Image.linear_gradient("L").resize((64, 64)))
    made = ops.apply_ops(image, [call("quantize", colors=4, dither="floyd")])
    assert len(made.convert("RGB").getcolors()) <= 4
    assert made.getchannel("A").tobytes() == image.getchannel("A").tobytes()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{op: canvas, size: 64x64, scale_by: scale}", "'scale_by: scale' needs 'scale'"),
        ("{op: canvas, size: 64x64, fill: 1.5}", "less than or equal to 1"),
        ("{op: canvas, size: 9000x64}", "each side is 1 to 8192"),
        ("{op: trim, margin: -1}", "greater than or equal to 0"),
        ("{op: chroma_key, color: '#FF00FF80'}", "not opaque"),
        ("{op: chroma_key, color: '#FF00FF', band: 99}", "less than or equal to 8"),
        ("{op: pixelate, cell: 4, grid: 8x8}", "exactly one of 'cell'"),
        ("{op: pixelate, cell: 4, palette: brand}", "needs a brand kit"),
        ("{op: quantize, colors: 1000}", "less than or equal to 256"),
        ("{op: quantize}", "colors"),
    ],
)
def test_a_bad_parameter_is_an_error_at_its_line(project, run, entry: str, message: str) -> None:
    """Each mistake is a spec error at the line of the entry, never a traceback."""
    spec = (
        f"assets:\n  - id: hero\n    prompt: A hero\n    size: 256x256\n    ops:\n      - {entry}\n"
    )
    project.gen({"specs/set.yaml": spec})
    result = run("validate")
    assert result.code != 0
    assert "set.yaml:6:" in result.err, result.err
    assert message in result.err
    assert "Traceback" not in result.err


WALK = """
defaults:
  background: transparent
  quality: low
  ops:
    - {op: trim}
    - {op: canvas, size: 160x128, anchor: bottom, fill: 0.9, scale_by: reference, reference: 204}
assets:
  - id: "walk-{{ dir.name }}-{{ frame }}"
    prompt: "A knight walking {{ dir.name }}, frame {{ frame }}"
    size: "{{ dir.size }}"
    matrix:
      dir:
        - {name: up, size: 256x256}
        - {name: down, size: 256x256}
        - {name: left, size: 320x256}
        - {name: right, size: 320x256}
      frame: [1, 2, 3, 4]
"""


def test_a_walk_cycle_of_four_directions_has_one_canvas_one_anchor_and_one_scale(
    project, run
) -> None:
    """16 frames, two widths of source: every file is 160x128, every content box sits on
    the bottom line, centered, and all are the same height (one scale); the wide frames
    are wider by the ratio of their sources, not shrunk to fit."""
    project.gen({"specs/walk.yaml": WALK})
    result = run("build", "--provider", "preview")
    assert result.code == 0, result.err
    doc = json.loads((project / "output/manifest.json").read_text())
    frames = [e for e in doc["entries"] if e["kind"] == "generate"]
    assert len(frames) == 16
    boxes = {}
    for entry in frames:
        with Image.open(project / "output" / entry["path"]) as image:
            assert image.size == (160, 128)
            assert (entry["width"], entry["height"]) == (160, 128)
            boxes[entry["asset"]] = image.convert("RGBA").getchannel("A").getbbox()
    # on the bottom line (a diamond's tip may resample to a clear last row)
    assert {b[3] for b in boxes.values()} <= {127, 128}
    heights = [b[3] - b[1] for b in boxes.values()]
    assert max(heights) - min(heights) <= 1
    for name, (left, _, right, _) in boxes.items():
        assert abs((left + right) / 2 - 80) <= 1, name
    narrow = boxes["walk-up-1"][2] - boxes["walk-up-1"][0]
    wide = boxes["walk-left-1"][2] - boxes["walk-left-1"][0]
    assert abs(wide / narrow - 320 / 256) < 0.05


@pytest.mark.docs_screenshots
def test_the_walk_cycle_packs_into_one_animated_contact_sheet(project, run, tmp_path) -> None:
    """docs/images/walk-cycle-sheet.png: the 16 frames packed into one sheet, in the order
    the spec lists them (four directions, four frames each), every cell 160x128, with the
    sheet's animation naming all 16."""
    sheet = '\nsheets:\n  - id: walk\n    assets: ["walk-*"]\n    animation: {fps: 8, loop: true}\n'
    project.gen({"specs/walk.yaml": WALK + sheet})
    result = run("build", "--provider", "preview")
    assert result.code == 0, result.err
    atlas = json.loads((project / "output/walk/walk.json").read_text())
    frames = atlas["frames"]
    assert len(frames) == 16
    assert {(f["frame"]["w"], f["frame"]["h"]) for f in frames.values()} == {(160, 128)}
    order = [f"walk-{d}-{k}.png" for d in ("up", "down", "left", "right") for k in (1, 2, 3, 4)]
    assert atlas["meta"]["animation"]["frames"] == order
    target = docs_image("walk-cycle-sheet", tmp_path)
    target.write_bytes((project / "output/walk/walk.png").read_bytes())
    with Image.open(target) as image:
        assert image.mode == "RGBA"
