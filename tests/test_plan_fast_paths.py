"""The quick paths a 100,000-job plan takes give what the general paths give.

Each quick path here is held equal to the path it stands in for, on values chosen to
tell them apart: a direct template's ``%`` layout against Jinja (literal ``%`` signs,
``%s`` and ``{}`` in the text, a shared mapping changed between renders), a shape's
:class:`~pipeline.jobs.keys.ApiKeys` against :func:`~pipeline.jobs.keys.api_key` (many
prompts over one hashed head, awkward fields, the same errors), a mold's generated
function against the constructor, the planner's resolved prompts with and without its
per-asset memo, and the ``plan --json`` line's remembered cost texts against
``json.dumps``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from template_kit import HERE, engine, outcome

from pipeline.api.reports import _JobLines, _priced, job_json, route_factor
from pipeline.hashing import CacheRequest
from pipeline.jobs import ApiJob
from pipeline.jobs import api_keys as keys_module
from pipeline.jobs.api_keys import ApiKeys, _api_payload, api_key
from pipeline.jobs.mold import Mold
from pipeline.planner.matrix import expand_matrix
from pipeline.planner.resolve import AssetMemo, base_context, resolve_asset
from pipeline.runner.freshness import JobState, _new_state
from pipeline.spec.loader import collection_from_text
from pipeline.templating import TemplateEngine
from pipeline.templating.direct import MAX_LOOKUPS, UNSURE, direct_template

# -- direct templates -------------------------------------------------------------------------

PERCENT_TEMPLATES = [
    "100% {{ x }}",
    "%s %d %% %(x)s {{ x }} %",
    "{} {0} {{ x }} {{ y }} %s",
    "% {{ brand.name }} %% {{ brand.colors.primary | color_name }} %s",
    "{{ x | upper }}% and {{ brand.colors.accent | rgb }}%%",
]

PERCENT_VALUES: list[Any] = ["%s", "%%", "{}", "50%", 7, 2.5, True, "ünï %(x)s"]


def _brand() -> dict[str, Any]:
    return {"name": "Ac%sme", "colors": {"primary": "#E4572E", "accent": "#2B2D42"}}


@pytest.mark.parametrize("source", PERCENT_TEMPLATES)
def test_percent_signs_in_literal_text_render_as_jinja_renders_them(source: str) -> None:
    fast, plain = engine(direct=True), engine(direct=False)
    direct = fast.inline(source, HERE).direct
    assert direct is not None
    for value in PERCENT_VALUES:
        ctx = {"x": value, "y": value, "brand": _brand()}
        assert direct.render(dict(ctx)) is not UNSURE  # the direct path answers itself
        assert outcome(fast, source, ctx) == outcome(plain, source, ctx), (source, value)


def test_a_shared_mapping_changed_between_renders_is_read_afresh() -> None:
    """Nothing is kept by the identity of a mapping: a template (or anything else) may
    change a shared one between two renders, and the second render prints the change."""
    source = "{{ brand.name }} in {{ brand.colors.primary | color_name }}"
    fast, plain = engine(direct=True), engine(direct=False)
    brand = _brand()
    ctx = {"brand": brand}
    first = fast.inline(source, HERE).render(ctx)
    brand["name"] = "Other"
    brand["colors"]["primary"] = "#2B2D42"
    second = fast.inline(source, HERE).render(ctx)
    assert first != second
    assert second == plain.inline(source, HERE).render(ctx)


def test_templates_of_one_structure_print_each_their_own_values() -> None:
    """Templates with as many keys and filters per value share their compiled code; each
    prints its own names, keys, filters and text (which is never compiled as code)."""
    fast = engine(direct=True)
    ctx = {"a": {"b": "Bee"}, "c": {"d": "Dee"}, "x": "'); raise SystemExit('"}
    first = fast.inline("{{ a.b | upper }} \"'); {{ x }}", HERE)
    second = fast.inline("{{ c.d | lower }} %s {{ x }}", HERE)
    assert first.render(ctx) == "BEE \"'); '); raise SystemExit('"
    assert second.render(ctx) == "dee %s '); raise SystemExit('"


def test_a_template_printing_many_looked_up_values_is_left_to_jinja() -> None:
    """Past MAX_LOOKUPS values with keys or filters the render would be long compiled
    code: Jinja renders it. Bare names have no such bound."""
    env = TemplateEngine(None).env
    at_most = "-".join(["{{ d.k }}"] * MAX_LOOKUPS)
    assert direct_template(env, at_most) is not None
    assert direct_template(env, at_most + " {{ x | upper }}") is None
    assert direct_template(env, "-".join(["{{ x }}"] * 1000)) is not None
    ctx = {"d": {"k": "v%s"}, "x": 1}
    fast, plain = engine(direct=True), engine(direct=False)
    assert outcome(fast, at_most, ctx) == outcome(plain, at_most, ctx)


# -- cache keys -------------------------------------------------------------------------------

PROMPTS = ["plain", "", 'q"uote\\', "ünï ☃ 𝄞", "\x00\x1f\x7f\x85\u2028", "lone \ud800"]
FIELDS: list[dict[str, Any]] = [
    {"params": {"size": "1024x1024", "quality": "low", "n": 1}},
    {"params": {"n": True}},
    {"params": {"n": 1.0}},
    {"params": {"n": -0.0}},
    {"params": {"svg": {"nested": [1, 2.5]}}},  # not tokened: api_key writes every key
    {"params": {}},
    {"params": {"n": 1}, "input_shas": ("a" * 64, "b" * 64), "mask_sha": "c" * 64},
    {"params": {"n": 1}, "markup_sha": "d" * 64},
    {"params": {"n": 1}, "model": "modèle \ud800"},  # the head itself is no UTF-8
]


def _request_key(*args: Any) -> str:
    """The key as the request's payload makes it: what every quicker way must give."""
    return CacheRequest(_api_payload(*args)).key


def _key_outcome(make: Any, *args: Any) -> Any:
    try:
        return make(*args)
    except UnicodeEncodeError as exc:
        return type(exc)


@pytest.mark.parametrize("fields", FIELDS)
def test_a_shapes_keys_are_api_key_for_every_prompt_and_variant(fields: dict[str, Any]) -> None:
    keys_module._API_KEYS.clear()
    keys_module._HEADS.clear()
    model = fields.get("model", "gpt-image-1")
    shas = fields.get("input_shas", ())
    mask, markup = fields.get("mask_sha"), fields.get("markup_sha")
    params = fields["params"]
    shape = ApiKeys("openai", "images/generations", model, params, shas, mask, markup)
    for variant in (1, 2, True):
        for prompt in PROMPTS:
            args = ("openai", "images/generations", model, prompt, params, shas, mask)
            want = _key_outcome(_request_key, *args, variant, markup)
            assert _key_outcome(api_key, *args, variant, markup) == want
            keys_module._API_KEYS.clear()  # hashed here, not found in the memo
            assert _key_outcome(shape, prompt, variant) == want, (prompt, variant)
            assert _key_outcome(shape, prompt, variant) == want  # and from the memo


def test_keys_a_shape_remembered_are_found_by_api_key_and_back() -> None:
    keys_module._API_KEYS.clear()
    params = {"size": "1024x1024", "quality": "low"}
    shape = ApiKeys("openai", "images/generations", "gpt-image-1", params)
    first = shape("a prompt", 1)
    assert keys_module._API_KEYS  # remembered under the same token api_key makes
    args = ("openai", "images/generations", "gpt-image-1", "a prompt", params, (), None, 1)
    assert api_key(*args, None) == first
    assert shape("another prompt", 1) != first


# -- molds ------------------------------------------------------------------------------------


def _job_fields(**extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": 'c/a"); import os; ("',
        "kind": "generate",
        "collection": "c\n    raise SystemExit",
        "asset": "a",
        "variant": 1,
        "model": "gpt-image-1",
        "provider": "preview",
        "prompt": "{s0}",
        "endpoint": "images/generations",
        "params": {"n": 1},
        "size": (64, 64),
        "requested_size": (1024, 1024),
        "output_path": "c/a.png",
        "source": "specs/c.yaml:1",
    }
    fields.update(extra)
    return fields


def test_a_molds_made_function_makes_the_constructed_record_whatever_its_values() -> None:
    """The generated function's source holds generated names only: values that read as
    code are values, and every field gets the value the constructor gives it."""
    fields = _job_fields()
    varying = ("id", "prompt", "variant")
    mold = Mold(ApiJob, varying, {k: v for k, v in fields.items() if k not in varying})
    made = mold(fields["id"], fields["prompt"], 2)
    built = ApiJob(**{**fields, "variant": 2})
    assert made == built
    assert mold.make(fields["id"], fields["prompt"], 2) == built
    for f in dataclasses.fields(ApiJob):
        assert getattr(made, f.name) is getattr(built, f.name) or f.name == "variant"
    with pytest.raises(TypeError):
        mold(fields["id"], fields["prompt"])


def test_a_fresh_state_is_the_constructed_one() -> None:
    checks = ({"check": "alpha", "ok": True},)
    made = _new_state("up-to-date", "k", "s", "unchanged", checks)
    assert made == JobState("up-to-date", "k", "s", "unchanged", checks)
    assert _new_state("generate", "k", None, "new", None) == JobState("generate", "k", None, "new")


# -- resolving a matrix -----------------------------------------------------------------------

PROMPT = (
    "{{ x }}% {{ asset.id }} for {{ brand.name }} ({{ mood }}): "
    "{{ brand.colors.primary | color_name }}"
)
SPEC = """\
brand:
  name: "Ac%me"
  colors: {primary: "#E4572E", accent: "#2B2D42"}
vars: {mood: calm}
assets:
  - id: "t-{{ x }}-{{ y }}"
    matrix: {x: [1, 2, 3], y: [a, b]}
    prompt: "THE_PROMPT"
  - id: single
    prompt: "{{ asset.id }} alone"
""".replace("THE_PROMPT", PROMPT)


def test_a_matrix_resolves_the_same_with_and_without_the_memo() -> None:
    """The prompt sees the asset's facts, added to each combination's own context; the
    context the combinations share is never written to."""
    root = Path("/nonexistent/assetpipe-project")
    coll = collection_from_text(SPEC, root / "specs" / "t.yaml", root, root / "specs")
    engine = TemplateEngine(None)
    base = base_context(coll)
    with_memo, without = [], []
    for tree in coll.assets:
        memo = AssetMemo(tree)
        combos = expand_matrix(tree)
        with_memo += [resolve_asset(coll, tree, c, engine, base, None, memo) for c in combos]
        without += [resolve_asset(coll, tree, c, engine, base, None, None) for c in combos]
    assert [(a.id, a.prompt) for a in with_memo] == [(a.id, a.prompt) for a in without]
    assert with_memo[-1].prompt == "single alone"
    assert [a.id for a in with_memo[:-1]] == [f"t-{x}-{y}" for x in (1, 2, 3) for y in "ab"]
    assert with_memo[0].prompt == "1% t-1-a for Ac%me (calm): orange red"
    assert "asset" not in base


# -- plan --json lines ------------------------------------------------------------------------


def _api(model: str, cost: Any, n: int) -> ApiJob:
    return ApiJob(**_job_fields(id=f"c/{n}", model=model, estimated_cost_usd=cost))


def test_cost_texts_are_remembered_per_estimate_and_route() -> None:
    """Jobs alternating between a direct model and a batched one, between 0.0 and -0.0,
    and between 2 and 2.0 get each their own text, as json.dumps writes it."""
    costs = [0.0123456789, 0.0123456789, 0.0, -0.0, 0.0, 2, 2.0, 2, float("nan"), 1e-9]
    for factor, direct in ((1.0, frozenset()), (0.5, frozenset({"direct-model"}))):
        lines = _JobLines(factor, direct)
        for n, cost in enumerate(costs * 2):
            for model in ("direct-model", "batched-model"):
                job = _api(model, cost, n)
                state = JobState("generate", "k", None, "new")
                want = json.dumps(job_json(job, state, factor, direct), ensure_ascii=False)
                assert lines.line(job, state) == want, (factor, model, cost)


def test_the_total_at_table_prices_is_the_routed_sum() -> None:
    jobs = [_api("m", cost, n) for n, cost in enumerate([2, 0.1, -0.0, 0.2, 3])]
    routed = sum(j.estimated_cost_usd * route_factor(j, 1.0, frozenset()) for j in jobs)
    total = _priced(jobs, 1.0, frozenset())
    assert total == routed and type(total) is type(routed)
    assert _priced([_api("m", 2, 0)], 1.0, frozenset()) == 2.0
    assert type(_priced([_api("m", 2, 0)], 1.0, frozenset())) is float


def test_jobs_sharing_parameters_but_not_model_or_size_get_their_own_texts() -> None:
    """The middle of a line is reused for the next job only when its parameters, model,
    size and requested size are the very objects of the last one's."""
    params = {"size": "1024x1024", "quality": "low", "output_format": "webp"}
    size, requested = (64, 64), (1024, 1024)
    variants = [
        {"model": "m1", "size": size, "requested_size": requested},
        {"model": "m1", "size": size, "requested_size": requested},
        {"model": "m2", "size": size, "requested_size": requested},
        {"model": "m2", "size": (32, 32), "requested_size": requested},
        {"model": "m2", "size": (32, 32), "requested_size": (1024, 1536)},
        {"model": "m2", "size": size, "requested_size": requested, "params": {"quality": "hi"}},
    ]
    lines = _JobLines(1.0, frozenset())
    state = JobState("generate", "k", None, "new")
    for n, fields in enumerate(variants * 2):
        job = ApiJob(**_job_fields(id=f"c/{n}", **{"params": params, **fields}))
        want = json.dumps(job_json(job, state), ensure_ascii=False)
        assert lines.line(job, state) == want, fields
