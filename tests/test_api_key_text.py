"""An API job's key is hashed from canonical JSON written directly, and once per process.

:func:`pipeline.jobs.keys.api_key` writes the payload's canonical JSON itself (the keys in
sorted order) instead of building a mapping for ``json.dumps``, and ``assess`` gets the
same key back from a memo instead of hashing it again. Keys must never change for the
same request: these tests hold the direct text equal to ``canonical_json`` of the payload
and every key equal to ``CacheRequest(payload).key`` on awkward values (the literal keys
are pinned in ``tests/test_hashing.py``), and show that what a memo holds cannot stand
for a different payload (``1`` and ``true``, ``0.0`` and ``-0.0``).
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.hashing import CacheRequest, canonical_json
from pipeline.jobs import ApiJob, InputRef
from pipeline.jobs.api_keys import _api_canonical, _api_payload, api_key, api_request

TEXTS = ["plain", "", 'q"uote\\', "ünï ☃ 𝄞", "\x00\x1f\x7f\x85\u2028", "lone \ud800"]
PARAMS: list[dict[str, Any]] = [
    {"size": "1024x1024", "quality": "low", "background": "auto", "output_format": "png", "n": 1},
    {"n": True},
    {"n": 1.0},
    {"n": -0.0},
    {"n": 0.0},
    {"n": None, "z": "ü"},
    {"svg": {"b": [1, 2.5, None], "a": "x"}},
    {},
]


def _outcome(make: Any, *args: Any) -> Any:
    """A key, or the kind of error making it raised (a lone surrogate is no UTF-8)."""
    try:
        return make(*args)
    except UnicodeEncodeError as exc:
        return type(exc)


def _request_key(*args: Any) -> str:
    return CacheRequest(_api_payload(*args)).key


def _job(prompt: str, params: dict[str, Any], **extra: Any) -> ApiJob:
    fields: dict[str, Any] = {
        "id": "c/a",
        "kind": "generate",
        "collection": "c",
        "asset": "a",
        "variant": 1,
        "model": "gpt-image-1",
        "provider": "openai",
        "prompt": prompt,
        "endpoint": "images/generations",
        "params": params,
        "size": (1024, 1024),
        "requested_size": (1024, 1024),
        "output_path": "c/a.png",
        "source": "specs/c.yaml:1",
    }
    fields.update(extra)
    return ApiJob(**fields)


@pytest.mark.parametrize("params", PARAMS)
def test_the_direct_text_is_canonical_json_of_the_payload(params: dict[str, Any]) -> None:
    for text in TEXTS:
        for shas, mask, markup, variant in (
            ([], None, None, 1),
            (["a" * 64, text], text, None, 7),
            ([text], None, "m" * 64, 2),
        ):
            args = ("openai", text, text, text, params, shas, mask, variant, markup)
            assert _api_canonical(*args) == canonical_json(_api_payload(*args))
            assert _outcome(api_key, *args) == _outcome(_request_key, *args)


def test_fields_of_other_types_are_left_to_canonical_json() -> None:
    assert _api_canonical("p", "e", "m", "t", {}, [], None, True, None) is None
    assert _api_canonical("p", "e", "m", "t", {}, [1], None, 1, None) is None  # type: ignore[list-item]
    key = api_key("p", "e", "m", "t", {}, [], None, True, None)  # type: ignore[arg-type]
    assert key == CacheRequest(_api_payload("p", "e", "m", "t", {}, [], None, True, None)).key


def test_the_request_assess_asks_for_has_the_planners_key() -> None:
    for params in PARAMS:
        for text in TEXTS[:-1]:  # every text but the lone surrogate, which has no key
            job = _job(text, params)
            key = api_key("openai", job.endpoint, job.model, text, params, [], None, 1, None)
            request = api_request(job, [], None)
            assert request.key == key == CacheRequest(dict(request.payload)).key
            assert api_request(job, [], None) == request  # the memo's answer: the same


def test_equal_looking_parameters_keep_their_own_keys() -> None:
    """1, 1.0 and true are equal in Python (and hash alike), -0.0 equals 0.0: the memo
    must not give one the other's key, in whichever order they come."""
    for order in (PARAMS, list(reversed(PARAMS))):
        for params in order:
            job = _job("same prompt", dict(params))  # a mapping object of its own each time
            assert (
                api_request(job, [], None).key
                == CacheRequest(
                    _api_payload(
                        "openai", job.endpoint, job.model, "same prompt", params, [], None, 1, None
                    )
                ).key
            )


def test_inputs_mask_and_markup_are_part_of_the_memos_token() -> None:
    markup = InputRef(path="m.png", sha256="c" * 64, width=1, height=1, format="png", bytes=1)
    plain, marked = _job("p", {"n": 1}), _job("p", {"n": 1}, markup=markup)
    keys = {
        api_request(plain, [], None).key,
        api_request(plain, ["a" * 64], None).key,
        api_request(plain, ["a" * 64], "b" * 64).key,
        api_request(marked, ["a" * 64], None).key,
    }
    assert len(keys) == 4
