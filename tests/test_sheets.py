"""Sprite sheets: packing geometry, the TexturePacker atlas, and exact pixel placement."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from images import encode
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.sheets import Frame, SheetError, SheetOptions, pack, render_sheet


def solid(w: int, h: int, colour: tuple[int, int, int, int]) -> bytes:
    return encode(Image.new("RGBA", (w, h), colour))


def patterned(w: int, h: int, seed: int, *, alpha: bool) -> bytes:
    """A frame whose every pixel differs from its neighbours, so any shift is caught."""
    image = Image.new("RGBA", (w, h))
    image.putdata(
        [
            (
                (x * 7 + seed) % 256,
                (y * 13 + seed) % 256,
                (x * y + seed) % 256,
                (x + y) * 17 % 256 if alpha else 255,
            )
            for y in range(h)
            for x in range(w)
        ]
    )
    return encode(image)


def assert_layout(width: int, height: int, frames: Sequence[Frame], pad: int) -> None:
    """Every frame lies inside the sheet, ``pad`` from each edge and from every other frame."""
    for f in frames:
        assert f.x >= pad and f.y >= pad, f
        assert f.x + f.w + pad <= width and f.y + f.h + pad <= height, (f, width, height)
    for a, b in itertools.combinations(frames, 2):
        apart = (
            a.x + a.w + pad <= b.x
            or b.x + b.w + pad <= a.x
            or a.y + a.h + pad <= b.y
            or b.y + b.h + pad <= a.y
        )
        assert apart, (a, b, pad)


def is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def test_pack_places_every_frame_in_input_order_without_overlap() -> None:
    sizes = [("b.png", 40, 30), ("a.png", 100, 20), ("c.png", 10, 90), ("d.png", 30, 30)]
    width, height, frames = pack(sizes, SheetOptions(padding=3))
    assert [(f.name, f.w, f.h) for f in frames] == sizes
    assert_layout(width, height, frames, 3)


def test_equal_frames_pack_into_a_tight_square() -> None:
    sizes = [(f"f{i:02}", 32, 32) for i in range(16)]
    for pow2 in (False, True):
        width, height, frames = pack(sizes, SheetOptions(padding=0, power_of_two=pow2))
        assert (width, height) == (128, 128)
        assert_layout(width, height, frames, 0)


def test_power_of_two_sheets() -> None:
    sizes = [("a", 50, 70), ("b", 33, 12), ("c", 120, 9), ("d", 5, 200)]
    width, height, frames = pack(sizes, SheetOptions(padding=2, power_of_two=True))
    assert is_pow2(width) and is_pow2(height)
    assert_layout(width, height, frames, 2)


def test_pack_is_deterministic_and_independent_of_input_order() -> None:
    sizes = [(f"s{i}", 10 + i * 7 % 50, 5 + i * 11 % 60) for i in range(25)]
    first = pack(sizes, SheetOptions())
    assert pack(sizes, SheetOptions()) == first
    by_name = {f.name: f for f in first[2]}
    width, height, frames = pack(list(reversed(sizes)), SheetOptions())
    assert (width, height) == first[:2]
    assert all(by_name[f.name] == f for f in frames)


def test_render_is_byte_identical_for_the_same_input() -> None:
    frames = [
        (f"icon-{i}.png", patterned(20 + i, 15 + 2 * i, i, alpha=i % 2 == 0)) for i in range(8)
    ]
    for fmt in ("png", "webp"):
        options = SheetOptions(format=fmt)
        assert render_sheet(frames, options, f"s.{fmt}") == render_sheet(
            frames, options, f"s.{fmt}"
        )


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_sheet_pixels_match_each_source_exactly(fmt: str) -> None:
    sources = {
        "icon-sword-common.png": solid(24, 24, (200, 10, 10, 255)),
        "icon-shield-rare.png": solid(31, 17, (10, 200, 10, 128)),
        "icon-ghost.png": solid(9, 40, (0, 0, 0, 0)),
        "icon-gem.png": patterned(37, 23, 5, alpha=True),
        "icon-map.png": patterned(50, 12, 99, alpha=False),
        "icon-rgb.png": encode(Image.new("RGB", (16, 16), (1, 2, 3))),
    }
    sheet, atlas_bytes = render_sheet(list(sources.items()), SheetOptions(format=fmt), "atlas")
    atlas = json.loads(atlas_bytes)
    image = Image.open(io.BytesIO(sheet))
    assert image.format == fmt.upper() and image.mode == "RGBA"
    assert image.size == (atlas["meta"]["size"]["w"], atlas["meta"]["size"]["h"])
    assert set(atlas["frames"]) == set(sources)
    covered = Image.new("L", image.size, 0)
    for name, entry in atlas["frames"].items():
        box = entry["frame"]
        crop = image.crop((box["x"], box["y"], box["x"] + box["w"], box["y"] + box["h"]))
        expected = Image.open(io.BytesIO(sources[name])).convert("RGBA")
        assert crop.size == expected.size
        assert crop.tobytes() == expected.tobytes(), name
        covered.paste(255, (box["x"], box["y"], box["x"] + box["w"], box["y"] + box["h"]))
    # Everything outside the frames is the transparent background.
    alpha = image.getchannel("A").tobytes()
    outside = [a for a, c in zip(alpha, covered.tobytes(), strict=True) if not c]
    assert outside and not any(outside)


def test_atlas_is_the_texturepacker_hash_layout() -> None:
    sheet, atlas_bytes = render_sheet(
        [("icon-sword-common.png", solid(10, 20, (1, 1, 1, 255)))], SheetOptions(padding=1), "x.png"
    )
    text = atlas_bytes.decode()
    assert text.endswith("}\n") and text.startswith('{\n "frames": {\n  "icon-sword-common.png"')
    atlas = json.loads(text)
    assert atlas == {
        "frames": {
            "icon-sword-common.png": {
                "frame": {"x": 1, "y": 1, "w": 10, "h": 20},
                "rotated": False,
                "trimmed": False,
                "spriteSourceSize": {"x": 0, "y": 0, "w": 10, "h": 20},
                "sourceSize": {"w": 10, "h": 20},
            }
        },
        "meta": {
            "app": "assetpipe",
            "version": "1.0",
            "image": "x.png",
            "format": "RGBA8888",
            "size": {"w": 12, "h": 22},
            "scale": "1",
        },
    }
    assert text == json.dumps(atlas, indent=1, sort_keys=True) + "\n"
    assert Image.open(io.BytesIO(sheet)).size == (12, 22)


def test_frame_size_resizes_every_frame() -> None:
    frames = [
        ("wide", solid(200, 50, (255, 0, 0, 255))),
        ("tall", solid(30, 90, (0, 0, 255, 255))),
        ("tiny", solid(3, 3, (0, 255, 0, 255))),
    ]
    sheet, atlas_bytes = render_sheet(frames, SheetOptions(frame_size=(32, 24)), "s.png")
    atlas = json.loads(atlas_bytes)
    image = Image.open(io.BytesIO(sheet))
    for name, entry in atlas["frames"].items():
        box = entry["frame"]
        assert (box["w"], box["h"]) == (32, 24) and entry["sourceSize"] == {"w": 32, "h": 24}
        colour = dict(frames)[name]
        centre = image.getpixel((box["x"] + 16, box["y"] + 12))
        assert centre == Image.open(io.BytesIO(colour)).getpixel((0, 0))


def test_frame_bigger_than_max_size_is_named_in_the_error() -> None:
    with pytest.raises(SheetError, match=r"256x256 sheet.*icon-huge\.png \(300x10\)") as info:
        pack([("ok", 10, 10), ("icon-huge.png", 300, 10)], SheetOptions(max_size=256))
    assert isinstance(info.value, PipelineError)
    # Padding counts: 252 + 2 * 2 fits exactly, 253 does not.
    pack([("edge", 252, 252)], SheetOptions(max_size=256))
    with pytest.raises(SheetError, match="too big"):
        pack([("edge", 253, 10)], SheetOptions(max_size=256))


def test_too_many_frames_for_max_size() -> None:
    sizes = [(f"f{i}", 60, 60) for i in range(20)]
    with pytest.raises(SheetError, match=r"cannot pack 20 frames .* into a 256x256 sheet"):
        pack(sizes, SheetOptions(max_size=256))
    with pytest.raises(SheetError, match="128x128 sheet"):
        pack(sizes[:10], SheetOptions(max_size=200, power_of_two=True))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SheetOptions(format="jpeg"), "png or webp"),
        (SheetOptions(format="gif"), "png or webp"),
        (SheetOptions(padding=-1), "padding"),
        (SheetOptions(max_size=0), "max_size"),
        (SheetOptions(frame_size=(0, 5)), "frame_size"),
    ],
)
def test_bad_options_are_rejected(options: SheetOptions, message: str) -> None:
    with pytest.raises(SheetError, match=message):
        render_sheet([("a", solid(4, 4, (0, 0, 0, 255)))], options)


def test_bad_frames_are_rejected() -> None:
    with pytest.raises(SheetError, match="at least one frame"):
        pack([], SheetOptions())
    with pytest.raises(SheetError, match="duplicate frame name 'a'"):
        pack([("a", 1, 1), ("a", 2, 2)], SheetOptions())
    with pytest.raises(SheetError, match="positive integer size"):
        pack([("a", 0, 1)], SheetOptions())
    with pytest.raises(SheetError, match=r"frame 'broken\.png': cannot decode"):
        render_sheet([("broken.png", b"not an image")], SheetOptions())


@settings(max_examples=60, deadline=None)
@given(
    sides=st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1, max_size=40),
    padding=st.integers(0, 5),
    pow2=st.booleans(),
)
def test_packing_property(sides: list[tuple[int, int]], padding: int, pow2: bool) -> None:
    sizes = [(f"frame-{i}", w, h) for i, (w, h) in enumerate(sides)]
    options = SheetOptions(padding=padding, power_of_two=pow2)
    width, height, frames = pack(sizes, options)
    assert width <= options.max_size and height <= options.max_size
    assert [(f.name, f.w, f.h) for f in frames] == sizes
    assert_layout(width, height, frames, padding)
    if pow2:
        assert is_pow2(width) and is_pow2(height)
    used = sum((w + padding) * (h + padding) for w, h in sides)
    assert width * height >= used
    assert pack(sizes, options) == (width, height, frames)
