"""The cache keys of API jobs, made fast enough for plans of 100,000 jobs.

A key is the sha256 of the canonical JSON of its request's payload (:mod:`pipeline.hashing`).
For fields of plain types the canonical text is written here directly, in the order
``canonical_json`` writes it (pinned by ``tests/test_api_key_text.py``); the text the jobs
of one asset share, up to the prompt, is hashed once and the digest copied per job; and a
key this process computed is remembered by its fields. Anything else goes through
``canonical_json`` itself, so every key and every error is its.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.hashing import KEY_PREFIX, CacheRequest, canonical_json, canonical_key
from pipeline.jobs.job import ApiJob
from pipeline.jobs.provider import ParamValue


def api_request(job: ApiJob, input_shas: Sequence[str], mask_sha: str | None) -> CacheRequest:
    """What an API job's result is made from once its input images are known: everything
    that shapes the image (provider, the provider's call and every parameter as it words
    them, model, prompt, the sha256 of each input, of the mask and of the markup, the
    variant), and nothing else (no paths, no ids). ``markup`` is in the payload only when
    the job has one, so the keys of every other job stay as they were."""
    markup = job.markup.sha256 if job.markup is not None else None
    args = (
        job.provider,
        job.endpoint,
        job.model,
        job.prompt,
        job.params,
        input_shas,
        mask_sha,
        job.variant,
        markup,
    )
    payload = _api_payload(*args)
    if not _plain(*args):
        return CacheRequest(payload)
    token = _token(*args)
    known = _API_KEYS.get(token) if token is not None else None
    if known is not None:
        return CacheRequest.hashed_before(payload, known)
    # The text canonical_json makes of the payload, hashed here.
    request = CacheRequest.hashed_before(payload, canonical_key(_canonical_text(*args)))
    if token is not None:
        _remember(token, request.key)
    return request


def api_cache_key(job: ApiJob, input_shas: Sequence[str], mask_sha: str | None) -> str:
    """The cache key of an API job once its input images are known: :func:`api_request`'s
    key, without making its payload (the key a process computed for the same fields
    before is looked up, as there)."""
    markup = job.markup.sha256 if job.markup is not None else None
    return api_key(
        job.provider,
        job.endpoint,
        job.model,
        job.prompt,
        job.params,
        input_shas,
        mask_sha,
        job.variant,
        markup,
    )


def api_key(
    provider: str,
    endpoint: str,
    model: str,
    prompt: str,
    params: Mapping[str, ParamValue],
    input_shas: Sequence[str],
    mask_sha: str | None,
    variant: int,
    markup_sha: str | None,
) -> str:
    """The cache key :func:`api_request` gives the API job with these fields, computed
    before the job is made (the planner makes each job once, with its key)."""
    args = (provider, endpoint, model, prompt, params, input_shas, mask_sha, variant, markup_sha)
    if not _plain(*args):  # written by canonical_json, and not remembered
        return CacheRequest(_api_payload(*args)).key
    token = _token(*args)
    known = _API_KEYS.get(token) if token is not None else None
    if known is not None:
        return known
    # The text before the prompt is hashed once for the jobs of one asset (:func:`_head`);
    # UTF-8 encodes a text piece by piece as it encodes it whole, so the digest is the same.
    key = _finished(
        _head(endpoint, model, params, input_shas, mask_sha, markup_sha), prompt, provider, variant
    )
    if token is not None:
        _remember(token, key)
    return key


def _finished(head: Any, prompt: str, provider: str, variant: int) -> str:
    """The key: a copy of ``head`` (:func:`_head`) given the rest of the canonical text,
    the prompt's value, the provider and the variant."""
    digest = head.copy()
    digest.update(_text_from_prompt(prompt, provider, variant).encode("utf-8"))
    key: str = digest.hexdigest()
    return key


_HEADS: dict[tuple[object, ...], tuple[Mapping[str, ParamValue], Any]] = {}


def _head(
    endpoint: str,
    model: str,
    params: Mapping[str, ParamValue],
    input_shas: Sequence[str],
    mask_sha: str | None,
    markup_sha: str | None,
) -> Any:
    """A sha256 that has taken ``KEY_PREFIX`` and the canonical text of the payload up to
    the prompt's value (``{"endpoint":...,"prompt":``), made once per set of these fields
    (the parameters by mapping object, held with it so its id is not reused meanwhile);
    callers hash a copy."""
    key = (id(params), endpoint, model, tuple(input_shas), mask_sha, markup_sha)
    known = _HEADS.get(key)
    if known is not None and known[0] is params:
        return known[1]
    text = KEY_PREFIX + _text_to_prompt(endpoint, model, params, input_shas, mask_sha, markup_sha)
    digest = hashlib.sha256(text.encode("utf-8"))
    if len(_HEADS) >= _MEMO_LIMIT:
        _HEADS.clear()
    _HEADS[key] = (params, digest)
    return digest


class ApiKeys:
    """:func:`api_key` of the requests that differ only in prompt and variant (the jobs of
    one asset shape, which read no input image): the token's other parts are made once
    and the canonical text before the prompt is hashed once (:func:`_head`), so a key costs
    its own token, one lookup and, the first time, the hash of the prompt's part. Fields
    of any other type go to :func:`api_key` itself, so every key and every error is its."""

    __slots__ = ("_fields", "_head", "_params_token")

    def __init__(
        self,
        provider: str,
        endpoint: str,
        model: str,
        params: Mapping[str, ParamValue],
        input_shas: Sequence[str] = (),
        mask_sha: str | None = None,
        markup_sha: str | None = None,
    ):
        self._fields = (provider, endpoint, model, params, tuple(input_shas), mask_sha, markup_sha)
        plain = _plain(provider, endpoint, model, "", params, input_shas, mask_sha, 0, markup_sha)
        self._params_token = _params_token(params) if plain else None
        """None: :func:`api_key` writes every key (a field it neither tokens nor writes
        directly)."""
        self._head: Any = None
        """:func:`_head` of these fields, once a key is first hashed (as :func:`api_key`
        does, which this does in line)."""

    def __call__(self, prompt: str, variant: int) -> str:
        provider, endpoint, model, params, input_shas, mask_sha, markup_sha = self._fields
        params_token = self._params_token
        if params_token is None or type(prompt) is not str or type(variant) is not int:
            return api_key(
                provider,
                endpoint,
                model,
                prompt,
                params,
                input_shas,
                mask_sha,
                variant,
                markup_sha,
            )
        token = (
            provider,
            endpoint,
            model,
            prompt,
            params_token,
            input_shas,
            mask_sha,
            variant,
            markup_sha,
        )
        known = _API_KEYS.get(token)
        if known is not None:
            return known
        head = self._head
        if head is None:  # the first key: the text before the prompt, hashed once
            head = self._head = _head(endpoint, model, params, input_shas, mask_sha, markup_sha)
        key = _finished(head, prompt, provider, variant)
        _remember(token, key)
        return key


def _api_payload(
    provider: str,
    endpoint: str,
    model: str,
    prompt: str,
    params: Mapping[str, ParamValue],
    input_shas: Sequence[str],
    mask_sha: str | None,
    variant: int,
    markup_sha: str | None,
) -> dict[str, object]:
    payload: dict[str, object] = {
        "provider": provider,
        "endpoint": endpoint,
        "model": model,
        "prompt": prompt,
        "params": dict(params),
        "inputs": list(input_shas),
        "mask": mask_sha,
        "variant": variant,
    }
    if markup_sha is not None:
        payload["markup"] = markup_sha
    return payload


_encode_text: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.encode_basestring
)
"""How ``json.dumps(..., ensure_ascii=False)`` writes a string, quotes included."""


def _api_canonical(
    provider: str,
    endpoint: str,
    model: str,
    prompt: str,
    params: Mapping[str, ParamValue],
    input_shas: Sequence[str],
    mask_sha: str | None,
    variant: int,
    markup_sha: str | None,
) -> str | None:
    """``canonical_json`` of the payload :func:`_api_payload` makes of these fields,
    written directly (its keys in sorted order, compact, non-ASCII as it is), or None
    when a field is of a type this does not write (then ``canonical_json`` does).
    ``tests/test_hashing.py`` pins the keys; a test holds the two texts equal."""
    args = (provider, endpoint, model, prompt, params, input_shas, mask_sha, variant, markup_sha)
    return _canonical_text(*args) if _plain(*args) else None


def _plain(
    provider: object,
    endpoint: object,
    model: object,
    prompt: object,
    params: Mapping[str, ParamValue],
    input_shas: Sequence[str],
    mask_sha: object,
    variant: object,
    markup_sha: object,
) -> bool:
    """Whether every field but the parameters is of the exact type the direct text and
    the memo's token are written for (text, an int variant, None)."""
    return (
        type(provider) is str
        and type(endpoint) is str
        and type(model) is str
        and type(prompt) is str
        and type(variant) is int
        and (mask_sha is None or type(mask_sha) is str)
        and (markup_sha is None or type(markup_sha) is str)
        and (not input_shas or all(type(s) is str for s in input_shas))
    )


def _canonical_text(
    provider: str,
    endpoint: str,
    model: str,
    prompt: str,
    params: Mapping[str, ParamValue],
    input_shas: Sequence[str],
    mask_sha: str | None,
    variant: int,
    markup_sha: str | None,
) -> str:
    """:func:`_api_canonical` of fields that are :func:`_plain`."""
    return "".join(
        (
            _text_to_prompt(endpoint, model, params, input_shas, mask_sha, markup_sha),
            _text_from_prompt(prompt, provider, variant),
        )
    )


def _text_to_prompt(
    endpoint: str,
    model: str,
    params: Mapping[str, ParamValue],
    input_shas: Sequence[str],
    mask_sha: str | None,
    markup_sha: str | None,
) -> str:
    """The canonical text of a plain payload up to the prompt's value (the keys in
    order: endpoint, inputs, markup, mask, model, params, prompt)."""
    enc = _encode_text
    return "".join(
        (
            '{"endpoint":',
            enc(endpoint),
            ',"inputs":[',
            ",".join(map(enc, input_shas)),
            "]",
            "" if markup_sha is None else ',"markup":' + enc(markup_sha),
            ',"mask":',
            "null" if mask_sha is None else enc(mask_sha),
            ',"model":',
            enc(model),
            ',"params":',
            _params_json(params),
            ',"prompt":',
        )
    )


def _text_from_prompt(prompt: str, provider: str, variant: int) -> str:
    """The rest of the canonical text: the prompt's value, the provider and the variant."""
    enc = _encode_text
    return f'{enc(prompt)},"provider":{enc(provider)},"variant":{int.__repr__(variant)}}}'


_PARAMS_JSON: dict[int, tuple[Mapping[str, ParamValue], str]] = {}


def _params_json(params: Mapping[str, ParamValue]) -> str:
    """``canonical_json`` of the parameters, once per mapping object (held with its
    text, so its id is not reused meanwhile; the jobs of one asset share theirs)."""
    known = _PARAMS_JSON.get(id(params))
    if known is not None and known[0] is params:
        return known[1]
    text = canonical_json(dict(params))
    if len(_PARAMS_JSON) >= _MEMO_LIMIT:
        _PARAMS_JSON.clear()
    _PARAMS_JSON[id(params)] = (params, text)
    return text


# -- hashing each request once per process ---------------------------------------------------
#
# ``plan`` makes every API job with its key, and then ``assess`` asks for each job's request
# again (it never trusts a key a stored plan carries): the same canonical JSON and sha256,
# twice per job. The keys computed in this process are remembered by a token that stands
# for the payload exactly (every field with its type, so 1, 1.0 and true stay apart, and
# floats by their repr, so -0.0 is not 0.0); a payload with anything else (a nested
# parameter) is hashed every time. Only keys this process hashed itself are remembered:
# nothing read from a file can enter.

_MEMO_LIMIT = 1 << 18
"""Tokens remembered at most (then forgotten all at once): a bound for long-lived
processes (``watch``, the review server) that plan again and again."""
_API_KEYS: dict[tuple[object, ...], str] = {}
_PARAM_TOKENS: dict[int, tuple[Mapping[str, ParamValue], tuple[object, ...] | None]] = {}
_SCALARS = (str, int, bool, type(None))


def _token(
    provider: object,
    endpoint: object,
    model: object,
    prompt: object,
    params: Mapping[str, ParamValue],
    input_shas: Sequence[str],
    mask_sha: object,
    variant: object,
    markup_sha: object,
) -> tuple[object, ...] | None:
    """A hashable stand-in for the payload fields that are :func:`_plain` make (the memo's
    key), or None when the parameters have none."""
    params_token = _params_token(params)
    if params_token is None:
        return None
    return (
        provider,
        endpoint,
        model,
        prompt,
        params_token,
        tuple(input_shas),
        mask_sha,
        variant,
        markup_sha,
    )


def _params_token(params: Mapping[str, ParamValue]) -> tuple[object, ...] | None:
    """The parameters as ``(name, type, value)`` triples (a float by its repr), once per
    mapping object: the jobs of one asset share theirs. The mapping is held with its
    token, so its id cannot be reused meanwhile; a job's parameters are never changed
    after it is made (jobs are frozen)."""
    known = _PARAM_TOKENS.get(id(params))
    if known is not None and known[0] is params:
        return known[1]
    items: list[object] = []
    token: tuple[object, ...] | None
    for name, value in params.items():
        kind = type(value)
        if type(name) is not str:
            items = []
            break
        if kind is float:
            items.append((name, kind, repr(value)))
        elif kind in _SCALARS:
            items.append((name, kind, value))
        else:
            items = []
            break
    token = tuple(sorted(items, key=lambda item: item[0])) if items or not params else None  # type: ignore[index]
    if len(_PARAM_TOKENS) >= _MEMO_LIMIT:
        _PARAM_TOKENS.clear()
    _PARAM_TOKENS[id(params)] = (params, token)
    return token


def _remember(token: tuple[object, ...], key: str) -> None:
    if len(_API_KEYS) >= _MEMO_LIMIT:
        _API_KEYS.clear()
    _API_KEYS[token] = key
