"""Edges new users hit: a broken spec hiding the others, a sheet too small for its
frames, a vague "prompt changed", a lock naming a variant the spec lacks, and crops and
skipped checks nobody mentioned.

Each behaviour through the CLI on small projects under tmp_path (the watch through the
function it reports with), with the exact exit code and message; on the free, offline
preview provider unless the provider is what the test is about.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline import api
from pipeline.review.watch import render_once

BROKEN = """
    assets:
      - id: hero
        prompt: "unclosed
"""
TYPO = """
    assets:
      - id: villain
        prompt: "a sly villain"
        quallity: high
"""
BAD_SIZE = """
    assets:
      - id: castle
        prompt: "a castle"
        size: big
"""
THREE_BROKEN_SPECS = {"specs/a.yaml": BROKEN, "specs/b.yaml": TYPO, "specs/c.yaml": BAD_SIZE}
EVERY_ERROR = [
    "specs/a.yaml:3:13: invalid YAML: the file ends inside a quoted scalar that starts here",
    "  hint: close the quote; for long text use a block: prompt: |, then indented lines",
    "specs/b.yaml:4:5: unknown key 'quallity'",
    "  hint: did you mean 'quality'?",
    "specs/c.yaml:4:11: size 'big' is not a pixel size",
    "  hint: write WxH with sides from 1 to 8192, e.g. 1024x1024",
]


def error_lines(result: Any) -> list[str]:
    """The error and hint lines of a run, without the ``error: `` prefix."""
    lines = result.err.splitlines()
    return [
        line.removeprefix("error: ") for line in lines if line.startswith(("error:", "  hint:"))
    ]


def warnings(result: Any) -> list[str]:
    return [line for line in result.err.splitlines() if "warning:" in line]


def plan_json(run: Any, *args: str) -> dict[str, Any]:
    result = run("plan", "--json", "--provider", "preview", *args)
    assert result.code == 0, result.err
    return dict(json.loads(result.out))


def replace_in(path: Any, old: str, new: str) -> None:
    text = path.read_text("utf-8")
    assert old in text
    path.write_text(text.replace(old, new), "utf-8")


# -- 1. a YAML error in one spec hides no other spec's errors ------------------------------


@pytest.mark.parametrize("command", ["validate", "plan", "build"])
def test_a_yaml_error_in_one_spec_hides_no_other_specs_errors(project, run, command):
    """Pins: a spec with a YAML syntax error is reported together with the errors of every
    other spec (an unknown key, a bad size) in one run of validate, plan and build, in
    file order, and the run exits 2 having paid for nothing."""
    project.gen(THREE_BROKEN_SPECS)
    result = run(command, "--provider", "preview")
    assert result.code == 2
    assert error_lines(result) == EVERY_ERROR
    assert result.err.splitlines()[-1] == "3 errors"
    assert not (project / "output").exists()


def test_an_edit_of_an_asset_in_the_broken_spec_is_not_reported_again(project, run):
    """Pins: a spec that edits an asset of a spec that did not load gets no "names no
    asset" error on top of the YAML error: that asset's file is the one to fix."""
    project.gen(
        {
            "specs/a.yaml": BROKEN,
            "specs/d.yaml": """
                assets:
                  - id: hero-winter
                    prompt: "the hero in winter"
                    edit: {images: [a/hero]}
            """,
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result) == EVERY_ERROR[:2]


def test_a_watch_round_reports_every_specs_errors(project):
    """Pins: the watch's round (the function that reports each save) lists the YAML error
    of the broken spec and the errors of the others, each as validate prints it."""
    project.gen(THREE_BROKEN_SPECS)
    event, sources = render_once(api.Request(project=project.root))
    assert event.kind == "error"
    assert sources is None
    assert event.errors == (
        "\n".join(EVERY_ERROR[0:2]),
        "\n".join(EVERY_ERROR[2:4]),
        "\n".join(EVERY_ERROR[4:6]),
    )


# -- 2. a sprite sheet too small for its frames fails at plan, not after paying ------------

ICONS = """
    assets:
      - id: icon-a
        prompt: "a sword icon"
        size: 512x512
        variants: 4
      - id: icon-b
        prompt: "a shield icon"
        size: 512x512
        variants: 4
    sheets:
      - id: atlas
        assets: ["icon-*"]
        variants: all
        max_size: 1024
"""


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_sheet_whose_frames_cannot_fit_is_a_spec_error(project, run, command):
    """Pins: eight 512x512 frames with padding 2 do not fit a 1024x1024 sheet: validate
    and plan exit 2 at the sheet's line, say how many frames fit, and name a max_size and
    a frame_size that hold them all (found by the build's own packer) or fewer frames."""
    project.gen({"specs/icons.yaml": ICONS})
    result = run(command, "--provider", "preview")
    assert result.code == 2
    assert error_lines(result) == [
        "specs/icons.yaml:11:5: sheet 'atlas' cannot hold its 8 frames of 512x512 "
        "(padding 2): a 1024x1024 sheet (max_size 1024) fits only 1 of them",
        "  hint: raise max_size (2048 holds all 8), set a smaller frame_size (256x256 holds "
        "all 8), or select at most 1 frame",
    ]


def test_a_sheet_frame_size_and_power_of_two_are_counted(project, run):
    """Pins: the check packs at the sheet's frame_size, not the assets' size, and on the
    power-of-two side within max_size (1500 gives a 1024x1024 sheet)."""
    spec = ICONS.replace("max_size: 1024", "max_size: 1500\n        power_of_two: true")
    spec = spec.replace("variants: all", "variants: all\n        frame_size: 400x400")
    project.gen({"specs/icons.yaml": spec})
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result) == [
        "specs/icons.yaml:11:5: sheet 'atlas' cannot hold its 8 frames of 400x400 "
        "(padding 2): a 1024x1024 sheet (max_size 1500, power_of_two) fits only 4 of them",
        "  hint: raise max_size (2048 holds all 8), set a smaller frame_size (200x200 holds "
        "all 8), or select at most 4 frames",
    ]


def test_a_sheet_that_plans_also_builds(project, run):
    """Pins: the plan's check agrees with the build at the edge: two 256x256 frames side
    by side with padding 2 need 518 pixels, so four fit max_size 518 (plans and builds)
    and only one fits 517 (does not plan)."""
    spec = ICONS.replace("512x512", "256x256").replace("variants: 4", "variants: 2")
    project.gen({"specs/icons.yaml": spec.replace("max_size: 1024", "max_size: 517")})
    refused = run("validate", "--provider", "preview")
    assert refused.code == 2
    assert error_lines(refused)[0] == (
        "specs/icons.yaml:11:5: sheet 'atlas' cannot hold its 4 frames of 256x256 "
        "(padding 2): a 517x517 sheet (max_size 517) fits only 1 of them"
    )
    project.gen({"specs/icons.yaml": spec.replace("max_size: 1024", "max_size: 518")})
    built = run("build", "--provider", "preview")
    assert built.code == 0, built.err
    atlas = json.loads((project / "output/icons/atlas.json").read_text("utf-8"))
    assert atlas["meta"]["size"] == {"w": 518, "h": 518}


# -- 3. plan says what changed in the prompt and the parameters ---------------------------

BALL = """
    assets:
      - id: ball
        prompt: "a red ball on green grass"
        size: 256x256
        quality: low
"""


def test_plan_shows_the_words_and_values_that_changed(project, run):
    """Pins: the reason names the changed words with their neighbours and each changed
    parameter with its old and new value, in plan --json and in the table."""
    project.gen({"specs/toys.yaml": BALL})
    assert run("build", "--provider", "preview").code == 0
    replace_in(project / "specs/toys.yaml", "red", "blue")
    reasons = {j["id"]: j["reason"] for j in plan_json(run)["jobs"]}
    assert reasons == {"toys/ball": 'prompt changed: a -"red" +"blue" ball on …'}
    replace_in(project / "specs/toys.yaml", "quality: low", "quality: high")
    reason = 'prompt changed: a -"red" +"blue" ball on …; quality: low -> high'
    assert {j["id"]: j["reason"] for j in plan_json(run)["jobs"]} == {"toys/ball": reason}
    table = run("plan", "--provider", "preview")
    assert table.code == 0
    assert reason in table.out.splitlines()[1]


def test_a_long_prompt_change_is_cut_and_its_controls_escaped(project, run):
    """Pins: a rewritten long prompt gives a reason of at most 80 characters ending in '…',
    and a control character put into the prompt is shown escaped, never raw."""
    long_old = " ".join(f"old{i}" for i in range(40))
    long_new = " ".join(f"new{i}" for i in range(40))
    project.gen({"specs/toys.yaml": BALL.replace("a red ball on green grass", long_old)})
    assert run("build", "--provider", "preview").code == 0
    replace_in(project / "specs/toys.yaml", long_old, long_new)
    reason = plan_json(run)["jobs"][0]["reason"]
    cut = 'prompt changed: -"old0 old1 old2 old3 old4 ol…" +"new0 new1 new2 new3 new4 ne…"'
    assert reason == cut
    assert len(reason) <= 80
    replace_in(project / "specs/toys.yaml", long_new, "a \\e[31mred ball")
    assert run("build", "--provider", "preview").code == 0
    replace_in(project / "specs/toys.yaml", "a \\e[31mred ball", "a \\e[32mred ball")
    table = run("plan", "--provider", "preview")
    assert table.code == 0
    assert 'prompt changed: a -"\\x1b[31mred" +"\\x1b[32mred" ball' in table.out
    assert "\x1b" not in table.out


# -- 4. a lock naming a variant the spec does not have -----------------------------------

HERO = """
    assets:
      - id: hero
        prompt: "a brave knight"
        size: 256x256
        variants: 4
"""
OUT_OF_RANGE = (
    "assetpipe.lock: warning: chars/hero: the lock names variant 9, but the spec has only "
    "4 variants; approve one of them with `assetpipe pick chars/hero#K` (K from 1 to 4) or "
    "drop the pick with `assetpipe unpick chars/hero` (until then builds deliver the image "
    "the lock names)"
)


def test_a_lock_naming_a_variant_the_spec_lacks_says_so_and_what_to_run(project, run):
    """Pins: a hand-edited lock with variant = 9 on a 4-variant asset is a warning at
    assetpipe.lock saying exactly that and what to run (not "the spec now asks for
    another image"); plan still works (exit 0), and so does the pick that fixes it."""
    project.gen({"specs/chars.yaml": HERO})
    assert run("build", "--provider", "preview").code == 0
    assert run("pick", "chars/hero#2", "--provider", "preview").code == 0
    replace_in(project / "assetpipe.lock", "variant = 2", "variant = 9")
    for command in ("validate", "plan"):
        result = run(command, "--provider", "preview")
        assert result.code == 0, result.err
        assert warnings(result) == [OUT_OF_RANGE]
    assert run("pick", "chars/hero#3", "--provider", "preview").code == 0
    result = run("plan", "--provider", "preview")
    assert result.code == 0
    assert warnings(result) == []


# -- 5. crops and skipped checks are said ------------------------------------------------

STORY = """
    assets:
      - id: story
        prompt: "a vertical story"
        size: 1080x1920
        renditions:
          - {size: 1200x628}
          - {size: 1200x628, fit: contain, format: webp}
          - {size: 1080x1350}
"""


def test_a_rendition_that_crops_most_of_the_asset_is_a_warning(project, run):
    """Pins: a cover rendition keeping under half of the delivered image (1200x628 from a
    9:16 story keeps 29%) is a warning at the rendition's size, naming it and the share
    kept; a contain rendition, and a 4:5 one keeping 70%, are not."""
    project.gen({"specs/social.yaml": STORY})
    for command in ("validate", "plan"):
        result = run(command, "--provider", "preview")
        assert result.code == 0, result.err
        assert warnings(result) == [
            "specs/social.yaml:6:16: warning: rendition 1200x628 keeps 29% of the 1080x1920 "
            "image (71% is cropped away): fit: contain keeps all of it, or give the asset a "
            "shape closer to the rendition's"
        ]


BRANDED = """
    brand: {name: Acme, colors: {ember: "#E4572E", night: "#2B2D42"}}
    assets:
      - id: logo
        prompt: "a logo"
        size: 256x256
        variants: 2
"""
PALETTE_SKIPPED = (
    "the palette check is skipped for preview images: they are placeholders, so their "
    "colors say nothing of the brand palette"
)


def test_preview_plans_and_builds_say_once_that_the_palette_check_is_skipped(project, run):
    """Pins: with a brand palette on the preview provider, plan and build each say once
    that the palette check is skipped for previews; without a palette nothing is said."""
    project.gen({"specs/brand.yaml": BRANDED})
    for command in ("plan", "build"):
        result = run(command, "--provider", "preview")
        assert result.code == 0, result.err
        assert result.err.splitlines().count(PALETTE_SKIPPED) == 1
    project.gen({"specs/brand.yaml": BRANDED.replace("brand: {", "vars: {")})
    result = run("plan", "--provider", "preview")
    assert result.code == 0, result.err
    assert PALETTE_SKIPPED not in result.err


def test_a_real_provider_says_nothing_of_a_skipped_palette_check(project, run, api):
    """Pins: on a provider whose images are real the palette is checked, and plan says
    nothing about skipping it."""
    project.gen({"specs/brand.yaml": BRANDED})
    result = run("plan", "--provider", "openai")
    assert result.code == 0, result.err
    assert PALETTE_SKIPPED not in result.err
