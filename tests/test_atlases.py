"""Atlas formats: each format's file from one layout, the sheet's frame order, animations,
what enters a sheet's key, the Godot resource read back, and the mistakes a spec can make.

The engines themselves (PixiJS, Phaser) load these files in tests/test_atlases_engines.py.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyparsing.warnings import PyparsingDeprecationWarning

from pipeline import api
from pipeline.jobs import SheetJob
from pipeline.jobs.atlases import (
    ATLAS_FORMATS,
    AtlasAnimation,
    AtlasFrame,
    AtlasLayout,
    AtlasLayoutError,
    AtlasOptions,
    atlas_files,
    atlas_options,
    atlas_params,
    render_atlases,
)
from pipeline.jobs.atlases.texturepacker import hash_json

with warnings.catch_warnings():  # godot_parser builds its grammar with deprecated arguments
    warnings.simplefilter("ignore", PyparsingDeprecationWarning)
    from godot_parser import GDResource, parse

LAYOUT = AtlasLayout(
    frames=(AtlasFrame("walk-2.png", 2, 2, 10, 20), AtlasFrame("walk-1.png", 14, 2, 8, 6)),
    width=32,
    height=24,
    image="walker.png",
)
"""Two frames whose sheet order (walk-2 first) is not their sorted order."""
WALK = AtlasAnimation("walk", 12, True)
ORDER = ("walk-2.png", "walk-1.png")

SPEC = """
    assets:
      - id: walk-{{ n }}
        prompt: a knight walking, frame {{ n }}
        matrix: {n: [3, 1, 10, 2]}
        size: 1024x1024
        quality: low
    sheets:
      - id: walker
        assets: ["walk-*"]
        frame_size: 24x32
"""
"""Four frames listed 3, 1, 10, 2: neither numeric nor text order."""
LISTED = ["walk-3.png", "walk-1.png", "walk-10.png", "walk-2.png"]


def sheet_job(root: Path) -> SheetJob:
    ws = api.open_workspace(api.Request(project=root), credentials=False)
    return next(job for job in ws.full_plan.jobs if isinstance(job, SheetJob))


def build(run) -> None:
    result = run("build", "--provider", "preview", "-q")
    assert result.code == 0, result.err


def manifest_entry(project, path: str) -> dict:
    manifest = json.loads((project / "output/manifest.json").read_text())
    return next(e for e in manifest["entries"] if e["path"] == path)


def read_tres(text: str | bytes | Path) -> GDResource:
    """A Godot text resource as godot_parser reads it (it calls pyparsing with arguments
    pyparsing now deprecates, which would fail this suite's warnings-as-errors)."""
    if isinstance(text, Path):
        text = text.read_text("utf-8")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PyparsingDeprecationWarning)
        return parse(text)


def rects_of_tres(resource: GDResource) -> dict[str, tuple[int, ...]]:
    """Each AtlasTexture sub-resource's frame name and ``region``."""
    out = {}
    for section in resource.get_sections():
        if section.header.name == "sub_resource":
            assert section.header["type"] == "AtlasTexture"
            assert section["atlas"].args == ["1_sheet"]
            out[section["resource_name"]] = tuple(section["region"].args)
    return out


# -- each format from one layout ---------------------------------------------------------


def test_every_format_names_the_same_rectangles_in_the_sheets_order() -> None:
    """Hash, array, Pixi and Phaser JSON describe the layout's frames, the list formats
    in the sheet's order (not sorted), each naming the sheet's image."""
    options = AtlasOptions("walker")
    rects = {"walk-2.png": [2, 2, 10, 20], "walk-1.png": [14, 2, 8, 6]}

    def rect(entry: dict) -> list[int]:
        return [entry["frame"][k] for k in ("x", "y", "w", "h")]

    tp_hash = json.loads(ATLAS_FORMATS["texturepacker-hash"].files[0].render(LAYOUT, options))
    assert {n: rect(e) for n, e in tp_hash["frames"].items()} == rects
    tp_array = json.loads(ATLAS_FORMATS["texturepacker-array"].files[0].render(LAYOUT, options))
    assert [(e["filename"], rect(e)) for e in tp_array["frames"]] == list(rects.items())
    pixi = json.loads(ATLAS_FORMATS["pixi"].files[0].render(LAYOUT, options))
    assert {n: rect(e) for n, e in pixi["frames"].items()} == rects
    assert "animations" not in pixi
    phaser = json.loads(ATLAS_FORMATS["phaser"].files[0].render(LAYOUT, options))
    (texture,) = phaser["textures"]
    assert [(e["filename"], rect(e)) for e in texture["frames"]] == list(rects.items())
    assert texture["image"] == "walker.png"
    assert texture["size"] == {"w": 32, "h": 24}
    for doc in (tp_hash, tp_array, pixi):
        assert doc["meta"]["image"] == "walker.png"
        assert doc["meta"]["size"] == {"w": 32, "h": 24}
        assert "animation" not in doc["meta"]


def test_an_animation_in_each_formats_own_form() -> None:
    """Pixi: ``animations`` plus fps and loop in ``meta``; Phaser: anims.fromJSON's
    format (texture keyed by the sheet id, repeat -1 to loop); TexturePacker: meta."""
    options = AtlasOptions("walker", WALK)
    pixi = json.loads(ATLAS_FORMATS["pixi"].files[0].render(LAYOUT, options))
    assert pixi["animations"] == {"walk": list(ORDER)}
    assert pixi["meta"]["animation"] == {"name": "walk", "fps": 12, "loop": True}
    anims_file = ATLAS_FORMATS["phaser"].files[1]
    assert anims_file.suffix == ".anims.json" and anims_file.animated
    anims = json.loads(anims_file.render(LAYOUT, options))
    assert anims == {
        "anims": [
            {
                "key": "walk",
                "type": "frame",
                "frames": [{"key": "walker", "frame": n} for n in ORDER],
                "frameRate": 12,
                "repeat": -1,
            }
        ]
    }
    once = AtlasOptions("walker", AtlasAnimation("walk", 12, False))
    assert json.loads(anims_file.render(LAYOUT, once))["anims"][0]["repeat"] == 0
    for name in ("texturepacker-hash", "texturepacker-array"):
        doc = json.loads(ATLAS_FORMATS[name].files[0].render(LAYOUT, options))
        assert doc["meta"]["animation"] == {
            "name": "walk",
            "fps": 12,
            "loop": True,
            "frames": list(ORDER),
        }


def test_the_godot_resource_is_spriteframes_with_a_region_per_frame() -> None:
    """One AtlasTexture per frame (named, its region), the image beside the resource, and
    the animation's frames, loop and speed (fps)."""
    text = ATLAS_FORMATS["godot"].files[0].render(LAYOUT, AtlasOptions("walker", WALK)).decode()
    assert text.startswith('[gd_resource type="SpriteFrames" load_steps=4 format=3]\n')
    resource = read_tres(text)
    (ext,) = [s for s in resource.get_sections() if s.header.name == "ext_resource"]
    assert (ext.header["type"], ext.header["path"], ext.header["id"]) == (
        "Texture2D",
        "walker.png",
        "1_sheet",
    )
    assert rects_of_tres(resource) == {"walk-2.png": (2, 2, 10, 20), "walk-1.png": (14, 2, 8, 6)}
    main = resource.get_sections()[-1]
    assert main.header.name == "resource"
    (anim,) = main["animations"]
    assert (anim["name"], anim["loop"], anim["speed"]) == ("walk", True, 12.0)
    ids = [frame["texture"].args[0] for frame in anim["frames"]]
    names = {s.header["id"]: s["resource_name"] for s in resource.get_sections()[2:-1]}
    assert [names[i] for i in ids] == list(ORDER)
    assert {frame["duration"] for frame in anim["frames"]} == {1.0}


def test_a_godot_resource_without_animation_or_with_a_res_folder() -> None:
    """No animation: every frame in Godot's ``default`` at its 5 fps; ``godot_dir``: the
    image under that res:// folder."""
    godot = ATLAS_FORMATS["godot"].files[0]
    for folder, path in [
        ("res://sprites/hero/", "res://sprites/hero/walker.png"),
        ("res://sprites/hero", "res://sprites/hero/walker.png"),
        ("res://", "res://walker.png"),
    ]:
        found = read_tres(godot.render(LAYOUT, AtlasOptions("walker", None, folder)))
        assert found.get_sections()[1].header["path"] == path
    resource = read_tres(godot.render(LAYOUT, AtlasOptions("walker")))
    (anim,) = resource.get_sections()[-1]["animations"]
    assert (anim["name"], anim["loop"], anim["speed"], len(anim["frames"])) == (
        "default",
        True,
        5.0,
        2,
    )


def test_godot_strings_are_escaped() -> None:
    """A name with quotes or backslashes stays one string (the resource stays well-formed)."""
    layout = AtlasLayout((AtlasFrame('a"b\\c.png', 0, 0, 1, 1),), 1, 1, 'x"y.png')
    resource = read_tres(ATLAS_FORMATS["godot"].files[0].render(layout, AtlasOptions("s")))
    assert rects_of_tres(resource) == {'a"b\\c.png': (0, 0, 1, 1)}
    assert resource.get_sections()[1].header["path"] == 'x"y.png'


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(*(st.integers(0, 4000) for _ in range(2)), *(st.integers(1, 500),) * 2),
        min_size=1,
        max_size=8,
    ),
    st.booleans(),
)
def test_every_format_round_trips_any_layout(rects: list[tuple[int, ...]], loop: bool) -> None:
    """Whatever the layout, every format names exactly its rectangles, in order."""
    frames = tuple(AtlasFrame(f"f{i}.png", *r) for i, r in enumerate(rects))
    layout = AtlasLayout(frames, 5000, 5000, "s.png")
    options = AtlasOptions("s", AtlasAnimation("a", 7, loop))
    want = [(f.name, (f.x, f.y, f.w, f.h)) for f in frames]

    def box(e: dict) -> tuple[int, ...]:
        return tuple(e["frame"][k] for k in ("x", "y", "w", "h"))

    docs = {n: fmt.files[0].render(layout, options) for n, fmt in ATLAS_FORMATS.items()}
    assert {n: box(e) for n, e in json.loads(docs["pixi"])["frames"].items()} == dict(want)
    assert [
        (e["filename"], box(e)) for e in json.loads(docs["texturepacker-array"])["frames"]
    ] == want
    phaser = json.loads(docs["phaser"])["textures"][0]["frames"]
    assert [(e["filename"], box(e)) for e in phaser] == want
    assert list(rects_of_tres(read_tres(docs["godot"])).items()) == want
    assert json.loads(docs["pixi"])["animations"]["a"] == [n for n, _ in want]


# -- rendering a sheet's files from the cached layout -----------------------------------


def test_the_default_atlas_is_the_cached_bytes_unless_animated() -> None:
    """Without an animation the default atlas is the layout's bytes as kept; with one it
    is written again with ``meta.animation``, the frames still the layout's."""
    cached = hash_json(LAYOUT)
    files = atlas_files("hero/walker", ["texturepacker-hash"], animated=False)
    assert files == (("texturepacker-hash", "hero/walker.json"),)
    plain = render_atlases(cached, files, "hero/walker", AtlasOptions("walker"), ORDER)
    assert plain == {"hero/walker.json": cached}
    animated = render_atlases(cached, files, "hero/walker", AtlasOptions("walker", WALK), ORDER)
    doc = json.loads(animated["hero/walker.json"])
    assert doc["meta"]["animation"]["frames"] == list(ORDER)
    assert doc["frames"] == json.loads(cached)["frames"]


def test_phasers_animation_file_is_named_only_for_an_animated_sheet() -> None:
    """Each format's files in the order listed; ``.anims.json`` only with an animation."""
    names = ["pixi", "phaser", "godot"]
    assert atlas_files("c/s", names, animated=False) == (
        ("pixi", "c/s.pixi.json"),
        ("phaser", "c/s.phaser.json"),
        ("godot", "c/s.tres"),
    )
    assert ("phaser", "c/s.anims.json") in atlas_files("c/s", names, animated=True)


@pytest.mark.parametrize(
    ("files", "order", "message"),
    [
        ([("pixi", "c/s.json")], ORDER, "no atlas format 'pixi' writes 'c/s.json'"),
        ([("spine", "c/s.atlas")], ORDER, "no atlas format 'spine'"),
        ([("phaser", "c/s.anims.json")], ORDER, "no atlas format 'phaser' writes"),
        ([("pixi", "c/s.pixi.json")], ("walk-1.png",), "its frames are not the sheet's"),
        ([("pixi", "c/s.pixi.json")], ("walk-1.png", "walk-1.png"), "not the sheet's"),
    ],
)
def test_a_plan_or_layout_that_does_not_match_is_refused(files, order, message) -> None:
    """A stored plan or cached layout read back from disk that names a file no format
    writes, or other frames than the sheet's, is an AtlasLayoutError (the build reports a
    damaged atlas), never a KeyError or a wrong file."""
    with pytest.raises(AtlasLayoutError, match=message):
        render_atlases(hash_json(LAYOUT), files, "c/s", AtlasOptions("s"), order)


def test_atlas_options_round_trip_and_refuse_bad_parameters() -> None:
    """What the planner writes the build reads back; a stored plan's wrong types are
    refused, never turned into a wrong atlas."""
    assert atlas_params(None, None) == {}
    params = atlas_params(WALK, "res://a")
    assert params == {
        "animation": "walk",
        "animation_fps": 12,
        "animation_loop": 1,
        "godot_dir": "res://a",
    }
    assert atlas_options(params, "walker") == AtlasOptions("walker", WALK, "res://a")
    with pytest.raises(AtlasLayoutError, match="not a sheet's animation"):
        atlas_options({**params, "animation_fps": "12"}, "walker")
    with pytest.raises(AtlasLayoutError, match="not a Godot folder"):
        atlas_options({"godot_dir": 3}, "walker")


# -- the planner: frame order, keys, files ----------------------------------------------


def test_frames_are_in_the_order_the_spec_lists_its_assets(project) -> None:
    """Not sorted by name or number: the order the spec (here its matrix) lists them."""
    project.gen({"specs/hero.yaml": SPEC})
    assert list(sheet_job(project.root).frames) == LISTED


def test_with_all_variants_each_assets_variants_follow_it(project) -> None:
    """``variants: all``: an asset's variants follow it, before the next asset."""
    spec = SPEC.replace("quality: low", "quality: low\n        variants: 2").replace(
        'assets: ["walk-*"]', 'assets: ["walk-*"]\n        variants: all'
    )
    project.gen({"specs/hero.yaml": spec})
    frames = list(sheet_job(project.root).frames)
    assert frames[:4] == ["walk-3.png", "walk-3.v2.png", "walk-1.png", "walk-1.v2.png"]
    assert len(frames) == 8


def test_only_a_non_default_sheet_adds_parameters(project) -> None:
    """The default sheet's parameters (so its key) are the ones it always had; formats,
    an animation and a Godot folder each add theirs."""
    project.gen({"specs/hero.yaml": SPEC})
    plain = sheet_job(project.root)
    assert dict(plain.params) == {
        "padding": 2,
        "power_of_two": 0,
        "max_size": 4096,
        "format": "png",
        "frame_size": "24x32",
    }
    assert plain.atlases == (("texturepacker-hash", "hero/walker.json"),)
    extra = (
        "        atlas: [pixi, phaser, godot]\n"
        "        animation: {fps: 10, loop: false}\n"
        "        godot_dir: res://art\n"
    )
    project.gen({"specs/hero.yaml": SPEC + extra})
    job = sheet_job(project.root)
    assert dict(job.params) == {
        **plain.params,
        "atlas": "pixi,phaser,godot",
        "animation": "walker",  # the sheet's id when the animation has no name
        "animation_fps": 10,
        "animation_loop": 0,
        "godot_dir": "res://art",
    }
    assert [path for _, path in job.atlases] == [
        "hero/walker.pixi.json",
        "hero/walker.phaser.json",
        "hero/walker.anims.json",
        "hero/walker.tres",
    ]


@pytest.mark.parametrize(
    ("extra", "where", "message", "hint"),
    [
        ("animation: {fps: 0}", "hero.yaml:11:22", "fps must be a whole number", "e.g. fps: 12"),
        ("animation: {fps: 1.5}", "hero.yaml:11:22", "got 1.5", "e.g. fps: 12"),
        ("animation: {fsp: 8}", "hero.yaml:11:17", "unknown key 'fsp'", "did you mean 'fps'?"),
        ("animation: {fps: 8, lop: no}", "hero.yaml:11:25", "unknown key 'lop'", "'loop'"),
        (
            "animation: {fps: 8, name: 'a/b'}",
            "hero.yaml:11:31",
            "animation name 'a/b' must be",
            "e.g. name: walk",
        ),
        ("atlas: [pixie]", "hero.yaml:11:13", "unknown atlas format 'pixie'", "'pixi'"),
        ("atlas: [godoh]", "hero.yaml:11:13", "unknown atlas format", "did you mean 'godot'?"),
        ("godot_dir: res://x", "hero.yaml:11:16", "writes no godot atlas", "add godot to atlas"),
        (
            "godot_dir: res://../x\n        atlas: [godot]",
            "hero.yaml:11:16",
            "must be a res:// folder",
            "res://sprites/icons",
        ),
    ],
)
def test_sheet_mistakes_are_spec_errors_at_their_line(project, run, extra, where, message, hint):
    """Each mistake is exit 2 at its file:line:col, with what would be right."""
    project.gen({"specs/hero.yaml": SPEC + f"        {extra}\n"})
    result = run("validate")
    assert result.code == 2, result.out
    assert where in result.err
    assert message in result.err
    assert hint in result.err
    assert "Traceback" not in result.err


# -- a build ---------------------------------------------------------------------------


ANIMATED = SPEC + (
    "        atlas: [texturepacker-hash, texturepacker-array, pixi, phaser, godot]\n"
    "        animation: {fps: 8, name: walk}\n"
)


def test_a_build_writes_every_format_beside_the_sheet_as_companions(project, run):
    """Every file is written, listed as the sheet's companion with its sha256, and the
    Godot resource loads from disk naming the sheet's rectangles."""
    project.gen({"specs/hero.yaml": ANIMATED})
    build(run)
    out = project / "output/hero"
    entry = manifest_entry(project, "hero/walker.png")
    paths = [c["path"] for c in entry["companions"]]
    assert paths == [
        "hero/walker.json",
        "hero/walker.array.json",
        "hero/walker.pixi.json",
        "hero/walker.phaser.json",
        "hero/walker.anims.json",
        "hero/walker.tres",
    ]
    tp = json.loads((out / "walker.json").read_text())
    rects = {n: tuple(f["frame"][k] for k in ("x", "y", "w", "h")) for n, f in tp["frames"].items()}
    assert list(rects_of_tres(read_tres(out / "walker.tres"))) == LISTED
    assert rects_of_tres(read_tres(out / "walker.tres")) == rects
    assert tp["meta"]["animation"]["frames"] == LISTED
    pixi = json.loads((out / "walker.pixi.json").read_text())
    assert pixi["animations"] == {"walk": LISTED}


def test_changing_the_animation_rewrites_the_atlases_only(project, run):
    """A new fps changes the sheet's key: the atlases are written again from the cached
    frames (nothing paid), and a deleted atlas is put back by the next build."""
    project.gen({"specs/hero.yaml": ANIMATED})
    build(run)
    before = manifest_entry(project, "hero/walker.png")["cache_key"]
    project.gen({"specs/hero.yaml": ANIMATED.replace("fps: 8", "fps: 24")})
    build(run)
    entry = manifest_entry(project, "hero/walker.png")
    assert entry["cache_key"] != before
    assert manifest_entry(project, "hero/walk-1.png")["status"] == "up-to-date"
    anims = json.loads((project / "output/hero/walker.anims.json").read_text())
    assert anims["anims"][0]["frameRate"] == 24
    (project / "output/hero/walker.tres").unlink()
    build(run)
    assert 'speed": 24.0' in (project / "output/hero/walker.tres").read_text()


def test_the_default_sheet_keeps_its_key_and_bytes_beside_new_formats(project, run):
    """Adding formats changes the key, but the default atlas the sheet writes is the
    same bytes as before, and dropping them again returns to the first key."""
    project.gen({"specs/hero.yaml": SPEC})
    build(run)
    first = (project / "output/hero/walker.json").read_bytes()
    key = manifest_entry(project, "hero/walker.png")["cache_key"]
    project.gen({"specs/hero.yaml": SPEC + "        atlas: [texturepacker-hash, pixi]\n"})
    build(run)
    assert (project / "output/hero/walker.json").read_bytes() == first
    assert manifest_entry(project, "hero/walker.png")["cache_key"] != key
    shutil.rmtree(project / "output")
    project.gen({"specs/hero.yaml": SPEC})
    build(run)
    assert manifest_entry(project, "hero/walker.png")["cache_key"] == key
    assert (project / "output/hero/walker.json").read_bytes() == first
