"""Image operations: the registry, each built-in operation on real pixels, the memo of
expensive ones, and what enters a key."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Annotated, ClassVar

import pytest
from PIL import Image, ImageDraw
from pydantic import Field

from pipeline import ops
from pipeline.jobs import Plan, RenditionOp, delivery_request, rendition_request
from pipeline.jobs.codec import decode_plan, encode_plan
from pipeline.jobs.job import OpCall, RenditionJob
from pipeline.ops.registry import BUILTIN, with_plugins
from pipeline.postprocess import decode, render_rendition
from pipeline.postprocess.fitting import deliver_operated
from pipeline.store import LocalMemo


def picture(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    """Four flat quadrants (red, green, blue, white): where each pixel came from shows."""
    w, h = size
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, w // 2 - 1, h // 2 - 1], fill=(255, 0, 0))
    draw.rectangle([w // 2, 0, w - 1, h // 2 - 1], fill=(0, 255, 0))
    draw.rectangle([0, h // 2, w // 2 - 1, h - 1], fill=(0, 0, 255))
    return image.convert(mode)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def colors(image: Image.Image) -> set[object]:
    """Every distinct pixel value of ``image``."""
    return {color for _, color in image.getcolors(image.width * image.height) or []}


def call(name: str, **params: object) -> OpCall:
    """A call as the planner makes it: parameters validated, defaults filled in."""
    op = ops.get(name)
    assert op is not None
    return OpCall(name, op.Params.model_validate(params).model_dump(mode="json"), op.version)


def test_the_builtin_operations_are_registered_by_name() -> None:
    """fit, resize, crop, pad and flip are there with no plugin, each at version 1."""
    assert {"fit", "resize", "crop", "pad", "flip"} <= set(ops.names())
    assert all(ops.get(n).version == 1 for n in ("fit", "resize", "crop", "pad", "flip"))


def test_a_broken_plugin_a_non_operation_and_a_reused_name_are_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each bad entry point is one warning and is left out; the good one is in."""
    points = [
        EntryPoint("gone", "assetpipe_no_such_module_xyz:OP", "assetpipe.ops"),
        EntryPoint("number", "pipeline.ops.base:MAX_SIDE", "assetpipe.ops"),
        EntryPoint("again", "pipeline.ops.resize:Resize", "assetpipe.ops"),
        EntryPoint("good", "test_ops:Invert", "assetpipe.ops"),
    ]
    with caplog.at_level(logging.WARNING, logger="assetpipe.ops"):
        found = with_plugins(BUILTIN, points)
    assert sorted(found) == sorted([*(op.name for op in BUILTIN), "invert"])
    assert found["resize"] is next(op for op in BUILTIN if op.name == "resize")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "assetpipe_no_such_module_xyz:OP failed to load" in messages[0]
    assert "pipeline.ops.base:MAX_SIDE is not an Operation; skipped" in messages[1]
    assert "pipeline.ops.resize:Resize reuses the name 'resize'; skipped" in messages[2]


class InvertParams(ops.OpParams):
    """No parameters."""


class Invert(ops.Operation[InvertParams]):
    """A plain test operation (also an entry point target above)."""

    name = "invert"
    Params = InvertParams

    def apply(self, image: Image.Image, params: InvertParams) -> Image.Image:
        return Image.eval(image.convert("RGB"), lambda v: 255 - v)


def test_resize_makes_exactly_the_size_with_the_filter_asked_for() -> None:
    """nearest keeps only the source's colors (hard edges); the size is exact."""
    out = ops.apply_ops(picture(), [call("resize", size="80x90", resample="nearest")])
    assert out.size == (80, 90)
    assert colors(out) == {(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)}
    smooth = ops.apply_ops(picture(), [call("resize", size="80x90")])
    assert len(colors(smooth)) > 4  # lanczos blends at the edges


def test_crop_keeps_the_pixels_inside_the_box() -> None:
    """[20, 0, 40, 15] of the quadrants is the green one, whole."""
    out = ops.apply_ops(picture(), [call("crop", box=[20, 0, 40, 15])])
    assert out.size == (20, 15)
    assert colors(out) == {(0, 255, 0)}


def test_pad_places_the_image_at_its_anchor_on_the_color() -> None:
    """bottom-right: the image's top-left pixel lands at (size - image) and the rest of
    the canvas is the color, opaque on an RGB image."""
    out = ops.apply_ops(
        picture(), [call("pad", size="50x40", color="#102030", anchor="bottom-right")]
    )
    assert (out.size, out.mode) == ((50, 40), "RGB")
    assert out.getpixel((10, 10)) == (255, 0, 0)
    assert out.getpixel((0, 0)) == (0x10, 0x20, 0x30)
    clear = ops.apply_ops(picture(), [call("pad", size="42x30")])
    assert clear.mode == "RGBA"
    assert clear.getpixel((0, 0)) == (0, 0, 0, 0)
    assert clear.getpixel((1, 0)) == (255, 0, 0, 255)


def test_flip_mirrors_in_each_direction() -> None:
    """horizontal swaps left and right, vertical top and bottom, both does both."""
    src = picture()
    h = ops.apply_ops(src, [call("flip")])
    v = ops.apply_ops(src, [call("flip", direction="vertical")])
    both = ops.apply_ops(src, [call("flip", direction="both")])
    assert h.getpixel((0, 0)) == (0, 255, 0)
    assert v.getpixel((0, 0)) == (0, 0, 255)
    assert both.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["cover", "contain", "stretch"])
def test_the_fit_operation_makes_the_pixels_a_rendition_makes(mode: str) -> None:
    """A rendition is fitted by the registered fit: the operation in a spec's list gives
    the very pixels of a rendition with that fit (png: transparent padding)."""
    src = picture((60, 20), "RGBA")
    rendition = decode(render_rendition(png(src), RenditionOp(30, 30, mode, "png", None)))  # type: ignore[arg-type]
    listed = ops.apply_ops(src, [call("fit", size="30x30", mode=mode)])
    assert listed.tobytes() == rendition.convert("RGBA").tobytes()


def test_operations_run_in_order_after_the_rendition_fit() -> None:
    """A rendition's ops run on the fitted image: crop after a 32x32 cover."""
    op = RenditionOp(32, 32, "cover", "png", None, ops=(call("crop", box=[0, 0, 12, 8]),))
    out = decode(render_rendition(png(picture((64, 64))), op))
    assert out.size == (12, 8)
    assert colors(out.convert("RGB")) == {(255, 0, 0)}


def test_an_operation_past_the_image_is_an_error_not_a_crash() -> None:
    """A crop box outside the image it is given fails with a message, no traceback."""
    with pytest.raises(ops.OpError, match=r"crop box \[0, 0, 99, 10\] reaches past the 40x30"):
        ops.apply_ops(picture(), [call("crop", box=[0, 0, 99, 10])])


def test_a_plan_naming_another_version_or_a_missing_operation_is_refused() -> None:
    """The runner finds each operation again: a stale version or a removed plugin is a
    clear error, never another operation's pixels under the old key."""
    with pytest.raises(ops.OpError, match=r"'flip' is version 1, but the plan .* version 7"):
        ops.apply_ops(picture(), [OpCall("flip", {"direction": "vertical"}, 7)])
    with pytest.raises(ops.OpError, match="'sepia' is not installed"):
        ops.apply_ops(picture(), [OpCall("sepia", {}, 1)])


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("pad", {"size": "100000x100000"}, "each side is 1 to 8192 pixels"),
        ("resize", {"size": "9000x10"}, "each side is 1 to 8192 pixels"),
        ("crop", {"box": [0, 0, 10, 90000]}, "less than or equal to 8192"),
        ("crop", {"box": [10, 0, 10, 5]}, "is empty"),
        ("pad", {"size": "10x10", "colour": "#fff"}, "Extra inputs are not permitted"),
        ("pad", {"size": "10x10", "color": "red"}, "'red' is not a color"),
    ],
)
def test_parameters_are_bounded_and_closed(name: str, params: dict, message: str) -> None:
    """No operation can be asked for a 100k-pixel side, and unknown keys are refused."""
    op = ops.get(name)
    assert op is not None
    with pytest.raises(ValueError, match=message):
        op.Params.model_validate(params)


class Counting(ops.Operation["CountingParams"]):
    """An expensive operation that counts its runs (a real operation, registered below)."""

    name = "slow_invert"
    expensive = True
    runs: ClassVar[list[str]] = []

    def apply(self, image: Image.Image, params: CountingParams) -> Image.Image:
        Counting.runs.append(params.label)
        return Image.eval(image, lambda v: 255 - v)


class CountingParams(ops.OpParams):
    label: Annotated[str, Field(max_length=8)] = "a"


Counting.Params = CountingParams


@pytest.fixture
def counting() -> Iterator[dict[str, ops.Operation]]:
    Counting.runs.clear()
    yield {"slow_invert": Counting()}


def test_an_expensive_operation_runs_once_per_input_pixels_and_call(
    tmp_path: Path, counting: dict[str, ops.Operation]
) -> None:
    """Its result is memoised by (input pixels, name, parameters, version): the same
    input again is read back; another input or other parameters run it again."""
    memo = LocalMemo(tmp_path / "memo")
    first = ops.apply_ops(picture(), [OpCall("slow_invert", {"label": "a"}, 1)], memo, counting)
    again = ops.apply_ops(picture(), [OpCall("slow_invert", {"label": "a"}, 1)], memo, counting)
    assert Counting.runs == ["a"]
    assert again.tobytes() == first.tobytes()
    ops.apply_ops(picture((41, 30)), [OpCall("slow_invert", {"label": "a"}, 1)], memo, counting)
    ops.apply_ops(picture(), [OpCall("slow_invert", {"label": "b"}, 1)], memo, counting)
    assert Counting.runs == ["a", "a", "b"]
    assert len(list((tmp_path / "memo").rglob("*.op.png"))) == 3


def test_a_damaged_memoised_result_is_made_again(
    tmp_path: Path, counting: dict[str, ops.Operation]
) -> None:
    """The memo is untrusted: a planted non-PNG under the digest is a miss, not pixels."""
    memo = LocalMemo(tmp_path / "memo")
    calls = [OpCall("slow_invert", {"label": "a"}, 1)]
    ops.apply_ops(picture(), calls, memo, counting)
    (kept,) = (tmp_path / "memo").rglob("*.op.png")
    kept.write_bytes(b"GIF89a not a png at all")
    out = ops.apply_ops(picture(), calls, memo, counting)
    assert Counting.runs == ["a", "a"]
    assert out.getpixel((0, 0)) == (0, 255, 255)


def test_keys_without_operations_are_the_keys_they_always_were() -> None:
    """No ``ops`` key enters a payload without operations (test_hashing pins the
    literals); with them, each name, parameter and version changes the key."""
    plain = RenditionOp(64, 64, "cover", "png", None)
    assert "ops" not in rendition_request("0" * 64, plain).payload
    assert "ops" not in delivery_request("0" * 64, (64, 64), "png", None).payload
    keys = {
        rendition_request("0" * 64, RenditionOp(64, 64, "cover", "png", None, ops=calls)).key
        for calls in [
            (),
            (call("flip"),),
            (call("flip", direction="vertical"),),
            (OpCall("flip", {"direction": "horizontal"}, 2),),
            (call("flip"), call("flip")),
        ]
    }
    assert len(keys) == 5
    with_ops = delivery_request("0" * 64, (64, 64), "png", None, (call("flip"),))
    assert with_ops.payload["ops"] == [
        {"op": "flip", "params": {"direction": "horizontal"}, "version": 1}
    ]


def test_a_stored_plan_keeps_the_operations_of_its_jobs() -> None:
    """The plan codec round-trips a rendition's operations."""
    job = RenditionJob(
        id="a/b@8x8",
        collection="a",
        asset="b",
        variant=1,
        output_path="a/b@8x8.png",
        source="specs/a.yaml:1",
        size=(8, 8),
        depends_on=(),
        op=RenditionOp(8, 8, "cover", "png", None, ops=(call("pad", size="8x8"),)),
        model="m",
        provider="preview",
        prompt="p",
    )
    plan = Plan(jobs=(job,))
    assert decode_plan(encode_plan(plan)) == plan


def test_an_asset_file_with_operations_is_encoded_once_from_the_api_pixels() -> None:
    """Cut to size, operated, then one encode: the same bytes every time."""
    api = png(picture((80, 60)))
    calls = [call("flip"), call("pad", size="50x40", color="#000")]
    made = deliver_operated(api, 40, 30, "png", None, calls)
    assert made == deliver_operated(api, 40, 30, "png", None, calls)
    image = decode(made)
    assert image.size == (50, 40)
    assert image.convert("RGB").getpixel((5, 5)) == (0, 255, 0)  # mirrored: green left
