"""Transparent backgrounds that work: the chroma route (a flat key color asked for and
keyed out here) when the model cannot, when the spec says so, or when the API refuses
``background: transparent`` with a 400; ``transparency: native`` never falls back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.errors import SpecError, SpecErrors
from pipeline.jobs import ApiJob
from pipeline.planner import PlanOptions, plan
from pipeline.planner.settings import key_color
from pipeline.providers.openai_catalog import openai_catalog
from pipeline.providers.openai_request import OPENAI_FORMAT
from pipeline.spec.loader import Project, collection_from_text
from pipeline.templating import TemplateEngine

ROOT = Path("/nonexistent/assetpipe-project")
MAGENTA = (255, 0, 255)


def plan_with_model_without_transparency(text: str):
    """Plan ``text`` with gpt-image-2.5-flare marked ``transparency = "no"``."""
    catalog = openai_catalog()
    model = dataclasses.replace(catalog.models["gpt-image-2.5-flare"], transparency="no")
    catalog = dataclasses.replace(catalog, models={**catalog.models, model.name: model})
    project = Project(
        root=ROOT,
        collections=(collection_from_text(text, ROOT / "specs/s.yaml", ROOT, ROOT / "specs"),),
    )
    opts = PlanOptions(
        catalog=catalog, request_format=OPENAI_FORMAT, provider="openai", today=dt.date(2026, 12, 1)
    )
    return plan(project, TemplateEngine(None), opts, lambda p: (_ for _ in ()).throw(OSError()))


CUTOUT = """\
assets:
  - id: coin
    prompt: "A gold coin"
    model: gpt-image-2.5-flare
    background: transparent
    size: 256x256
{extra}
"""


def test_a_model_without_transparency_plans_the_chroma_route_with_one_warning() -> None:
    """The request asks for an opaque background, its prompt names the key color, the
    key is keyed out first, and the plan says so once; the key is the request's own."""
    result = plan_with_model_without_transparency(CUTOUT.format(extra=""))
    (job,) = [j for j in result.jobs if isinstance(j, ApiJob)]
    assert job.params["background"] == "opaque"
    assert "flat solid #FF00FF background" in job.prompt
    assert job.chroma_key == "#FF00FF"
    assert job.ops[0].name == "chroma_key"
    assert job.fallback is None
    assert [w.message for w in result.warnings if "key color" in w.message] != []


def test_native_refuses_to_fall_back_at_its_line() -> None:
    """``transparency: native`` on a model that cannot: today's error, at the key."""
    with pytest.raises((SpecError, SpecErrors), match="cannot make transparent backgrounds"):
        plan_with_model_without_transparency(CUTOUT.format(extra="    transparency: native"))


def test_the_key_color_avoids_the_brand_and_the_prompt() -> None:
    """Far from the brand's colors, and not a color the prompt names."""
    assert key_color((), "a coin") == "#FF00FF"
    assert key_color(("#E020E0",), "a coin") != "#FF00FF"
    assert key_color((), "a magenta coin") == "#00FF00"
    assert key_color(("#10E010",), "a pink coin") == "#0000FF"


SPEC = """
assets:
  - id: coin
    prompt: "A gold coin"
    background: transparent
    size: 256x256
    quality: low
{extra}
"""


def edge_near_key(image: Image.Image, key=MAGENTA, distance=80) -> int:
    """Visible pixels within ``distance`` of the key in the band around the transparent
    region (pixels with a fully transparent neighbour within 3 px)."""
    alpha = image.getchannel("A")
    clear = alpha.point(lambda a: 255 if a == 0 else 0)
    from PIL import ImageFilter

    band = clear.filter(ImageFilter.MaxFilter(7))
    count = 0
    pixels = image.load()
    edge = band.load()
    for y in range(image.height):
        for x in range(image.width):
            r, g, b, a = pixels[x, y]
            if (
                a
                and edge[x, y]
                and max(abs(r - key[0]), abs(g - key[1]), abs(b - key[2])) < distance
            ):
                count += 1
    return count


def built(project) -> dict:
    doc = json.loads((project / "output/manifest.json").read_text())
    return {e["path"]: e for e in doc["entries"]}


def test_transparency_chroma_asks_the_fake_for_the_key_and_delivers_a_clean_cutout(
    project, run, api
) -> None:
    """What the fake received: the key color in the prompt and an opaque background;
    what was delivered: alpha passes, no key-colored pixel on the edges, and the
    manifest records the route."""
    project.gen({"specs/s.yaml": SPEC.format(extra="    transparency: chroma")})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    (request,) = [r for r in api.requests if r.endpoint == "generations"]
    assert "flat solid #FF00FF background" in request.fields["prompt"]
    assert request.fields["background"] == "opaque"
    entry = built(project)["s/coin.png"]
    assert entry["transparency"] == {"route": "chroma", "key": "#FF00FF"}
    assert {c["name"]: c["ok"] for c in entry["checks"]}["alpha"] is True
    with Image.open(project / "output/s/coin.png") as image:
        cut = image.convert("RGBA")
    assert cut.getpixel((2, 2))[3] == 0
    assert cut.getpixel((128, 128))[3] == 255
    assert edge_near_key(cut) == 0


def test_a_400_refusing_transparency_falls_back_to_the_chroma_route_once(project, run, api) -> None:
    """The API refuses ``background=transparent`` with a 400 naming the parameter: the
    job asks again, once, for the key color (its own request and key), and the next
    build asks nothing (the file is up to date)."""
    api.refuse_transparent = True
    project.gen({"specs/s.yaml": SPEC.format(extra="")})
    result = run("build", "--provider", "openai")
    assert result.code == 0, result.err
    asked = [r.fields for r in api.requests if r.endpoint == "generations"]
    assert [a["background"] for a in asked] == ["transparent", "opaque"]
    assert "flat solid #FF00FF background" in asked[1]["prompt"]
    assert "refused background: transparent" in result.err + result.out
    entry = built(project)["s/coin.png"]
    assert entry["transparency"] == {"route": "chroma", "key": "#FF00FF"}
    assert entry["status"] == "generated"
    api.reset_counters()
    again = run("build", "--provider", "openai")
    assert again.code == 0, again.err
    assert [r for r in api.requests if r.endpoint == "generations"] == []
    assert built(project)["s/coin.png"]["status"] == "up-to-date"


def test_native_fails_on_the_400_instead_of_falling_back(project, run, api) -> None:
    """``transparency: native``: the refusal is the job's failure; nothing else is asked."""
    api.refuse_transparent = True
    project.gen({"specs/s.yaml": SPEC.format(extra="    transparency: native")})
    result = run("build", "--provider", "openai")
    assert result.code != 0
    asked = [r.fields for r in api.requests if r.endpoint == "generations"]
    assert [a["background"] for a in asked] == ["transparent"]
    assert "transparency" not in built(project)["s/coin.png"]
