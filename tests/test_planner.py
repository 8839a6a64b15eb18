"""The planner as plain data: generated projects in, jobs (ids, paths, edges, settings,
prompts, cache keys) out, through ``pipeline.api.open_workspace`` as the CLI calls it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import pytest
from images import png

from pipeline import api
from pipeline.jobs import Job

TODAY = dt.date(2026, 11, 24)

API_JOB_KEYS = {
    "id",
    "kind",
    "collection",
    "asset",
    "variant",
    "model",
    "size",
    "requested_size",
    "quality",
    "background",
    "format",
    "prompt",
    "depends_on",
    "status",
    "cache_key",
    "estimated_cost_usd",
}
"""The job keys of ``plan --json`` named in docs/cli.md."""


def workspace(project: Any, **request: Any) -> api.Workspace:
    """Plan the project as ``assetpipe plan`` would, on a fixed day."""
    return api.open_workspace(api.Request(project=project.root, today=TODAY, **request))


def jobs(project: Any, **request: Any) -> dict[str, Job]:
    """The planned jobs by id, in plan order."""
    return {job.id: job for job in workspace(project, **request).plan.jobs}


def only_job(project: Any, **request: Any) -> Job:
    """The one API job of a single-asset project."""
    api_jobs = [j for j in workspace(project, **request).plan.jobs if j.is_api]
    assert len(api_jobs) == 1, [j.id for j in api_jobs]
    return api_jobs[0]


# -- matrix, ids, paths ---------------------------------------------------------------------


def test_matrix_expands_with_exclude_and_include(project):
    """3 items x 2 rarities, minus one exclude, plus one include: 6 assets in written order."""
    project.gen(
        {
            "specs/icons.yaml": """
            assets:
              - id: "icon-{{ item }}-{{ rarity }}"
                prompt: "a {{ rarity }} {{ item }}"
                matrix:
                  item: [sword, shield, potion]
                  rarity: [common, legendary]
                  exclude:
                    - {item: potion, rarity: legendary}
                  include:
                    - {item: bow, rarity: common}
                    - {item: sword, rarity: common}
            """
        }
    )
    ids = list(jobs(project))
    assert ids == [
        "icons/icon-sword-common",
        "icons/icon-sword-legendary",
        "icons/icon-shield-common",
        "icons/icon-shield-legendary",
        "icons/icon-potion-common",
        "icons/icon-bow-common",
    ]
    assert jobs(project)["icons/icon-bow-common"].prompt == "a common bow"


def test_exclude_matches_on_the_keys_it_names(project):
    """An exclude naming one variable drops every combination with that value."""
    project.gen(
        {
            "specs/icons.yaml": """
            assets:
              - id: "i-{{ a }}-{{ b }}"
                prompt: x
                matrix:
                  a: [1, 2]
                  b: [x, y, z]
                  exclude: [{b: y}]
            """
        }
    )
    assert list(jobs(project)) == ["icons/i-1-x", "icons/i-1-z", "icons/i-2-x", "icons/i-2-z"]


def test_output_paths_and_job_ids(project):
    """Variant 1 is <asset>.<ext>, variant k is <asset>.v<k>.<ext> with job id asset#k,
    renditions are <asset>[.v<k>]@WxH.<ext>, jpeg is written .jpg, and a nested spec file
    is a nested collection."""
    project.gen(
        {
            "specs/icons.yaml": """
            assets:
              - id: sword
                prompt: a sword
                variants: 2
                renditions:
                  - {size: 64x64, format: webp}
            """,
            "specs/ui/banners.yaml": """
            assets:
              - id: hero
                prompt: a banner
                format: jpeg
                compression: 80
            """,
        }
    )
    by_id = jobs(project)
    paths = {job_id: job.output_path for job_id, job in by_id.items()}
    assert paths == {
        "icons/sword": "icons/sword.png",
        "icons/sword@64x64.webp": "icons/sword@64x64.webp",
        "icons/sword#2": "icons/sword.v2.png",
        "icons/sword#2@64x64.webp": "icons/sword.v2@64x64.webp",
        "ui/banners/hero": "ui/banners/hero.jpg",
    }
    second = by_id["icons/sword#2"]
    assert (second.collection, second.asset, second.variant, second.kind) == (
        "icons",
        "sword",
        2,
        "generate",
    )
    assert by_id["ui/banners/hero"].params["output_format"] == "jpeg"
    assert by_id["ui/banners/hero"].params["output_compression"] == 80


def test_renditions_depend_on_their_variant(project):
    """Each variant gets its own renditions; a rendition in the asset's format has no
    format suffix in its id, and depends on exactly its source job."""
    project.gen(
        {
            "specs/icons.yaml": """
            assets:
              - id: sword
                prompt: a sword
                variants: 2
                renditions:
                  - {size: 256x256}
                  - {size: 64x64, format: webp, fit: contain}
            """
        }
    )
    renditions = {j.id: j for j in jobs(project).values() if j.kind == "rendition"}
    assert {job_id: j.depends_on for job_id, j in renditions.items()} == {
        "icons/sword@256x256": ("icons/sword",),
        "icons/sword@64x64.webp": ("icons/sword",),
        "icons/sword#2@256x256": ("icons/sword#2",),
        "icons/sword#2@64x64.webp": ("icons/sword#2",),
    }
    small = renditions["icons/sword#2@64x64.webp"]
    assert small.kind == "rendition"
    assert small.op.as_dict() == {
        "width": 64,
        "height": 64,
        "fit": "contain",
        "format": "webp",
    }
    assert small.size == (64, 64)
    assert small.cache_key is None


def test_edit_depends_on_the_parent_variant_job(project):
    """An edit of hero#2 depends on the job id 'chars/hero#2'; every variant of the edit
    does; a {file: ...} input adds no edge."""
    project.gen(
        {
            "specs/chars.yaml": """
            assets:
              - id: hero
                prompt: a hero
                variants: 2
              - id: hero-winter
                prompt: the hero in winter
                variants: 2
                edit:
                  images: ["hero#2", {file: snow.png}]
            """,
            "specs/snow.png": png(1024, 1024),
        }
    )
    by_id = jobs(project)
    for job_id in ("chars/hero-winter", "chars/hero-winter#2"):
        edit = by_id[job_id]
        assert edit.kind == "edit"
        assert edit.depends_on == ("chars/hero#2",)
        assert [i.job for i in edit.inputs] == ["chars/hero#2", None]
        assert edit.inputs[1].path == "specs/snow.png"


def test_edit_can_reference_another_collection(project):
    """'icons/sword' names the asset of another collection; the edge uses its job id."""
    project.gen(
        {
            "specs/icons.yaml": """
            assets:
              - id: sword
                prompt: a sword
            """,
            "specs/scenes.yaml": """
            assets:
              - id: duel
                prompt: two heroes fight with this sword
                edit:
                  images: [icons/sword]
            """,
        }
    )
    assert jobs(project)["scenes/duel"].depends_on == ("icons/sword",)


def test_plan_order_puts_inputs_before_dependents(project):
    """An edit written before its input (and a chain of edits) still plans inputs first."""
    project.gen(
        {
            "specs/chars.yaml": """
            assets:
              - id: hero-armor
                prompt: armor
                edit:
                  images: [hero-winter]
              - id: hero-winter
                prompt: winter
                edit:
                  images: [hero]
              - id: hero
                prompt: a hero
                renditions:
                  - {size: 64x64}
            """
        }
    )
    order = list(jobs(project))
    for job_id, job in jobs(project).items():
        for dep in job.depends_on:
            assert order.index(dep) < order.index(job_id), (dep, job_id, order)
    assert order.index("chars/hero") < order.index("chars/hero-winter")
    assert order.index("chars/hero-winter") < order.index("chars/hero-armor")


def test_only_pulls_in_dependencies(project):
    """--only selects matching jobs, their renditions and everything they depend on —
    and nothing else."""
    project.gen(
        {
            "specs/chars.yaml": """
            assets:
              - id: hero
                prompt: a hero
                variants: 2
                renditions:
                  - {size: 64x64}
              - id: hero-winter
                prompt: winter
                edit:
                  images: ["hero#2"]
                renditions:
                  - {size: 128x128}
              - id: villain
                prompt: a villain
            """
        }
    )
    ws = workspace(project, only=("chars/hero-winter",))
    assert [j.id for j in ws.plan.jobs] == [
        "chars/hero#2",
        "chars/hero-winter",
        "chars/hero-winter@128x128",
    ]
    assert len(ws.full_plan.jobs) == 7
    globbed = workspace(project, only=("chars/vil*",))
    assert [j.id for j in globbed.plan.jobs] == ["chars/villain"]


# -- settings -------------------------------------------------------------------------------


def test_settings_precedence(project):
    """model: asset > spec defaults > assetpipe.yaml > built-in; quality: asset > defaults
    > built-in medium."""
    project.gen(
        {
            "assetpipe.yaml": "model: gpt-image-2\n",
            "specs/with_defaults.yaml": """
            defaults:
              model: gpt-image-2.5-sunburst
              quality: high
            assets:
              - id: own
                prompt: x
                model: gpt-image-2.6-flare
                quality: low
              - id: inherits
                prompt: x
            """,
            "specs/plain.yaml": """
            assets:
              - id: project
                prompt: x
            """,
        }
    )
    by_id = jobs(project)
    assert (by_id["with_defaults/own"].model, by_id["with_defaults/own"].params["quality"]) == (
        "gpt-image-2.6-flare",
        "low",
    )
    inherits = by_id["with_defaults/inherits"]
    assert (inherits.model, inherits.params["quality"]) == ("gpt-image-2.5-sunburst", "high")
    from_project = by_id["plain/project"]
    assert (from_project.model, from_project.params["quality"]) == ("gpt-image-2", "medium")


def test_built_in_defaults(project):
    """With no settings anywhere: gpt-image-2.5-flare, quality medium, background auto,
    png, 1024x1024, the preview provider."""
    project.gen(
        {
            "specs/a.yaml": """
            assets:
              - id: a
                prompt: x
            """
        }
    )
    job = only_job(project)
    assert job.model == "gpt-image-2.5-flare"
    assert job.provider == "preview"
    assert dict(job.params) == {
        "size": "1024x1024",
        "quality": "medium",
        "background": "auto",
        "output_format": "png",
        "n": 1,
    }
    assert job.size == job.requested_size == (1024, 1024)


def test_model_flag_beats_assetpipe_yaml_but_not_the_spec(project):
    """--model (a flag) overrides assetpipe.yaml; a spec's model still wins over both."""
    project.gen(
        {
            "assetpipe.yaml": "model: gpt-image-2\n",
            "specs/a.yaml": """
            assets:
              - id: a
                prompt: x
              - id: b
                prompt: x
                model: gpt-image-2.5-sunburst
            """,
        }
    )
    by_id = jobs(project, flags={"model": "gpt-image-2.6-sunburst"})
    assert by_id["a/a"].model == "gpt-image-2.6-sunburst"
    assert by_id["a/b"].model == "gpt-image-2.5-sunburst"


def test_every_string_is_a_template(project):
    """aspect, size, model, quality, tags and edit references render with the matrix."""
    project.gen(
        {
            "specs/c.yaml": """
            vars:
              base: hero
            assets:
              - id: hero
                prompt: a hero
              - id: "shot-{{ name }}"
                prompt: "shot {{ name }}"
                aspect: "{{ ratio }}"
                quality: "{{ q }}"
                tags: ["{{ name }}"]
                matrix:
                  name: [square, tall]
                  ratio: ["1:1", "9:16"]
                  q: [low]
                  exclude:
                    - {name: square, ratio: "9:16"}
                    - {name: tall, ratio: "1:1"}
              - id: "edit-{{ k }}"
                prompt: edit
                size: "{{ w }}x{{ w }}"
                edit:
                  images: ["{{ base }}"]
                matrix:
                  k: [a]
                  w: [512]
            """
        }
    )
    by_id = jobs(project)
    square, tall = by_id["c/shot-square"], by_id["c/shot-tall"]
    assert square.size == (1024, 1024)
    assert tall.size[0] * 16 == tall.size[1] * 9
    assert (square.params["quality"], square.tags) == ("low", ("square",))
    edit = by_id["c/edit-a"]
    assert edit.size == (512, 512)
    assert edit.depends_on == ("c/hero",)


def test_prompt_sees_asset_vars_and_matrix(project):
    """The prompt sees asset.id/size/aspect/variants/collection, vars (flat and under
    vars.), and the matrix values; a template file sees the same."""
    project.gen(
        {
            "specs/a.yaml": """
            vars:
              style: flat
            assets:
              - id: "icon-{{ item }}"
                prompt: >-
                  {{ asset.id }} {{ asset.collection }} {{ asset.size }} {{ asset.variants }}
                  {{ style }} {{ vars.style }} {{ item }}
                size: 64x64
                variants: 2
                matrix:
                  item: [sword]
              - id: from-file
                template: t.j2
                aspect: "3:2"
            """,
            "templates/t.j2": "{{ asset.id }} at {{ asset.aspect }} in {{ style }}\n",
        }
    )
    by_id = jobs(project)
    assert by_id["a/icon-sword"].prompt == "icon-sword a 64x64 2 flat flat sword"
    assert by_id["a/from-file"].prompt == "from-file at 3:2 in flat"


def test_brand_colors_and_filters(project):
    """Brand colors are normalized to upper-case 6 digits (#e52 -> #EE5522), and the
    color_name, rgb and palette filters render them as prose."""
    project.gen(
        {
            "brands/acme.yaml": """
            name: Acme
            colors:
              primary: "#e52"
              ink: "#000000"
            """,
            "specs/a.yaml": """
            brand: ../brands/acme.yaml
            assets:
              - id: a
                prompt: >-
                  {{ brand.name }} {{ brand.colors.primary }}
                  | {{ brand.colors.primary | color_name }}
                  | {{ brand.colors.primary | rgb }}
                  | {{ brand | palette }}
            """,
        }
    )
    job = only_job(project)
    assert job.prompt == (
        "Acme #EE5522 | orange red | 238, 85, 34 | "
        "primary #EE5522 (orange red), ink #000000 (black)"
    )
    assert job.palette == ("#EE5522", "#000000")


# -- cache keys -----------------------------------------------------------------------------

BASE_SPEC = """
assets:
  - id: sword
    prompt: a sword
    size: 512x512
    quality: medium
    variants: 2
"""


def key_of(project: Any, spec: str = BASE_SPEC, path: str = "specs/icons.yaml", **kw: Any) -> str:
    """The cache key of variant 1 of the one asset of ``spec`` written at ``path``."""
    for old in (project.root / "specs").rglob("*.yaml"):
        old.unlink()
    project.gen({path: spec})
    job = next(j for j in workspace(project, **kw).plan.jobs if j.variant == 1 and j.is_api)
    assert job.cache_key is not None
    return job.cache_key


def test_cache_key_is_set_for_generate_and_none_for_edits_of_assets(project):
    """A generate job has its key at plan time; an edit of another asset's output does not
    (its input bytes do not exist yet); an edit of files only does."""
    project.gen(
        {
            "specs/a.yaml": """
            assets:
              - id: base
                prompt: x
              - id: of-asset
                prompt: y
                edit:
                  images: [base]
              - id: of-file
                prompt: z
                edit:
                  images: [{file: in.png}]
            """,
            "specs/in.png": png(64, 64),
        }
    )
    by_id = jobs(project)
    assert by_id["a/base"].cache_key is not None
    assert by_id["a/of-asset"].cache_key is None
    assert by_id["a/of-file"].cache_key is not None


def test_cache_key_is_stable_between_plans(project):
    """Planning the same project twice gives the same keys."""
    assert key_of(project) == key_of(project)


@pytest.mark.parametrize(
    ("change", "old", "new"),
    [
        ("prompt", "prompt: a sword", "prompt: a sabre"),
        ("size", "size: 512x512", "size: 1536x1024"),
        ("aspect", "size: 512x512", 'aspect: "16:9"'),
        ("quality", "quality: medium", "quality: high"),
        ("model", "quality: medium", "quality: medium\n    model: gpt-image-2"),
        ("background", "quality: medium", "quality: medium\n    background: opaque"),
        ("format", "quality: medium", "quality: medium\n    format: webp"),
    ],
)
def test_cache_key_changes_with_the_request(project, change: str, old: str, new: str):
    """Changing what is sent (prompt, request size, quality, model, background, format)
    changes the key."""
    assert old in BASE_SPEC
    assert key_of(project) != key_of(project, BASE_SPEC.replace(old, new)), change


def test_cache_key_is_the_request_not_the_local_crop(project):
    """512x512 and 768x768 are both below the model's pixel minimum, so both request the
    same native size and are cropped locally: one paid request, one key."""
    small = key_of(project)
    larger = key_of(project, BASE_SPEC.replace("size: 512x512", "size: 768x768"))
    assert small == larger
    by_id = jobs(project)
    assert by_id["icons/sword"].size == (768, 768)
    assert by_id["icons/sword"].requested_size != (768, 768)


def test_cache_key_changes_with_provider(project, monkeypatch: pytest.MonkeyPatch):
    """The provider is part of the key: preview images never satisfy a real build."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    preview = key_of(project, flags={"provider": "preview"})
    openai = key_of(project, flags={"provider": "openai"})
    assert preview != openai


def test_cache_key_changes_with_variant(project):
    """Variants are separate paid requests: each has its own key."""
    project.gen({"specs/icons.yaml": BASE_SPEC})
    by_id = jobs(project)
    assert by_id["icons/sword"].cache_key != by_id["icons/sword#2"].cache_key


def test_cache_key_changes_with_input_image_bytes(project):
    """An edit of a file is keyed by the file's bytes, not its name."""
    spec = """
    assets:
      - id: e
        prompt: edit it
        edit:
          images: [{file: in.png}]
    """
    project.gen({"specs/in.png": png(64, 64, (1, 2, 3, 255))})
    first = key_of(project, spec)
    project.gen({"specs/in.png": png(64, 64, (9, 9, 9, 255))})
    assert key_of(project, spec) != first


def test_cache_key_ignores_spec_location_and_key_order(project):
    """Renaming or moving the spec file, reordering the asset's keys and renaming the
    asset leave the key unchanged (no paths, no ids in the key)."""
    original = key_of(project)
    moved = key_of(project, path="specs/deep/er/weapons.yaml")
    reordered = key_of(
        project,
        """
        assets:
          - variants: 2
            quality: medium
            size: 512x512
            prompt: a sword
            id: sword
        """,
    )
    assert original == moved == reordered
    renamed = key_of(project, BASE_SPEC.replace("id: sword", "id: sabre"))
    assert renamed == original


def test_cache_key_ignores_where_a_setting_comes_from(project):
    """quality: medium from defaults, from the asset or built in gives one request, one key."""
    explicit = key_of(project)
    from_defaults = key_of(
        project,
        """
        defaults:
          quality: medium
        assets:
          - id: sword
            prompt: a sword
            size: 512x512
            variants: 2
        """,
    )
    built_in = key_of(project, BASE_SPEC.replace("    quality: medium\n", ""))
    assert explicit == from_defaults == built_in


# -- plan --json ----------------------------------------------------------------------------


def test_plan_json_has_the_design_keys(project, run):
    """plan --json prints {"jobs": [...], "totals": {...}} with every job key
    docs/cli.md names, a key for generate jobs, and the edit's dependency."""
    project.gen(
        {
            "specs/a.yaml": """
            assets:
              - id: hero
                prompt: a hero
                renditions:
                  - {size: 64x64}
              - id: hero-2
                prompt: again
                edit:
                  images: [hero]
            """
        }
    )
    result = run("plan", "--json")
    assert result.code == 0, result.err
    doc: Mapping[str, Any] = json.loads(result.out)
    assert {"jobs", "totals"} <= set(doc)
    assert isinstance(doc["totals"], dict)
    by_id = {job["id"]: job for job in doc["jobs"]}
    assert list(by_id) == ["a/hero", "a/hero@64x64", "a/hero-2"]
    for job in doc["jobs"]:
        assert set(job) >= API_JOB_KEYS, API_JOB_KEYS - set(job)
    hero = by_id["a/hero"]
    assert hero["kind"] == "generate"
    assert hero["size"] == hero["requested_size"] == "1024x1024"
    assert (hero["quality"], hero["background"], hero["format"]) == ("medium", "auto", "png")
    assert isinstance(hero["cache_key"], str)
    assert len(hero["cache_key"]) == 64
    assert hero["estimated_cost_usd"] > 0
    assert by_id["a/hero@64x64"]["depends_on"] == ["a/hero"]
    assert by_id["a/hero-2"]["depends_on"] == ["a/hero"]
    assert by_id["a/hero-2"]["kind"] == "edit"
