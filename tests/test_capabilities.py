"""Per-model capabilities in the model table: a setting a model cannot do is a plan-time
error at the spec's file:line that names the models that can, before anything is paid."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.errors import SpecError, SpecErrors
from pipeline.jobs import ApiJob
from pipeline.planner import PlanOptions, plan
from pipeline.providers.openai_catalog import openai_catalog
from pipeline.providers.openai_request import OPENAI_FORMAT
from pipeline.spec.loader import Project, collection_from_text
from pipeline.templating import TemplateEngine

ROOT = Path("/nonexistent/assetpipe-project")
TODAY = dt.date(2026, 11, 25)


def planned(text: str):
    """Plan ``text`` as ``specs/s.yaml`` with OpenAI's table; no file is readable."""
    project = Project(
        root=ROOT,
        collections=(collection_from_text(text, ROOT / "specs/s.yaml", ROOT, ROOT / "specs"),),
    )
    opts = PlanOptions(
        catalog=openai_catalog(), request_format=OPENAI_FORMAT, provider="openai", today=TODAY
    )
    return plan(project, TemplateEngine(None), opts, lambda p: (_ for _ in ()).throw(OSError()))


def refusal(text: str) -> str:
    """The rendered error of planning ``text``."""
    with pytest.raises((SpecError, SpecErrors)) as info:
        planned(text)
    return str(info.value)


def test_the_table_names_each_capability_per_model() -> None:
    """2.6 plans with complexity and takes markup but is not batched (unconfirmed); 2.5
    takes markup; gpt-image-2 and older take neither; retired DALL-E takes one image."""
    models = openai_catalog().models
    six = models["gpt-image-2.6-flare"]
    assert (six.batch, six.svg, six.gif, six.complexity, six.markup) == (
        False,
        True,
        True,
        True,
        True,
    )
    five = models["gpt-image-2.5-flare"]
    assert (five.batch, five.complexity, five.markup) == (True, False, True)
    two = models["gpt-image-2"]
    assert (two.batch, two.complexity, two.markup, two.transparency) == (
        True,
        False,
        False,
        "preview",
    )
    old = models["gpt-image-1.5"]
    assert (old.svg, old.gif, old.batch) == (False, False, True)
    assert models["dall-e-2"].max_input_images == 1


def test_complexity_on_a_model_without_it_names_the_models_that_can() -> None:
    """At the ``complexity`` line, with the models that take it."""
    text = """\
assets:
  - id: logo
    prompt: "A fox logo"
    model: gpt-image-2.5-flare
    complexity: high
"""
    message = refusal(text)
    assert message == (
        "specs/s.yaml:5:17: gpt-image-2.5-flare does not "
        "take complexity\n  hint: models that can: gpt-image-2.6-sunburst, "
        "gpt-image-2.6-flare; or remove it"
    )


def test_complexity_from_defaults_points_at_the_defaults() -> None:
    """A ``complexity`` inherited from ``defaults:`` is reported where it is written."""
    text = """\
defaults:
  complexity: low
assets:
  - id: logo
    prompt: "A fox logo"
    model: gpt-image-2
"""
    assert refusal(text).startswith("specs/s.yaml:2:15: gpt-image-2 does not take complexity")


def test_complexity_goes_into_the_request_on_a_model_that_takes_it() -> None:
    """2.6 sends it as the ``complexity`` parameter."""
    result = planned("""\
assets:
  - id: logo
    prompt: "A fox logo"
    model: gpt-image-2.6-flare
    size: 1024x1024
    complexity: medium
""")
    (job,) = [j for j in result.jobs if isinstance(j, ApiJob)]
    assert job.params["complexity"] == "medium"


def test_markup_on_a_model_without_it_names_the_models_that_can() -> None:
    """At ``edit.markup``, before any file is read, with the 2.5 and 2.6 models."""
    text = """\
assets:
  - id: logo
    prompt: "Make the fox blue"
    model: gpt-image-2
    edit:
      images: [{file: fox.png}]
      markup: {file: fox-markup.png}
"""
    message = refusal(text)
    assert message.startswith(
        "specs/s.yaml:7:15: gpt-image-2 does not take a markup "
        "image\n  hint: models that can: gpt-image-2.6-sunburst, gpt-image-2.6-flare, "
        "gpt-image-2.5-sunburst, "
    )
    assert "gpt-image-1.5" not in message


def test_markup_with_a_mask_is_refused() -> None:
    """The API takes one or the other."""
    text = """\
assets:
  - id: logo
    prompt: "Make the fox blue"
    model: gpt-image-2.5-flare
    edit:
      images: [{file: fox.png}]
      mask: {file: mask.png}
      markup: {file: fox-markup.png}
"""
    assert refusal(text) == (
        "specs/s.yaml:8:15: an edit takes a mask or a markup "
        "image, not both\n  hint: remove 'mask:' or 'markup:'"
    )


@pytest.mark.parametrize("fmt", ["svg", "gif"])
def test_svg_and_gif_on_a_model_without_them_name_the_models_that_can(fmt: str) -> None:
    """gpt-image-1.5 has neither format; the hint lists the 2.x models."""
    text = f"""\
assets:
  - id: logo
    prompt: "A fox logo"
    model: gpt-image-1.5
    size: 1024x1024
    format: {fmt}
"""
    message = refusal(text)
    assert message.startswith(
        f"specs/s.yaml:6:13: gpt-image-1.5 cannot make format "
        f"{fmt}\n  hint: models that can: gpt-image-2.6-sunburst, gpt-image-2.6-flare, "
    )
    assert "gpt-image-1-mini" not in message


def test_more_input_images_than_a_model_takes_name_the_models_that_take_them() -> None:
    """Seventeen images: no model takes them, and the hint says so."""
    images = ", ".join(f"{{file: i{k}.png}}" for k in range(17))
    text = f"""\
assets:
  - id: logo
    prompt: "Combine these"
    model: gpt-image-2.5-flare
    edit:
      images: [{images}]
"""
    assert refusal(text) == (
        "specs/s.yaml:6:15: 17 input images; gpt-image-2.5-flare "
        "takes at most 16\n  hint: list at most 16 images (the mask is not one of them); "
        "models that take 17: none"
    )


def test_native_transparency_on_a_model_without_it_names_the_models_that_can() -> None:
    """The chroma route stays the default; ``native`` on a model that cannot is refused
    with the models that can (the retired DALL-E models are not among them)."""
    import dataclasses

    catalog = openai_catalog()
    flare = dataclasses.replace(catalog.models["gpt-image-2.5-flare"], transparency="no")
    catalog = dataclasses.replace(catalog, models={**catalog.models, flare.name: flare})
    project = Project(
        root=ROOT,
        collections=(
            collection_from_text(
                """\
assets:
  - id: coin
    prompt: "A gold coin"
    model: gpt-image-2.5-flare
    background: transparent
    transparency: native
""",
                ROOT / "specs/s.yaml",
                ROOT,
                ROOT / "specs",
            ),
        ),
    )
    opts = PlanOptions(
        catalog=catalog, request_format=OPENAI_FORMAT, provider="openai", today=TODAY
    )
    with pytest.raises((SpecError, SpecErrors)) as info:
        plan(project, TemplateEngine(None), opts, lambda p: (_ for _ in ()).throw(OSError()))
    message = str(info.value)
    assert "gpt-image-2.5-flare cannot make transparent backgrounds" in message
    assert "models that can: gpt-image-2.6-sunburst, gpt-image-2.6-flare, " in message
    assert "dall-e" not in message
    assert message.endswith("or transparency: chroma (a flat key color keyed out here)")
