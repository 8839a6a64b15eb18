"""Two limits of SVG and GIF outputs, end to end on the fake API: an answer over the
image cap is asked for once (the model would draw as much again, and the answer was
billed), and an SVG or GIF named as an edit input is a plan-time error at file:line
(the API edits raster images only)."""

from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

from pipeline.jobs import ProviderFailure
from pipeline.runner.retry import RetryPolicy

SVG_ICON = """\
assets:
  - id: shield
    prompt: "A shield icon"
    model: gpt-image-2.6-flare
    format: svg
    size: 1024x1024
"""


def gif_bytes() -> bytes:
    """A real two-frame GIF (64x64)."""
    frames = [Image.new("RGB", (64, 64), color) for color in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


SVG_FILE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<rect width="32" height="32"/></svg>'
)


def test_an_svg_over_the_image_cap_is_asked_for_once_and_billed_once(project, run, api):
    """The fake's 50 MB SVG is refused unread; the job fails after exactly one request
    (no retry line), so it is paid for once, not twice."""
    api.svg_hostile = "huge"
    project.gen({"specs/s.yaml": SVG_ICON})
    result = run("build", "--provider", "openai")
    assert result.code == 1, result.err
    assert len(api.requests) == 1
    assert api.billed_images == 1
    text = result.out + result.err
    assert "retry" not in text
    assert "more than the 55,924,056 that 40 MiB take; it was not decoded" in text
    doc = json.loads((project / "output/manifest.json").read_text("utf-8"))
    (entry,) = [e for e in doc["entries"] if e["job"] == "s/shield"]
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "bad_response"
    assert not (project / "output/s/shield.svg").exists()


def test_the_policy_retries_a_malformed_answer_once_and_one_over_a_cap_never() -> None:
    """What may have been mangled in transit keeps its one retry; an answer over a cap
    has none."""
    rng = random.Random(0)
    policy = RetryPolicy()
    mangled = ProviderFailure("bad_response", "the image in the response is not base64")
    assert policy.delay(mangled, 1, rng) is not None
    assert policy.delay(mangled, 2, rng) is None
    over = ProviderFailure("bad_response", "the image is too large", too_large=True)
    assert over.retryable is False
    assert policy.delay(over, 1, rng) is None


EDIT = """\
assets:
  - id: badge
    prompt: "the same badge in gold"
    model: gpt-image-2.6-flare
    size: 1024x1024
    edit: {{images: [{ref}]}}
{more}"""


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("art/logo.svg", SVG_FILE, "'art/logo.svg' is an SVG"),
        ("art/LOGO.SVG", SVG_FILE, "'art/LOGO.SVG' is an SVG"),
        ("art/walk.gif", gif_bytes(), "'art/walk.gif' is a GIF"),
    ],
)
def test_an_svg_or_gif_file_as_an_edit_input_is_a_plan_time_error(
    project, run, api, name, data, said
):
    """Named at file:line:col with what the API takes and what to do; no request goes out."""
    project.gen(
        {"specs/s.yaml": EDIT.format(ref=f"{{file: {name}}}", more=""), f"specs/{name}": data}
    )
    result = run("plan", "--provider", "openai")
    assert result.code == 2
    assert (
        f"error: specs/s.yaml:6:21: {said}; the API edits only raster images (png, webp or jpeg)"
    ) in result.err
    assert "hint: export it as PNG and name that file" in result.err
    assert ("one frame of the animation" in result.err) == name.endswith(".gif")
    assert "Traceback" not in result.err
    assert api.requests == []


@pytest.mark.parametrize("fmt", ["svg", "gif"])
def test_an_svg_or_gif_asset_as_an_edit_input_is_a_plan_time_error(project, run, api, fmt):
    """An edit naming another asset whose format is svg or gif is refused the same way,
    at the line that names it."""
    icon = (
        "  - id: icon\n"
        '    prompt: "an icon"\n'
        "    model: gpt-image-2.6-flare\n"
        f"    format: {fmt}\n"
        "    size: 1024x1024\n"
    )
    project.gen({"specs/s.yaml": EDIT.format(ref="icon", more=icon)})
    result = run("plan", "--provider", "openai")
    assert result.code == 2
    assert (
        f"error: specs/s.yaml:6:21: edit input 'icon' is a format: {fmt} asset; "
        "the API edits only raster images (png, webp or jpeg)"
    ) in result.err
    assert api.requests == []
