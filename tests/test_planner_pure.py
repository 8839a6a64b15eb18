"""The planner on plain data: spec text and file facts in memory, no project on disk.

The project root is a folder that does not exist, so any read from disk would fail:
these tests show the planner is a pure function of loaded specs, the template engine and
the injected file reader (the seam ``api.open_workspace`` fills with real files).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.errors import SpecError, SpecErrors
from pipeline.jobs import ApiJob, Plan, RenditionJob, SheetJob, api_cache_key, select
from pipeline.planner import FileFacts, PlanOptions, plan
from pipeline.providers.openai_catalog import openai_catalog
from pipeline.providers.openai_request import OPENAI_FORMAT
from pipeline.spec.loader import Project, collection_from_text
from pipeline.templating import TemplateEngine

ROOT = Path("/nonexistent/assetpipe-project")
SPECS = ROOT / "specs"
TODAY = dt.date(2026, 11, 24)
LOGO = FileFacts(sha256="c" * 64, width=1024, height=1024, format="png", bytes=2048)


def read_file(path: Path) -> FileFacts:
    """The injected file reader: facts for the one input file this project has."""
    if path.resolve() == ROOT / "art" / "logo.png":
        return LOGO
    raise FileNotFoundError(path)


def plan_of(specs: dict[str, str]) -> Plan:
    project = Project(
        root=ROOT,
        collections=tuple(
            collection_from_text(text, SPECS / name, ROOT, SPECS) for name, text in specs.items()
        ),
    )
    opts = PlanOptions(
        catalog=openai_catalog(), request_format=OPENAI_FORMAT, provider="openai", today=TODAY
    )
    return plan(project, TemplateEngine(None), opts, read_file)


ICONS = """\
brand:
  name: Emberfall
  colors: {ember: "#E4572E", night: "#2B2D42"}
defaults: {quality: low}
assets:
  - id: "{{ item }}-icon"
    matrix: {item: [sword, bow]}
    prompt: "a {{ item }} icon in {{ brand.colors.ember }}"
    size: 1024x1024
    variants: 2
    renditions:
      - {size: 64x64, format: webp}
  - id: crest
    prompt: "the crest, on {{ brand.colors.night }}"
    size: 1024x1024
    edit:
      images: [{file: ../art/logo.png}]
  - id: crest-night
    prompt: "the crest at night"
    size: 1024x1024
    edit:
      images: [crest]
sheets:
  - id: atlas
    assets: ["*-icon"]
"""


def test_a_project_plans_from_text_alone():
    result = plan_of({"icons.yaml": ICONS})
    by_id = result.by_id
    assert list(by_id) == [
        "icons/sword-icon",
        "icons/sword-icon@64x64.webp",
        "icons/sword-icon#2",
        "icons/sword-icon#2@64x64.webp",
        "icons/bow-icon",
        "icons/bow-icon@64x64.webp",
        "icons/bow-icon#2",
        "icons/bow-icon#2@64x64.webp",
        "icons/crest",
        "icons/crest-night",
        "icons/atlas",
    ]
    sword = by_id["icons/sword-icon"]
    assert isinstance(sword, ApiJob)
    assert sword.prompt == "a sword icon in #E4572E"
    assert sword.params["quality"] == "low"
    assert sword.palette == ("#E4572E", "#2B2D42")
    assert sword.output_path == "icons/sword-icon.png"
    small = by_id["icons/sword-icon@64x64.webp"]
    assert isinstance(small, RenditionJob)
    assert small.parent == "icons/sword-icon"
    assert small.op.as_dict() == {"width": 64, "height": 64, "fit": "cover", "format": "webp"}
    sheet = by_id["icons/atlas"]
    assert isinstance(sheet, SheetJob)
    assert sheet.depends_on == ("icons/sword-icon", "icons/bow-icon")
    assert sheet.frames == ("sword-icon.png", "bow-icon.png")


def test_keys_of_file_inputs_are_known_at_plan_time_and_others_are_not():
    by_id = plan_of({"icons.yaml": ICONS}).by_id
    crest, night = by_id["icons/crest"], by_id["icons/crest-night"]
    assert isinstance(crest, ApiJob) and isinstance(night, ApiJob)
    assert crest.inputs[0].sha256 == LOGO.sha256
    assert crest.cache_key == api_cache_key(crest, [LOGO.sha256], None)
    assert night.depends_on == ("icons/crest",)
    assert night.cache_key is None  # its input is made during the build


def test_selection_keeps_what_a_job_needs():
    result = plan_of({"icons.yaml": ICONS})
    chosen = [j.id for j in select(result, ["icons/crest-night"]).jobs]
    assert chosen == ["icons/crest", "icons/crest-night"]


def test_a_mistake_is_a_spec_error_at_its_line():
    with pytest.raises((SpecError, SpecErrors)) as caught:
        plan_of({"icons.yaml": "assets:\n  - id: a\n    prompt: '{{ colour }}'\n"})
    error = caught.value
    rendered = (error.errors[0] if isinstance(error, SpecErrors) else error).render()
    assert rendered.startswith("specs/icons.yaml:3:13: template error: 'colour' is undefined")
