"""Delivered files: exact size, mode and format; checks, provenance and the gallery."""

from __future__ import annotations

import json

import pytest
from PIL import Image

SPEC = """
    brand:
      name: Acme
      colors: {primary: "#E4572E", night: "#2B2D42"}
    assets:
      - id: badge
        prompt: "A badge"
        size: 512x512
        background: transparent
        quality: low
        keep_original: true
        renditions:
          - {size: 128x128}
          - {size: 64x32, fit: contain, format: webp}
          - {size: 100x40, fit: stretch, format: jpeg, compression: 80}
      - id: poster
        prompt: "A poster"
        size: 1024x1024
        format: png
        quality: low
        variants: 2
      - id: banner
        prompt: "A banner"
        size: 1200x628
        format: jpeg
        compression: 85
        quality: low
"""

EXPECTED = {
    # path: (size, Pillow mode, Pillow format)
    "shop/badge.png": ((512, 512), "RGBA", "PNG"),
    "shop/badge@128x128.png": ((128, 128), "RGBA", "PNG"),
    "shop/badge@64x32.webp": ((64, 32), "RGBA", "WEBP"),
    "shop/badge@100x40.jpg": ((100, 40), "RGB", "JPEG"),
    "shop/poster.png": ((1024, 1024), "RGB", "PNG"),
    "shop/poster.v2.png": ((1024, 1024), "RGB", "PNG"),
    "shop/banner.jpg": ((1200, 628), "RGB", "JPEG"),
}


def entries(project) -> dict[str, dict]:
    doc = json.loads((project / "output/manifest.json").read_text())
    return {e["path"]: e for e in doc["entries"]}


@pytest.mark.parametrize("provider", ["openai", "preview"])
def test_every_delivered_file_has_its_exact_size_mode_and_format(project, run, api, provider):
    """Each file opens with the exact pixels, mode and format the spec asked for."""
    project.gen({"specs/shop.yaml": SPEC})
    result = run("build", "--provider", provider)
    assert result.code == 0, result.err
    got = entries(project)
    assert set(EXPECTED) <= set(got)
    for path, (size, mode, fmt) in EXPECTED.items():
        with Image.open(project / "output" / path) as image:
            assert (image.size, image.mode, image.format) == (size, mode, fmt), path
        assert (got[path]["width"], got[path]["height"]) == size


def test_checks_are_recorded_for_every_file(project, run, api):
    """size on all; alpha where transparency was asked; palette where a brand has colors."""
    project.gen({"specs/shop.yaml": SPEC})
    assert run("build", "--provider", "openai").code == 0
    got = entries(project)
    names = {path: [c["name"] for c in e["checks"]] for path, e in got.items()}
    assert names["shop/badge.png"][:2] == ["size", "alpha"]
    assert "alpha" not in names["shop/poster.png"]
    assert "alpha" not in names["shop/badge@100x40.jpg"]
    assert names["shop/poster.png"][-1] == "distinct"
    size = got["shop/banner.jpg"]["checks"][0]
    assert size == {"name": "size", "ok": True, "detail": "1200x628 as asked", "value": None}
    alpha = got["shop/badge.png"]["checks"][1]
    assert alpha["ok"] is True


def test_provenance_marks_reencoded_files_and_c2pa(project, run, api):
    """An untouched API file keeps its C2PA store; a cropped one is re-encoded and loses it,
    and keep_original keeps the API's bytes beside it."""
    project.gen({"specs/shop.yaml": SPEC})
    assert run("build", "--provider", "openai").code == 0
    got = entries(project)
    poster = got["shop/poster.png"]["provenance"]
    assert poster == {
        "reencoded": False,
        "c2pa": True,
        "c2pa_in_original": True,
        "original_path": None,
    }
    badge = got["shop/badge.png"]["provenance"]
    assert badge["reencoded"] is True
    assert badge["c2pa"] is False
    assert badge["c2pa_in_original"] is True
    assert badge["original_path"] == "shop/badge.original.png"
    with Image.open(project / "output/shop/badge.original.png") as original:
        assert original.size == (816, 816)
    assert got["shop/badge@128x128.png"]["provenance"]["reencoded"] is True


def test_strict_checks_turns_a_failed_check_into_exit_1(project, run, api):
    """A far-off brand palette fails the palette check: exit 0 normally, 1 with --strict-checks."""
    far = SPEC.replace('primary: "#E4572E", night: "#2B2D42"', 'primary: "#00FF00"')
    project.gen({"specs/shop.yaml": far})
    result = run("build", "--provider", "openai")
    assert result.code == 0
    assert "quality checks failed" in result.err
    assert run("build", "--provider", "openai", "--strict-checks").code == 1


def test_gallery_lists_every_entry(project, run, api):
    """output/index.html has one card per manifest entry and a thumbnail for each file."""
    project.gen({"specs/shop.yaml": SPEC})
    assert run("build", "--provider", "openai").code == 0
    html = (project / "output/index.html").read_text()
    count = len(entries(project))
    assert f'data-entries="{count}"' in html
    assert html.count("data-job=") == count
    assert len(list((project / "output/.gallery").glob("*.webp"))) == count


SHEET_SPEC = """
    assets:
      - id: "gem-{{ c }}"
        prompt: "A {{ c }} gem"
        matrix: {c: [red, green, blue, gold, onyx]}
        size: 96x64
        background: transparent
        quality: low
        tags: [gems]
      - id: "coin-{{ n }}"
        prompt: "Coin {{ n }}"
        matrix: {n: [1, 2, 3]}
        size: 48x48
        quality: low
    sheets:
      - id: gems-atlas
        tags: [gems]
        padding: 3
        power_of_two: true
      - id: coins-atlas
        assets: ["coin-*"]
        frame_size: 32x32
        format: webp
"""


def test_sprite_sheet_frames_match_their_source_pixels(project, run, api):
    """Every frame in the TexturePacker JSON crops, from the sheet, exactly the pixels of
    its source file; the sheet is power-of-two and listed in the manifest with its atlas."""
    project.gen({"specs/loot.yaml": SHEET_SPEC})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    out = project / "output/loot"
    atlas = json.loads((out / "gems-atlas.json").read_text())
    assert atlas["meta"]["image"] == "gems-atlas.png"
    assert sorted(atlas["frames"]) == [
        f"gem-{c}.png" for c in sorted(["red", "green", "blue", "gold", "onyx"])
    ]
    with Image.open(out / "gems-atlas.png") as packed:
        sheet = packed.convert("RGBA")
        w, h = sheet.size
        assert (w & (w - 1), h & (h - 1)) == (0, 0)
        assert [w, h] == [atlas["meta"]["size"]["w"], atlas["meta"]["size"]["h"]]
        for name, frame in atlas["frames"].items():
            f = frame["frame"]
            crop = sheet.crop((f["x"], f["y"], f["x"] + f["w"], f["y"] + f["h"]))
            with Image.open(out / name) as source:
                assert crop.tobytes() == source.convert("RGBA").tobytes(), name
    entry = entries(project)["loot/gems-atlas.png"]
    assert entry["kind"] == "sheet"
    assert (entry["width"], entry["height"]) == (w, h)
    assert entry["companions"][0]["path"] == "loot/gems-atlas.json"
    coins = json.loads((out / "coins-atlas.json").read_text())
    assert {tuple(f["frame"][k] for k in ("w", "h")) for f in coins["frames"].values()} == {
        (32, 32)
    }


def test_sheet_is_rebuilt_only_when_a_frame_changes(project, run, api):
    """An unchanged project leaves the sheet up to date; a changed frame re-packs it."""
    project.gen({"specs/loot.yaml": SHEET_SPEC})
    assert run("build", "--provider", "openai").code == 0
    assert run("build", "--provider", "openai").code == 0
    assert entries(project)["loot/gems-atlas.png"]["status"] == "up-to-date"
    (project / "output/loot/gems-atlas.json").write_text("{}")
    assert run("build", "--provider", "openai").code == 0
    assert entries(project)["loot/gems-atlas.png"]["status"] == "cached"
    assert json.loads((project / "output/loot/gems-atlas.json").read_text())["frames"]
    project.gen({"specs/loot.yaml": SHEET_SPEC.replace("A {{ c }} gem", "A shiny {{ c }} gem")})
    assert run("build", "--provider", "openai").code == 0
    assert entries(project)["loot/gems-atlas.png"]["status"] == "generated"
    assert entries(project)["loot/coins-atlas.webp"]["status"] == "up-to-date"


def test_sheet_selecting_nothing_is_a_spec_error(project, run):
    """A sheet whose globs and tags match no asset: exit 2 at its line, with the asset ids."""
    project.gen({"specs/loot.yaml": SHEET_SPEC.replace('assets: ["coin-*"]', 'assets: ["kon-*"]')})
    result = run("validate")
    assert result.code == 2
    assert "specs/loot.yaml:20:13: sheet 'coins-atlas' selects no asset" in result.err
    assert "coin-1" in result.err


def test_embed_metadata_stamps_job_and_key_into_pngs(project, run, api):
    """With embed_metadata, a delivered PNG carries its job id and cache key in an iTXt
    chunk, and nothing else of the manifest (no prompt, no key material)."""
    project.gen({"specs/shop.yaml": SPEC, "assetpipe.yaml": "embed_metadata: true\n"})
    assert run("build", "--provider", "openai").code == 0
    entry = entries(project)["shop/poster.png"]
    with Image.open(project / "output/shop/poster.png") as image:
        stamp = json.loads(image.text["assetpipe"])
    assert stamp == {"job": "shop/poster", "cache_key": entry["cache_key"]}
    assert run("build", "--provider", "openai").code == 0
    assert entries(project)["shop/poster.png"]["status"] == "up-to-date"


def test_prune_removes_a_sheet_atlas_and_a_kept_original_with_their_files(project, run, api):
    """--prune deletes a removed sheet's JSON and a removed asset's `.original` file too."""
    project.gen({"specs/shop.yaml": SPEC, "specs/loot.yaml": SHEET_SPEC})
    assert run("build", "--provider", "openai").code == 0
    assert (project / "output/shop/badge.original.png").is_file()
    project.gen(
        {
            "specs/shop.yaml": SPEC.replace(
                "keep_original: true", "keep_original: true\n        tags: []"
            ).replace("id: badge", "id: medal"),
            "specs/loot.yaml": SHEET_SPEC.split("    sheets:", maxsplit=1)[0],
        }
    )
    result = run("build", "--provider", "openai", "--prune")
    assert result.code == 0, result.err
    for gone in (
        "shop/badge.png",
        "shop/badge.original.png",
        "loot/gems-atlas.png",
        "loot/gems-atlas.json",
        "loot/coins-atlas.json",
    ):
        assert not (project / "output" / gone).exists(), gone
    assert (project / "output/shop/medal.original.png").is_file()
