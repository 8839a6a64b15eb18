"""``ops:`` in a build: what each list touches, what a change makes again, and what the
manifest records; mistakes in a list are spec errors at their line."""

from __future__ import annotations

import json
from typing import Any

from PIL import Image, ImageOps

SPEC = """
    assets:
      - id: hero
        prompt: "A hero"
        size: 256x256
        quality: low
        {ops}
        renditions:
          - {{size: 64x64}}
          - size: 32x32
            ops: [{{op: pad, size: 40x40, color: "#00FF00"}}]
"""


def spec(ops: str = "") -> str:
    return SPEC.format(ops=ops)


def entries(project) -> dict[str, dict[str, Any]]:
    doc = json.loads((project / "output/manifest.json").read_text())
    return {e["path"]: e for e in doc["entries"]}


def statuses(project) -> dict[str, str]:
    return {path: e["status"] for path, e in entries(project).items()}


def pixels(project, path: str) -> Image.Image:
    with Image.open(project / "output" / path) as image:
        return image.convert("RGBA")


def test_asset_ops_apply_to_the_delivered_file_from_the_cached_image(project, run):
    """Adding ``ops:`` to an asset makes its file again from the cached API image (no new
    image: ``cached``): exactly the operated pixels of the file it had, and its renditions
    are made from the new file."""
    project.gen({"specs/set.yaml": spec()})
    assert run("build", "--provider", "preview").code == 0
    plain = pixels(project, "set/hero.png")
    project.gen({"specs/set.yaml": spec("ops: [{op: flip}, {op: pad, size: 300x260}]")})
    result = run("build", "--provider", "preview")
    assert result.code == 0, result.err
    assert statuses(project) == {
        "set/hero.png": "cached",
        "set/hero@64x64.png": "generated",
        "set/hero@32x32.png": "generated",
    }
    expected = Image.new("RGBA", (300, 260), (0, 0, 0, 0))
    expected.paste(ImageOps.mirror(plain), (22, 2))
    assert pixels(project, "set/hero.png").tobytes() == expected.tobytes()
    hero = entries(project)["set/hero.png"]
    assert (hero["width"], hero["height"]) == (300, 260)
    assert next(c for c in hero["checks"] if c["name"] == "size")["ok"] is True
    assert hero["ops"] == [
        {"op": "flip", "params": {"direction": "horizontal"}, "version": 1},
        {
            "op": "pad",
            "params": {"size": "300x260", "color": "#00000000", "anchor": "center"},
            "version": 1,
        },
    ]


def test_changing_an_asset_op_remakes_the_asset_and_its_renditions_only(project, run):
    """One parameter of an asset's list changes: its file and renditions are made again
    from the cache; a second build has nothing to do."""
    project.gen({"specs/set.yaml": spec("ops: [{op: flip}]")})
    assert run("build", "--provider", "preview").code == 0
    project.gen({"specs/set.yaml": spec("ops: [{op: flip, direction: vertical}]")})
    planned = run("plan", "--provider", "preview")
    assert "3 jobs (1 cached, 2 render)" in planned.out  # no image to generate
    assert run("build", "--provider", "preview").code == 0
    assert set(statuses(project).values()) == {"cached", "generated"}
    assert statuses(project)["set/hero.png"] == "cached"
    again = run("build", "--provider", "preview")
    assert set(statuses(project).values()) == {"up-to-date"}, again.out


def test_changing_a_rendition_op_remakes_that_rendition_only(project, run):
    """A rendition's ``ops:`` are part of its key alone: the asset and the other
    rendition stay up to date, and the padding is the new color."""
    project.gen({"specs/set.yaml": spec()})
    assert run("build", "--provider", "preview").code == 0
    project.gen({"specs/set.yaml": spec().replace("#00FF00", "#0000FF")})
    assert run("build", "--provider", "preview").code == 0
    assert statuses(project) == {
        "set/hero.png": "up-to-date",
        "set/hero@64x64.png": "up-to-date",
        "set/hero@32x32.png": "generated",
    }
    padded = pixels(project, "set/hero@32x32.png")
    assert padded.size == (40, 40)
    assert padded.getpixel((0, 0)) == (0, 0, 255, 255)
    rendition = entries(project)["set/hero@32x32.png"]
    assert (rendition["width"], rendition["height"]) == (40, 40)
    assert rendition["ops"][0]["params"]["color"] == "#0000FFFF"


def test_files_without_ops_are_recorded_as_they_always_were(project, run):
    """No ``ops`` key in the manifest entry of a file that had none."""
    project.gen({"specs/set.yaml": spec()})
    assert run("build", "--provider", "preview").code == 0
    found = entries(project)
    assert "ops" not in found["set/hero.png"]
    assert "ops" not in found["set/hero@64x64.png"]
    assert "ops" in found["set/hero@32x32.png"]


def test_an_operated_file_stays_up_to_date_when_the_cache_is_cleared(project, run):
    """The manifest's key of an operated file is known without the cache, so clearing it
    costs nothing while the files are intact."""
    project.gen({"specs/set.yaml": spec("ops: [{op: flip}]")})
    assert run("build", "--provider", "preview").code == 0
    assert run("cache", "clear", "--yes").code == 0
    assert run("build", "--provider", "preview").code == 0
    assert set(statuses(project).values()) == {"up-to-date"}


def test_an_unknown_operation_is_located_with_the_closest_name_and_the_known_ones(project, run):
    """``op: flipp`` is an error at its line and column, not a traceback."""
    project.gen({"specs/set.yaml": spec("ops: [{op: flipp}]")})
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert "error: specs/set.yaml:6:16: unknown operation 'flipp'" in result.err
    assert (
        "hint: did you mean 'flip'? (known operations: canvas, chroma_key, crop, fit, flip, "
        "pad, pixelate, quantize, resize, trim)" in result.err
    )


def test_bad_parameters_are_located_at_their_key(project, run):
    """An unknown key, a value out of range and a crop past the image each point at the
    parameter, with what would be right."""
    project.gen(
        {
            "specs/set.yaml": spec(
                "ops: [{op: pad, size: 300x300, colour: red}, {op: resize, size: 9999x10}]"
            ),
        }
    )
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert "specs/set.yaml:6:36: unknown key 'colour'" in result.err
    assert "hint: did you mean 'color'?" in result.err
    assert "specs/set.yaml:6:69: 'size': each side is 1 to 8192 pixels, got 9999x10" in (result.err)
    project.gen({"specs/set.yaml": spec("ops: [{op: crop, box: [0, 0, 300, 10]}]")})
    result = run("plan", "--provider", "preview")
    assert "specs/set.yaml:6:11: the crop box [0, 0, 300, 10] reaches past the 256x256" in (
        result.err
    )


def test_ops_from_defaults_apply_to_each_asset_and_are_located_there(project, run):
    """``defaults: {ops: ...}`` is the list of every asset without its own; a mistake in
    it is reported once, at the defaults."""
    project.gen(
        {
            "specs/set.yaml": """
                defaults:
                  ops: [{op: flip, direction: sideways}]
                assets:
                  - {id: a, prompt: "A", size: 256x256, quality: low}
                  - {id: b, prompt: "B", size: 256x256, quality: low}
            """,
        }
    )
    result = run("plan", "--provider", "preview")
    assert result.code == 2
    assert result.err.count("'direction' cannot be 'sideways'") == 1
    assert "error: specs/set.yaml:2:8:" in result.err
    project.gen(
        {"specs/set.yaml": (project / "specs/set.yaml").read_text().replace("sideways", "vertical")}
    )
    assert run("build", "--provider", "preview").code == 0
    assert {p: e["ops"][0]["params"] for p, e in entries(project).items()} == {
        "set/a.png": {"direction": "vertical"},
        "set/b.png": {"direction": "vertical"},
    }
