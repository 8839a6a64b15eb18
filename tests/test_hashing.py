"""Property tests of the hashing contract behind every cache key (pipeline/hashing.py and
the planner's api_cache_key)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import api
from pipeline.hashing import KEY_PREFIX, canonical_json, content_key, sha256_bytes
from pipeline.jobs import ApiJob, RenditionOp, api_cache_key, rendition_cache_key

PROPERTY = settings(max_examples=200, deadline=None)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(min_size=1, max_size=10), json_values, min_size=1, max_size=8)


def reorder(value: Any, rnd: Any) -> Any:
    """The same value with every dict's insertion order shuffled (lists keep their order)."""
    if isinstance(value, dict):
        keys = list(value)
        rnd.shuffle(keys)
        return {k: reorder(value[k], rnd) for k in keys}
    if isinstance(value, list):
        return [reorder(v, rnd) for v in value]
    return value


@PROPERTY
@given(payload=payloads, rnd=st.randoms(use_true_random=False))
def test_canonical_json_ignores_dict_key_order(payload: dict[str, Any], rnd: Any):
    """Two dicts equal up to key order serialize (and hash) identically."""
    shuffled = reorder(payload, rnd)
    assert canonical_json(shuffled) == canonical_json(payload)
    assert content_key(shuffled) == content_key(payload)


@PROPERTY
@given(payload=payloads)
def test_canonical_json_round_trips(payload: dict[str, Any]):
    """Canonical JSON is plain JSON of the same value: compact, sorted, non-ASCII kept."""
    text = canonical_json(payload)
    assert json.loads(text) == payload
    assert text == json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_canonical_json_shape():
    """Sorted keys, no spaces, unicode as is: the exact bytes every key depends on."""
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == (
        '{"a":[1,{"c":null,"d":"é"}],"b":1}'
    )


def test_content_key_is_the_versioned_sha256():
    """content_key is sha256 of the version prefix plus the canonical JSON."""
    payload = {"prompt": "a sword", "n": 1}
    expected = sha256_bytes((KEY_PREFIX + canonical_json(payload)).encode("utf-8"))
    assert content_key(payload) == expected
    assert len(expected) == 64


@PROPERTY
@given(payload=payloads, data=st.data())
def test_content_key_changes_when_any_field_changes(payload: dict[str, Any], data: Any):
    """Changing the value of any one field changes the key."""
    field = data.draw(st.sampled_from(sorted(payload)))
    new_value = data.draw(
        json_values.filter(lambda v: canonical_json(v) != canonical_json(payload[field]))
    )
    changed = {**payload, field: new_value}
    assert content_key(changed) != content_key(payload)


@PROPERTY
@given(payload=payloads, data=st.data())
def test_content_key_changes_when_a_field_is_added_or_removed(payload: dict[str, Any], data: Any):
    """Adding a field or removing one changes the key (a missing field is not a null one)."""
    field = data.draw(st.sampled_from(sorted(payload)))
    without = {k: v for k, v in payload.items() if k != field}
    assert content_key(without) != content_key(payload)
    extra = data.draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in payload))
    assert content_key({**payload, extra: None}) != content_key(payload)


BASE_JOB = ApiJob(
    id="icons/sword",
    kind="generate",
    collection="icons",
    asset="sword",
    variant=1,
    model="gpt-image-2.5-flare",
    provider="preview",
    prompt="a sword",
    endpoint="images/generations",
    params={"size": "1024x1024", "quality": "medium", "background": "auto", "n": 1},
    size=(1024, 1024),
    requested_size=(1024, 1024),
    output_path="icons/sword.png",
    source="specs/icons.yaml:2",
)
BASE_INPUTS = ("a" * 64,)
BASE_MASK: str | None = None

job_changes = st.one_of(
    st.text(min_size=1, max_size=12).map(lambda p: {"prompt": BASE_JOB.prompt + p}),
    st.sampled_from(["gpt-image-2", "gpt-image-2.5-sunburst"]).map(lambda m: {"model": m}),
    st.sampled_from(["openai", "azure"]).map(lambda p: {"provider": p}),
    st.integers(min_value=2, max_value=16).map(lambda v: {"variant": v}),
    st.sampled_from(["images/edits"]).map(lambda e: {"endpoint": e}),
    st.sampled_from(["low", "high", "auto"]).map(
        lambda q: {"params": {**BASE_JOB.params, "quality": q}}
    ),
    st.sampled_from(["1536x1024", "1024x1536"]).map(
        lambda s: {"params": {**BASE_JOB.params, "size": s}}
    ),
    st.sampled_from([{"output_compression": 80}, {"moderation": "low"}]).map(
        lambda extra: {"params": {**BASE_JOB.params, **extra}}
    ),
)


@PROPERTY
@given(change=job_changes)
def test_api_cache_key_changes_with_every_request_field(change: dict[str, Any]):
    """Prompt, model, provider, variant, endpoint and every request parameter are in the key."""
    base = api_cache_key(BASE_JOB, BASE_INPUTS, BASE_MASK)
    assert api_cache_key(replace(BASE_JOB, **change), BASE_INPUTS, BASE_MASK) != base


@PROPERTY
@given(sha=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_api_cache_key_changes_with_input_and_mask_bytes(sha: str):
    """Each input image's sha256, their order and the mask's sha256 are in the key."""
    base = api_cache_key(BASE_JOB, BASE_INPUTS, BASE_MASK)
    if sha != BASE_INPUTS[0]:
        assert api_cache_key(BASE_JOB, (sha,), BASE_MASK) != base
        assert api_cache_key(BASE_JOB, (sha, BASE_INPUTS[0]), None) != api_cache_key(
            BASE_JOB, (BASE_INPUTS[0], sha), None
        )
    assert api_cache_key(BASE_JOB, BASE_INPUTS, sha) != base


def test_api_cache_key_ignores_ids_paths_and_sources():
    """Job id, collection, asset name, output path, source line and sizes recorded for the
    manifest are not part of the key: moving a spec never costs a request."""
    base = api_cache_key(BASE_JOB, BASE_INPUTS, BASE_MASK)
    moved = replace(
        BASE_JOB,
        id="weapons/blade",
        collection="weapons",
        asset="blade",
        output_path="weapons/blade.png",
        source="specs/weapons.yaml:9",
        size=(512, 512),
        tags=("x",),
        palette=("#FFFFFF",),
    )
    assert api_cache_key(moved, BASE_INPUTS, BASE_MASK) == base


PINNED_SPEC = """
    assets:
      - id: sword
        prompt: "A flat vector sword icon"
        size: 1024x1024
        quality: low
        renditions: [{size: 64x64, format: webp}]
      - id: banner
        prompt: "A wide banner"
        size: 1920x1080
        variants: 2
"""


def test_cache_keys_are_pinned_literals(project, monkeypatch):
    """The keys of a small plan are these exact hex strings, for openai and preview.

    Any change to the key format, the canonical JSON or the request parameters the planner
    resolves makes every user's cache a miss and every image paid again: it must fail here
    first, and ship only with a deliberate KEY_VERSION bump and a changelog entry."""
    project.gen({"specs/set.yaml": PINNED_SPEC})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    keys = {}
    for provider in ("openai", "preview"):
        request = api.Request(project=project.root, flags={"provider": provider})
        ws = api.open_workspace(request)
        keys[provider] = {job.id: job.cache_key for job in ws.plan.jobs}
    assert keys == {
        "openai": {
            "set/sword": "e132b8f0bf4bd93269ee439286e0bec8f72685a0aa3d2be4f57e5ce3e709bfcb",
            "set/sword@64x64.webp": None,
            "set/banner": "743f047e8fc8f416f9f62374a68f8972f9e5f9916931f7d8248d9736ba713363",
            "set/banner#2": "5f247102182ce756ac22df2dac148b90a472a7ffc10a623e582a943c03180ae0",
        },
        "preview": {
            "set/sword": "d7f60c0c65fe214c966540d82bf77411e029d74b4e25e4c30b2619255b9dd8e9",
            "set/sword@64x64.webp": None,
            "set/banner": "7b2f61398b7b373306b08d612b8156f2f42b6b21f626748a77d09781972d4c63",
            "set/banner#2": "6162c08c7b8ee7a125ab5d07cedf74163d2f45b23632a3d45035a0f28b3a5d80",
        },
    }


def test_rendition_key_is_a_pinned_literal():
    """A rendition's key (source sha256 plus its operations) is this exact hex string."""
    op = RenditionOp(width=64, height=64, fit="cover", format="webp", compression=None)
    assert rendition_cache_key("0" * 64, op) == (
        "888f9cb75ff781ad32167b14d376b153d308a6b2ae7d0bd18cc14728b1e609d8"
    )
