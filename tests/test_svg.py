"""``format: svg`` end to end on the fake API: the SVG is sanitized (every hostile
construct the fake plants is removed or the answer refused), delivered, drawn by resvg
for its checks and raster renditions, and its SVG author's tokens are priced."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from pipeline.postprocess import svg

SPEC = """\
assets:
  - id: {id}
    prompt: "A shield icon"
    model: gpt-image-2.6-flare
    format: svg
    size: 1024x1024
{extra}
"""

RENDITIONS = """\
    renditions:
      - {size: 64x64, format: png}
      - {size: 128x128}
"""


def built(project) -> dict:
    doc = json.loads((project / "output/manifest.json").read_text())
    return {e["path"]: e for e in doc["entries"]}


def drawn(data: bytes) -> Image.Image:
    """The delivered SVG as resvg draws it."""
    return svg.rasterize(data)


def test_a_plain_svg_is_delivered_sanitized_and_drawn(project, run, api) -> None:
    """The request says output_format=svg; the delivered file is SVG that draws the
    fake's icon (its color at the center ring, white in the middle)."""
    project.gen({"specs/s.yaml": SPEC.format(id="shield", extra="")})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    (request,) = [r for r in api.requests if r.endpoint == "generations"]
    assert request.fields["output_format"] == "svg"
    assert "output_compression" not in request.fields
    data = (project / "output/s/shield.svg").read_bytes()
    assert data.startswith(b"<svg")
    image = drawn(data)
    assert image.size == (1024, 1024)
    assert image.getpixel((512, 512)) == (255, 255, 255, 255)
    assert image.getpixel((5, 5))[3] == 0
    assert image.getpixel((200, 512))[3] == 255
    entry = built(project)["s/shield.svg"]
    assert {c["name"]: c["ok"] for c in entry["checks"]}["size"] is True


@pytest.mark.parametrize(
    ("hostile", "gone", "removed"),
    [
        ("script", b"<script", "<script> x1"),
        ("onload", b"onload", "event handler attribute x1"),
        ("external_href", b"evil.example", "external href x1"),
    ],
)
def test_hostile_markup_is_removed_said_once_and_the_icon_still_draws(
    project, run, api, hostile: str, gone: bytes, removed: str
) -> None:
    """Each planted construct is gone from the delivered file, the build warns once,
    the manifest entry notes it, and the sanitized SVG still draws the icon."""
    api.svg_hostile = hostile
    project.gen({"specs/s.yaml": SPEC.format(id="shield", extra="")})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    data = (project / "output/s/shield.svg").read_bytes()
    assert gone not in data
    assert b"file:" not in data
    said = (result.out + result.err).count("warning: s/shield: the SVG was sanitized")
    assert said == 1
    assert removed in (result.out + result.err)
    entry = built(project)["s/shield.svg"]
    assert any(removed in json.dumps(c) for c in entry["checks"])
    assert drawn(data).getpixel((512, 512)) == (255, 255, 255, 255)


@pytest.mark.parametrize("hostile", ["billion_laughs", "huge"])
def test_an_entity_bomb_or_a_50_mb_body_is_refused_and_nothing_is_delivered(
    project, run, api, hostile: str
) -> None:
    """An SVG with entity definitions is refused unparsed, a 50 MB body unread: the job
    fails as a bad response and no file is written."""
    api.svg_hostile = hostile
    project.gen({"specs/s.yaml": SPEC.format(id="shield", extra="")})
    result = run("build", "--provider", "openai")
    assert result.code != 0
    assert not (project / "output/s/shield.svg").exists()
    text = result.out + result.err
    assert ("DTD" in text) if hostile == "billion_laughs" else ("MiB" in text or "MB" in text)


def test_raster_and_svg_renditions_of_an_svg(project, run, api) -> None:
    """A png rendition is drawn at its own size (sharp, not a shrunk raster); an svg
    rendition is the same sanitized drawing with its root at the new size."""
    extra = RENDITIONS + "      - {size: 256x256, format: svg}\n"
    project.gen({"specs/s.yaml": SPEC.format(id="shield", extra=extra)})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    small = Image.open(io.BytesIO((project / "output/s/shield@64x64.png").read_bytes()))
    assert small.format == "PNG"
    assert small.size == (64, 64)
    assert small.convert("RGBA").getpixel((32, 32)) == (255, 255, 255, 255)
    also = (project / "output/s/shield@256x256.svg").read_bytes()
    assert svg.intrinsic_size(also) == (256, 256)
    assert drawn(also).getpixel((128, 128)) == (255, 255, 255, 255)
    entries = built(project)
    for path in ("s/shield@64x64.png", "s/shield@128x128.svg", "s/shield@256x256.svg"):
        assert all(c["ok"] for c in entries[path]["checks"] if c["name"] == "size"), path


def test_svg_usage_is_recorded_and_priced(project, run, api) -> None:
    """The fake reports svg_usage apart from usage: the manifest records the author's
    tokens, and the cost counts them."""
    project.gen({"specs/s.yaml": SPEC.format(id="shield", extra="")})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    entry = built(project)["s/shield.svg"]
    usage = entry["usage"]
    assert usage["svg_output_tokens"] == 2400
    assert usage["svg_input_tokens"] == 900 + max(1, len("A shield icon") // 4)
