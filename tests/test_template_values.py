"""Unset values in templates: false when tested, an error only when printed.

A brand kit without ``style``, an asset with a ``size`` and so no ``aspect``: templates
test for such values with ``{% if %}``, ``or``, ``default`` and ``is defined``, and
those work. Printing one into a prompt (alone, joined, formatted) exits 2 naming the
template line and, for a template file, the asset and spec value that rendered it.
Each behaviour through the CLI (``validate``/``plan`` on the preview provider).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

BRAND = 'brand: {name: Acme, colors: {ember: "#E4572E"}}'
"""A brand kit with no style, voice or logo."""


def prompts(run: Any) -> dict[str, str]:
    """The prompt of each API job of ``plan --json``, by job id."""
    result = run("plan", "--json", "--provider", "preview")
    assert result.code == 0, result.err
    return {j["id"]: j["prompt"] for j in json.loads(result.out)["jobs"]}


def error_lines(result: Any) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith(("error:", "  hint:"))]


def test_if_on_an_unset_brand_style_is_false(project, run):
    project.gen(
        {
            "specs/set.yaml": f"""
                {BRAND}
                assets:
                  - id: a
                    prompt: "a logo{{% if brand.style %}} in {{{{ brand.style }}}}{{% endif %}}"
                  - id: b
                    prompt: "a logo{{% if not brand.style %}}, plain{{% endif %}}"
            """
        }
    )
    assert prompts(run) == {"set/a": "a logo", "set/b": "a logo, plain"}


def test_if_on_a_set_brand_style_prints_it(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                brand: {name: Acme, colors: {ember: "#E4572E"}, style: flat vector}
                assets:
                  - id: a
                    prompt: "a logo{% if brand.style %} in {{ brand.style }}{% endif %}"
            """
        }
    )
    assert prompts(run) == {"set/a": "a logo in flat vector"}


def test_if_asset_aspect_on_a_sized_asset_is_false(project, run):
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: sized
                    size: 512x512
                    prompt: "a cat{% if asset.aspect %}, framed {{ asset.aspect }}{% endif %}"
                  - id: shaped
                    aspect: "16:9"
                    prompt: "a cat{% if asset.aspect %}, framed {{ asset.aspect }}{% endif %}"
            """
        }
    )
    found = prompts(run)
    assert found["set/sized"] == "a cat"
    assert found["set/shaped"] == "a cat, framed 16:9"


def test_aspect_or_size_renders_whichever_is_set(project, run):
    """The form older templates used, from a shared template file."""
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: sized
                    size: 512x512
                    template: t.j2
                  - id: shaped
                    aspect: "16:9"
                    template: t.j2
            """,
            "templates/t.j2": "a cat at {{ asset.aspect or asset.size }}\n",
        }
    )
    found = prompts(run)
    assert found["set/sized"] == "a cat at 512x512"
    assert found["set/shaped"] == "a cat at 16:9"


def test_default_filter_on_unset_values(project, run):
    project.gen(
        {
            "specs/set.yaml": f"""
                {BRAND}
                assets:
                  - id: a
                    size: 512x512
                    prompt: >-
                      {{{{ brand.style | default('painterly') }}}},
                      {{{{ asset.aspect | default('square') }}}},
                      {{{{ mood | default('calm') }}}}
            """
        }
    )
    assert prompts(run) == {"set/a": "painterly, square, calm"}


def test_is_defined_and_is_undefined_on_unset_values(project, run):
    project.gen(
        {
            "specs/set.yaml": f"""
                {BRAND}
                assets:
                  - id: a
                    size: 512x512
                    prompt: >-
                      {{{{ brand.style is defined }}}} {{{{ brand.name is defined }}}}
                      {{{{ asset.aspect is undefined }}}} {{{{ mood is defined }}}}
            """
        }
    )
    assert prompts(run) == {"set/a": "False True True False"}


def test_an_unset_value_chains_and_stays_false(project, run):
    """``brand.style.name`` on a kit without a style is unset too, not an error."""
    project.gen(
        {
            "specs/set.yaml": f"""
                {BRAND}
                assets:
                  - id: a
                    prompt: "x{{% if brand.style.name or brand.voice['tone'] %}}!{{% endif %}}"
            """
        }
    )
    assert prompts(run) == {"set/a": "x"}


def test_an_if_expression_without_else_prints_nothing(project, run):
    project.gen(
        {
            "specs/set.yaml": f"""
                {BRAND}
                assets:
                  - id: a
                    prompt: "a logo{{{{ ', ' ~ brand.style if brand.style }}}}"
            """
        }
    )
    assert prompts(run) == {"set/a": "a logo"}


def test_printing_an_unset_value_names_the_template_line_the_asset_and_its_spec(project, run):
    """In a template file shared by two assets, only the one without an aspect fails,
    and the error says which one and where the spec names the file."""
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: shaped
                    aspect: "16:9"
                    template: t.j2
                  - id: sized
                    size: 512x512
                    template: t.j2
            """,
            "templates/t.j2": "a cat\nframed {{ asset.aspect }}\n",
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert "Traceback" not in result.err
    assert error_lines(result)[0] == (
        "error: templates/t.j2:2: template error: 'asset.aspect' is not set here "
        "(asset 'sized' at specs/set.yaml:7:15)"
    )


def test_printing_an_unset_brand_style_alone_is_an_error(project, run):
    project.gen(
        {
            "specs/set.yaml": f"""
                {BRAND}
                assets:
                  - id: banner
                    template: t.j2
            """,
            "templates/t.j2": "a banner\nin the style {{ brand.style }}\n",
        }
    )
    for command in ("validate", "plan"):
        result = run(command, "--provider", "preview")
        assert result.code == 2, result.err
        assert error_lines(result) == [
            "error: templates/t.j2:2: template error: 'brand.style' is not set here "
            "(asset 'banner' at specs/set.yaml:4:15)",
            "  hint: add it to the brand kit, or test for it: {% if brand.style %}...{% endif %}",
        ]


def test_printing_an_unset_value_inline_is_an_error_at_the_prompt(project, run):
    """An inline prompt's error is at its own line in the spec, which is the asset's."""
    project.gen(
        {
            "specs/set.yaml": f"""
                {BRAND}
                assets:
                  - id: banner
                    prompt: |
                      a banner
                      in the style {{{{ brand.style }}}}
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result)[0] == (
        "error: specs/set.yaml:6: template error: 'brand.style' is not set here"
    )


PRINTED = {
    "concat": "{{ 'in ' ~ brand.style }}",
    "plus": "{{ 'in ' + brand.style }}",
    "format": "{{ 'in {}'.format(brand.style) }}",
    "printf": "{{ 'in %s' % brand.style }}",
    "filter": "{{ brand.style | upper }}",
    "tojson": "{{ brand.style | tojson }}",
    "join": "{{ [brand.style, 'x'] | join(', ') }}",
    "chained": "{{ brand.style.name }}",
    "loop": "{% for word in brand.style %}{{ word }}{% endfor %}",
    "length": "{{ brand.style | length }}",
}
"""Ways an unset value would reach the prompt's text: each is the unset-value error."""


@pytest.mark.parametrize("expression", list(PRINTED.values()), ids=list(PRINTED))
def test_an_unset_value_made_into_text_is_an_error(project, run, expression):
    project.gen(
        {
            "specs/set.yaml": f"""
                {BRAND}
                assets:
                  - id: a
                    prompt: "x {expression}"
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2, expression
    assert error_lines(result)[0] == (
        "error: specs/set.yaml:4:13: template error: 'brand.style' is not set here"
    ), expression


def test_a_misspelt_name_in_an_if_stays_an_error(project, run):
    """A name nothing defines is a typo far more often than an optional value; the hint
    says how to test for an optional one."""
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: a
                    prompt: "a cat{% if sitting %}, sitting{% endif %}"
            """
        }
    )
    result = run("validate", "--provider", "preview")
    assert result.code == 2
    assert error_lines(result) == [
        "error: specs/set.yaml:3:13: template error: 'sitting' is undefined",
        "  hint: define it under 'vars:', in the matrix, or check its spelling; "
        "to test for an optional value: {% if sitting is defined %}",
    ]


def test_a_spec_without_a_brand_may_test_for_one(project, run):
    """A template shared by specs with and without a brand kit tests ``{% if brand %}``."""
    project.gen(
        {
            "specs/set.yaml": """
                assets:
                  - id: a
                    prompt: "a cat{% if brand %} for {{ brand.name }}{% endif %}"
                  - id: b
                    prompt: "a cat{% if brand.style %}!{% endif %}"
            """
        }
    )
    assert prompts(run) == {"set/a": "a cat", "set/b": "a cat"}
