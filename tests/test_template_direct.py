"""Templates that only print values render without a Jinja context, to the same text.

:mod:`pipeline.templating.direct` renders ``tile-{{ x }}`` or ``{{ brand.colors.primary
| color_name }}`` by looking the values up itself. These tests render every template of
a table over tricky values twice, through the engine as it is and through an engine whose
direct path is switched off (plain Jinja), and require the same text or the same error,
character for character; and they prove the direct path is actually taken where it
should be (a template with logic never is).
"""

from __future__ import annotations

from typing import Any

import pytest
from markupsafe import Markup
from template_kit import HERE, engine, outcome

from pipeline.errors import SpecError
from pipeline.templating import TemplateEngine
from pipeline.templating.direct import UNSURE, direct_template
from pipeline.templating.limits import MAX_RENDERED_CHARS

TEMPLATES = [
    "tile-{{ x }}-{{ y }}",
    "{{ x }}",
    "braces { } {0} {{ x }} }} {",
    "  {{- x -}}  and {{ y }}\n",
    "line one\r\nline two {{ x }}\n\n",
    "{# a comment #}{{ x }}{# another #}",
    "{{ brand.name }}: {{ brand.colors.primary | color_name }} on {{ brand.colors.accent }}",
    "{{ x | upper }} {{ x | lower | title }}",
    "{{ x | length }}",
    "{{ d.items }}",
    "{{ d.key }} {{ d.nested.deeper }}",
    "{{ self }}",
    "{{ range }}",
    "{{ x | center }}",
    "{{ x | nosuchfilter }}",
    "{{ missing }}",
    "{{ d.missing }}",
    "{% if x %}{{ x }}{% endif %}",
    "{{ x ~ y }}",
    "{{ 'a' }}{{ x }}",
    "{{ x }}" * 3,
]

VALUES: list[Any] = [
    "plain",
    "",
    "ünïcödé ☃ 𝄞",
    "line\nbreak\ttab \x00 nul \x1b[31m escape",
    "{{ not a template }}",
    0,
    -12345678901234567890,
    10**5000,
    3.5,
    -0.0,
    1e300,
    float("nan"),
    float("inf"),
    True,
    False,
    None,
    [1, "two"],
    {"a": 1},
    Markup("<b>markup</b>"),
    "x" * (MAX_RENDERED_CHARS // 3 + 1),
]


class _Text(str):
    """A str subclass, whose str() may differ from itself."""

    def __str__(self) -> str:
        return "subclassed"


def _contexts() -> list[dict[Any, Any]]:
    brand = {"name": "Acme", "colors": {"primary": "#E4572E", "accent": "#2B2D42"}}
    out: list[dict[Any, Any]] = []
    for value in [*VALUES, _Text("sub")]:
        out.append({"x": value, "y": "y", "brand": brand, "d": {"key": value, "items": 1}})
    out.append({"x": "a", "y": 2, "brand": {"name": 5, "colors": {"primary": "not a color"}}})
    out.append({"x": "a", "y": "b", "brand": brand, "d": {"nested": {"deeper": "deep"}}})
    out.append({"x": "a", "y": "b", 1: "a key that is not text"})
    out.append({"y": "b", "brand": brand, "d": ["a list, not a mapping"]})
    return out


@pytest.mark.parametrize("source", TEMPLATES)
def test_direct_and_jinja_render_the_same_text_or_the_same_error(source: str) -> None:
    fast, plain = engine(direct=True), engine(direct=False)
    for ctx in _contexts():
        assert outcome(fast, source, ctx) == outcome(plain, source, ctx), (source, ctx)


def test_a_template_that_only_prints_values_takes_the_direct_path() -> None:
    engine = TemplateEngine(None)
    prompt = engine.inline("tile-{{ x }}: {{ brand.colors.primary | color_name }}", HERE)
    assert prompt.direct is not None
    ctx = {"x": 3, "brand": {"colors": {"primary": "#E4572E"}}}
    assert prompt.direct.render(ctx) == prompt.render(ctx) == "tile-3: orange red"


@pytest.mark.parametrize(
    "source",
    [
        "{% if x %}a{% endif %}",
        "{% for i in xs %}{{ i }}{% endfor %}",
        "{{ x ~ y }}",
        "{{ x | truncate(3) }}",
        "{{ x['key'] }}",
        "{{ d.items }}",
        "{{ self }}",
        "{{ x + 1 }}",
        "{% set y = 1 %}{{ y }}",
        "{{ x(1) }}",
    ],
)
def test_a_template_with_anything_but_printing_is_left_to_jinja(source: str) -> None:
    assert direct_template(TemplateEngine(None).env, source) is None


def test_the_direct_path_hands_back_what_it_cannot_be_sure_of() -> None:
    engine = TemplateEngine(None)
    direct = direct_template(engine.env, "{{ x }}")
    assert direct is not None
    for ctx in ({}, {"x": None}, {"x": [1]}, {"x": Markup("m")}, {"x": _Text("s")}):
        assert direct.render(ctx) is UNSURE


def test_the_direct_path_stops_at_the_output_limit_where_jinja_reports_it() -> None:
    big = "x" * (MAX_RENDERED_CHARS // 2 + 1)
    fast, plain = engine(direct=True), engine(direct=False)
    kind, said = outcome(fast, "{{ x }}{{ x }}", {"x": big})
    assert kind == "error" and "over 200,000 characters" in said
    assert (kind, said) == outcome(plain, "{{ x }}{{ x }}", {"x": big})


def test_the_direct_path_spends_the_loads_rendering_time() -> None:
    now = [0.0]
    engine = TemplateEngine(None, clock=lambda: now[0], render_seconds=1.0)
    prompt = engine.inline("{{ x }}", HERE)
    assert prompt.render({"x": "a"}) == "a"
    now[0] = 5.0  # past the load's budget: nothing renders, the direct path included
    engine.render_clock.seconds_left = 0.0
    with pytest.raises(SpecError, match="took over 1 seconds"):
        prompt.render({"x": "a"})


def test_filters_that_make_too_much_are_left_to_jinjas_meter() -> None:
    """Each filter's result counts against what one render may create (2,000,000): a
    chain of them on a long text goes over it while printing only 150,000 characters."""
    source = "{{ x" + " | upper | lower" * 7 + " }}"
    ctx = {"x": "a" * 150_000}
    assert direct_template(TemplateEngine(None).env, source) is not None
    fast, plain = engine(direct=True), engine(direct=False)
    kind, said = outcome(fast, source, ctx)
    assert kind == "error" and "over 2,000,000 characters" in said
    assert (kind, said) == outcome(plain, source, ctx)
    short = {"x": "a" * 1_000}
    assert outcome(fast, source, short) == outcome(plain, source, short) == ("text", "a" * 1_000)


def test_a_template_of_many_filters_is_left_to_jinja() -> None:
    env = TemplateEngine(None).env
    assert direct_template(env, "{{ x" + " | upper" * 64 + " }}") is not None
    assert direct_template(env, "{{ x" + " | upper" * 65 + " }}") is None
