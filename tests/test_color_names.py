"""Color names in prompts: the words a designer would accept, never a gray for a brown.

``color_name`` names a hex color from ``pipeline/data/color_names.toml`` by CIEDE2000
distance; a color far from every name gets the nearest name plus its hex. The outputs
are pinned: a different name is a different prompt and a new cache key.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.colors import FAR, color_name, delta_e_2000, nearest_color

BRAND_COLORS = [
    ("#6F4E37", "coffee brown"),
    ("#1F2A44", "oxford blue"),  # a dark navy
    ("#008080", "teal"),
    ("#FF7F50", "coral"),
    ("#FFDB58", "mustard yellow"),
    ("#800020", "burgundy"),
    ("#228B22", "forest green"),
    ("#FAF9F6", "white"),  # off-white: 1.9 from white, below what most people notice
    ("#36454F", "charcoal gray"),
    ("#F5F5DC", "beige"),
    ("#FF0000", "red"),
    ("#FFFFFF", "white"),
    ("#000000", "black"),
]


@pytest.mark.parametrize(("hex_color", "name"), BRAND_COLORS, ids=[h for h, _ in BRAND_COLORS])
def test_brand_colors_have_the_names_a_designer_would_use(hex_color, name):
    assert color_name(hex_color) == name


@pytest.mark.parametrize(
    "brown",
    ["#6F4E37", "#5C4033", "#7B3F00", "#8B5A2B", "#A0785A", "#4B3621", "#3D2B1F", "#826644"],
)
def test_a_brown_is_named_a_brown_not_a_gray(brown):
    """Plain distance in CIELAB called coffee brown "dim gray"; CIEDE2000 weighs hue."""
    assert "gray" not in color_name(brown)


def test_lowercase_and_short_hex_name_the_same_color():
    assert color_name("#6f4e37") == "coffee brown"
    assert color_name("#fff") == "white"
    assert color_name("f00") == "red"


def test_a_color_far_from_every_name_carries_its_hex():
    """Past FAR the nearest name is a neighbour, not the color: the hex says which."""
    name, distance = nearest_color("#4C2518")
    assert distance > FAR
    assert color_name("#4c2518") == f"{name} (#4C2518)" == "wine red (#4C2518)"


def test_a_near_color_is_named_without_its_hex():
    name, distance = nearest_color("#2B2D42")
    assert distance <= FAR
    assert color_name("#2B2D42") == name == "oxford blue"


@pytest.mark.parametrize(
    ("lab1", "lab2", "expected"),
    [  # Sharma, Wu and Dalal's CIEDE2000 test data
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
        ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0011), 7.2195),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
        ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
        ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082),
    ],
)
def test_delta_e_2000_matches_the_published_test_data(lab1, lab2, expected):
    assert delta_e_2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    assert delta_e_2000(lab2, lab1) == pytest.approx(expected, abs=1e-4)


def test_a_bad_hex_is_a_template_error(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: a
                    prompt: "a {{ '#12345' | color_name }} cat"
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert "'#12345' is not a hex color like #RRGGBB" in result.err


def plan_prompt(run: Any) -> str:
    result = run("plan", "--json", "--provider", "preview")
    assert result.code == 0, result.err
    (job,) = json.loads(result.out)["jobs"]
    return str(job["prompt"])


def test_color_name_and_palette_in_a_prompt(project, run):
    """``palette`` prints the hex itself, so a far name goes there without a second one."""
    project.gen(
        {
            "specs/set.yaml": """
                brand:
                  name: Roast
                  colors: {bean: "#6F4E37", night: "#4C2518", cream: "#FAF9F6"}
                assets:
                  - id: a
                    prompt: >-
                      a {{ brand.colors.bean | color_name }} cup,
                      {{ brand.colors.night | color_name }} table
                      | {{ brand | palette }}
            """
        }
    )
    assert plan_prompt(run) == (
        "a coffee brown cup, wine red (#4C2518) table"
        " | bean #6F4E37 (coffee brown), night #4C2518 (wine red), cream #FAF9F6 (white)"
    )
