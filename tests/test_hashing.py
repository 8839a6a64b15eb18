"""Property tests of the hashing contract behind every cache key (pipeline/hashing.py and
the planner's api_cache_key)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.hashing import KEY_PREFIX, canonical_json, content_key, sha256_bytes
from pipeline.jobs import Job
from pipeline.planner import api_cache_key

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


BASE_JOB = Job(
    id="icons/sword",
    kind="generate",
    collection="icons",
    asset="sword",
    variant=1,
    model="gpt-image-2.5-flare",
    provider="preview",
    prompt="a sword",
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
    st.sampled_from(["edit"]).map(lambda k: {"kind": k}),
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
