"""Specs that say things once, and prompts nobody meant to pay for (issue: say it once).

Each behaviour through the CLI (`validate`/`plan` on the preview provider), with the
exact exit code and message.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline import api
from pipeline.jobs import ApiJob


def plan_jobs(run: Any) -> dict[str, dict[str, Any]]:
    result = run("plan", "--json", "--provider", "preview")
    assert result.code == 0, result.err
    return {j["id"]: j for j in json.loads(result.out)["jobs"]}


def error_lines(result: Any) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith(("error:", "  hint:"))]


def test_defaults_take_asset_settings_and_the_asset_wins(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                defaults:
                  size: 512x512
                  quality: low
                  variants: 2
                  tags: [ui]
                  renditions: [{size: 64x64}]
                assets:
                  - id: a
                    prompt: "a cat"
                  - id: b
                    prompt: "a dog"
                    aspect: "16:9"
                    variants: 1
                    renditions: []
            """
        }
    )
    jobs = plan_jobs(run)
    assert set(jobs) == {"set/a", "set/a@64x64", "set/a#2", "set/a#2@64x64", "set/b"}
    assert jobs["set/a"]["size"] == "512x512"
    assert jobs["set/a"]["quality"] == "low"
    assert jobs["set/b"]["size"] != "512x512"  # its own aspect wins over the default size


def test_defaults_refuse_what_makes_an_asset(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                defaults:
                  prompt: "a cat"
                assets:
                  - id: a
                    prompt: "x"
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result)[0] == (
        "error: specs/set.yaml:2:3: 'prompt' cannot be a default: it says what an asset is, "
        "so each asset sets its own"
    )


def test_an_asset_has_its_own_vars_and_matrix_values_win(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                vars: {mood: calm, thing: owl}
                assets:
                  - id: "a-{{ thing }}"
                    matrix: {thing: [cat]}
                    vars: {mood: "bold {{ thing }}", thing: dog}
                    prompt: "a {{ thing }}, {{ mood }}, {{ vars.mood }}"
                  - id: b
                    prompt: "a {{ thing }}, {{ mood }}"
            """
        }
    )
    jobs = plan_jobs(run)
    assert jobs["set/a-cat"]["prompt"] == "a cat, bold cat, bold cat"
    assert jobs["set/b"]["prompt"] == "a owl, calm"


def test_explicit_keys_override_yaml_merge_keys(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - &base
                    id: base
                    prompt: "a shared prompt"
                    size: 512x512
                  - <<: *base
                    id: other
                    size: 256x256
            """
        }
    )
    jobs = plan_jobs(run)
    assert jobs["set/other"]["prompt"] == "a shared prompt"
    assert jobs["set/other"]["size"] == "256x256"


def test_a_missing_brand_field_is_an_error_not_the_word_none(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                brand: {name: Acme, colors: {ember: "#E4572E", night: "#2B2D42"}}
                assets:
                  - id: a
                    prompt: "in the style {{ brand.style }}"
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result) == [
        "error: specs/set.yaml:4:13: template error: 'brand.style' is not set here",
        "  hint: add it to the brand kit, or test for it: {% if brand.style %}...{% endif %}",
    ]


def test_asset_aspect_on_a_sized_asset_is_an_error(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: a
                    size: 512x512
                    prompt: "shape {{ asset.aspect }}"
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result)[0] == (
        "error: specs/set.yaml:4:13: template error: 'asset.aspect' is not set here"
    )


def test_a_missing_brand_color_lists_the_brands_colors(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                brand: {name: Acme, colors: {ember: "#E4572E", night: "#2B2D42"}}
                assets:
                  - id: a
                    prompt: "in {{ brand.colors.gold }}"
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result) == [
        "error: specs/set.yaml:4:13: template error: no value 'gold' here",
        "  hint: the brand's colors are: ember, night",
    ]


def test_an_upscale_is_an_error_and_a_big_crop_a_warning(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: huge
                    prompt: "x"
                    size: 6000x6000
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result) == [
        "error: specs/set.yaml:4:11: size 6000x6000 is 2.8x larger than gpt-image-2.5-flare "
        "can make at this shape (2160x2160 at most): the image would be upscaled",
        "  hint: ask for at most 2160x2160 (upscale with your own tools if you must)",
    ]
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: wide
                    prompt: "x"
                    aspect: "5:1"
                  - id: strip
                    prompt: "x"
                    size: 4000x100
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 0, result.err
    assert (
        "specs/set.yaml:4:13: warning: aspect 5:1 keeps 60% of each generated 1776x592 image "
        "(40% is cropped away)" in result.err
    )
    assert "specs/set.yaml:7:11: warning: size 4000x100 keeps 8% of each generated" in result.err


def test_every_error_of_a_spec_is_reported_at_once(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: a
                    prompt: "x"
                    colour: red
                  - id: b
                    prompt: "x"
                    model: gpt-image-9
                  - id: c
                    prompt: "x"
                    size: 6000x6000
                  - id: d
                    prompt: "x"
                    edit: {images: [a]}
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert [e.split(": ")[1] for e in errors] == [
        "specs/set.yaml:4:5",
        "specs/set.yaml:7:12",
        "specs/set.yaml:10:11",
    ]  # d edits the broken a: nothing more is said about it
    assert result.err.rstrip().endswith("3 errors")


def test_an_unquoted_hex_color_is_explained(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                brand:
                  name: Acme
                  colors:
                    primary: #3366FF
                assets:
                  - id: a
                    prompt: "x"
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    lines = error_lines(result)
    assert lines[0].startswith("error: specs/set.yaml:4:")
    assert "an unquoted # starts a comment" in lines[0]
    assert lines[1] == '  hint: quote it: "#3366FF"'


def test_an_unclosed_block_is_reported_where_it_opens(project, run):
    project.gen(
        {
            "specs/set.yaml": "assets:\n  - id: a\n    prompt: x\n    template: t.j2\n",
            "templates/t.j2": "a hero\n{% if vars %}\nwith vars\n\nand more\n",
        }
    )
    (project / "specs/set.yaml").write_text(
        "assets:\n  - id: a\n    template: t.j2\n", encoding="utf-8"
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result)[0] == (
        "error: templates/t.j2:2: template syntax error: this {% if %} is never closed "
        "(add {% endif %})"
    )


def test_the_allowed_keys_are_listed_once(project, run):
    project.gen({"specs/set.yaml": "assets:\n  - id: a\n    prompt: x\n    zzzz: 1\n"})
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    hint = error_lines(result)[1]
    keys = hint.removeprefix("  hint: allowed keys: ").split(", ")
    assert len(keys) == len(set(keys)) > 10
    assert "vars" in keys and "reference" in keys


def test_one_spec_serves_several_brands(project, run):
    project.gen(
        {
            "brands/acme.yaml": 'name: Acme\ncolors: {primary: "#E4572E"}\nstyle: bold flat\n',
            "brands/zenith.yaml": 'name: Zenith\ncolors: {primary: "#2B2D42"}\n',
            "specs/campaign.yaml": """
                defaults: {size: 512x512, quality: low}
                assets:
                  - id: "banner-{{ kit }}"
                    matrix: {kit: [acme, zenith]}
                    brand: "../brands/{{ kit }}.yaml"
                    prompt: "a banner for {{ brand.name }} in {{ brand.colors.primary }}"
            """,
        }
    )
    jobs = plan_jobs(run)
    assert jobs["campaign/banner-acme"]["prompt"] == "a banner for Acme in #E4572E"
    assert jobs["campaign/banner-zenith"]["prompt"] == "a banner for Zenith in #2B2D42"
    ws = api.open_workspace(api.Request(project=project.root, flags={"provider": "preview"}))
    palettes = {j.id: j.palette for j in ws.plan.jobs if isinstance(j, ApiJob)}
    assert palettes == {  # each checked against its own brand's colors
        "campaign/banner-acme": ("#E4572E",),
        "campaign/banner-zenith": ("#2B2D42",),
    }

    project.gen(
        {
            "specs/campaign.yaml": """
                assets:
                  - id: "banner-{{ kit }}"
                    matrix: {kit: [nowhere]}
                    brand: "../brands/{{ kit }}.yaml"
                    prompt: "x"
            """
        }
    )
    missing = run("validate", "--provider", "preview")
    assert missing.code == 2
    assert error_lines(missing)[0] == (
        "error: specs/campaign.yaml:4:12: brand file '../brands/nowhere.yaml' not found "
        "(looked at brands/nowhere.yaml)"
    )
