"""The OpenAI Images wire format, shared by the synchronous provider and the batch client.

Both routes send the same request settings and get the same ``ImagesResponse`` and error
envelope back (the batch route inside JSONL lines), so reading an answer, its usage and its
errors lives here once. Everything the server sends is untrusted (see the threat model in
docs/reliability.md): text that leaves this module is redacted and bounded, the base64 image
is measured before it is decoded, and usage figures that are not whole numbers from 0 to
:data:`MAX_TOKENS` are dropped with a note (the runner then counts the estimate).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

import openai
from openai import AsyncOpenAI

from pipeline.jobs import FailureKind, ImageResult, ProviderFailure, RateLimitInfo, Usage
from pipeline.providers.openai_http import MAX_RESPONSE_BYTES, CappedAsyncClient, ResponseTooLarge
from pipeline.providers.ratelimit_headers import rate_limit_info, retry_after
from pipeline.providers.redaction import Redactor

MAX_IMAGE_BYTES = 40 * 1024 * 1024
"""Largest decoded image accepted from a response: an uncompressed RGBA PNG of the largest
native size (3840x2160) is about 33 MB."""

MAX_TOKENS = 100_000_000
"""A token count above this is not a real answer (an image costs thousands)."""

ID_CHARS = 200
"""Request ids and similar echoes are cut to this many characters."""

MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation", "contentFilter"})

PREVIEW_ACCESS = re.compile(r"access to the (?:\w+ )?preview|preview access", re.IGNORECASE)
"""How an answer says the organisation lacks a preview (SVG, GIF): a 403, sometimes a 400,
with no code of its own; asking again gives the same answer."""

_WORD = re.compile(r"[a-z0-9_.-]{1,32}")
_SIZE = re.compile(r"\d{1,5}x\d{1,5}|auto")


def sdk_client(timeout: float, api_key: str | None, base_url: str | None) -> AsyncOpenAI:
    """The SDK client both routes use: its own retries off (assetpipe owns the policy) and
    every body read through :class:`CappedAsyncClient`; the key, base URL, organization and
    project come from the arguments or the ``OPENAI_*`` variables, as the SDK reads them."""
    return AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        timeout=timeout,
        http_client=CappedAsyncClient(max_body_bytes=MAX_RESPONSE_BYTES),
    )


def base64_limit(max_bytes: int) -> int:
    """The length of the base64 text of ``max_bytes`` bytes."""
    return 4 * -(-max_bytes // 3)


def field(obj: object, name: str) -> object:
    """A field of a parsed model or a plain mapping (the SDK does not validate answers)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def image_result(
    response: object,
    *,
    default_format: str,
    request_id: str | None,
    redact: Redactor,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    rate: RateLimitInfo | None = None,
) -> ImageResult:
    """The :class:`ImageResult` of an ``ImagesResponse`` (a parsed model or a JSON mapping);
    raises a ``bad_response`` :class:`ProviderFailure` when it carries no usable image."""
    data = first_image(response, max_image_bytes, request_id)
    usage, notes = parse_usage(field(response, "usage"), redact)
    usage, svg_notes = with_svg_usage(usage, field(response, "svg_usage"), redact)
    notes += svg_notes
    fmt = _word(field(response, "output_format"))
    return ImageResult(
        data=data,
        output_format=fmt or default_format,
        size=_matching(_SIZE, field(response, "size")),
        quality=_word(field(response, "quality")),
        background=_word(field(response, "background")),
        usage=usage,
        request_id=request_id,
        rate=rate,
        notes=notes,
    )


def first_image(response: object, max_image_bytes: int, request_id: str | None) -> bytes:
    """The first image's bytes, measured before they are decoded."""
    items = field(response, "data")
    first = items[0] if isinstance(items, list) and items else None
    b64 = field(first, "b64_json")
    if not isinstance(b64, str) or not b64:
        raise ProviderFailure(
            "bad_response", "the response carried no image", request_id=request_id
        )
    limit = base64_limit(max_image_bytes)
    if len(b64) > limit:
        raise ProviderFailure(
            "bad_response",
            f"the image in the response is {len(b64):,} characters of base64, more than "
            f"the {limit:,} that {max_image_bytes // (1024 * 1024)} MiB take; "
            "it was not decoded",
            request_id=request_id,
            too_large=True,
        )
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderFailure(
            "bad_response", "the image in the response is not base64", request_id=request_id
        ) from None


def parse_usage(usage: object, redact: Redactor) -> tuple[Usage | None, tuple[str, ...]]:
    """Token usage when every figure is a whole number from 0 to MAX_TOKENS.

    Anything else (NaN, negative, a string) would poison the spend and the budget, and
    the manifest cannot hold NaN as JSON; the image itself is fine and paid for, so it
    is kept, the usage dropped (the runner counts the estimate) and a note says so.
    """
    if usage is None:
        return None, ()
    details = field(usage, "input_tokens_details")
    figures = {
        "output_tokens": field(usage, "output_tokens"),
        **(
            {
                "input_tokens_details.text_tokens": field(details, "text_tokens"),
                "input_tokens_details.image_tokens": field(details, "image_tokens"),
            }
            if details is not None
            else {"input_tokens": field(usage, "input_tokens")}
        ),
    }
    counts = {name: _count(value) for name, value in figures.items()}
    bad = [name for name, count in counts.items() if count is None]
    if bad:
        shown = ", ".join(f"{n}={redact.text(repr(figures[n]), 40)}" for n in bad)
        note = (
            f"the response reported unusable token usage ({shown}); "
            "its cost is counted as the estimate"
        )
        return None, (note,)
    if details is not None:
        text = counts["input_tokens_details.text_tokens"]
        image = counts["input_tokens_details.image_tokens"]
    else:
        text, image = counts["input_tokens"], 0
    return (
        Usage(
            input_text_tokens=text or 0,
            input_image_tokens=image or 0,
            output_tokens=counts["output_tokens"] or 0,
        ),
        (),
    )


def with_svg_usage(
    usage: Usage | None, svg_usage: object, redact: Redactor
) -> tuple[Usage | None, tuple[str, ...]]:
    """``usage`` with the SVG author's tokens (``svg_usage``, reported apart from the
    image's) added, so an SVG is priced whole; figures that are not whole numbers are
    dropped with a note, as for the image's usage. Without the image's usage the whole
    call is counted at its estimate, so nothing is added."""
    if svg_usage is None or usage is None:
        return usage, ()
    figures = {name: field(svg_usage, name) for name in ("input_tokens", "output_tokens")}
    counts = {name: _count(value) for name, value in figures.items()}
    if any(count is None for count in counts.values()):
        shown = ", ".join(f"{n}={redact.text(repr(v), 40)}" for n, v in figures.items())
        return usage, (f"the response reported unusable SVG token usage ({shown}); not priced",)
    return (
        replace(
            usage,
            svg_input_tokens=counts["input_tokens"] or 0,
            svg_output_tokens=counts["output_tokens"] or 0,
        ),
        (),
    )


def classify(
    status: int,
    raw_code: str | None,
    message: str,
    *,
    redact: Redactor,
    param: object = None,
    body: Mapping[str, object] | None = None,
    request_id: object = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderFailure:
    """Classify an HTTP error by status and, for 400/429, by the error code.

    ``headers`` are those of a synchronous answer (a batch line has none): they give the
    Retry-After of a retryable failure and the account's rate limits.
    """
    body = body or {}
    kind: FailureKind
    details: dict[str, object] = {}
    if status in (400, 403, 404) and PREVIEW_ACCESS.search(message):
        kind = "permission"
        details = {"access": "preview"}
    elif status == 429:
        kind = "quota" if raw_code == "insufficient_quota" else "rate_limit"
    elif status == 401:
        kind = "auth"
    elif status == 403:
        kind = "permission"
    elif status == 404:
        kind = "not_found"
    elif status in (408, 409) or status >= 500:
        kind = "server"
    elif raw_code in MODERATION_CODES:
        kind = "moderation"
        moderation = body.get("moderation_details")
        if isinstance(moderation, Mapping):
            details = {"moderation_details": redact.data(moderation)}
    else:
        kind = "invalid_request"
        shown = redact.optional(param, 200)
        if shown:
            details = {"param": shown}
    return ProviderFailure(
        kind,
        redact.text(message),
        code=redact.optional(raw_code, 100),
        status=status,
        request_id=redact.optional(request_id, ID_CHARS),
        retry_after_s=(
            retry_after(headers)
            if headers is not None and kind in ("rate_limit", "server")
            else None
        ),
        details=details,
        rate=rate_limit_info(headers) if headers is not None else None,
    )


@contextlib.asynccontextmanager
async def sdk_call(
    deadline_s: float | None, redact: Redactor, late: str, *, too_large: bool = False
) -> AsyncIterator[None]:
    """One SDK call within ``deadline_s`` (None: only the client's own timeouts), every
    way it can fail turned into a :class:`ProviderFailure` the retry policy can read:
    ``late`` says the deadline passed, an HTTP error is classified by
    :func:`status_failure`, a body over the client's cap is a ``bad_response``
    (``too_large``: not worth asking again). One place, so the image, streaming and judge
    calls fail alike."""
    try:
        async with asyncio.timeout(deadline_s):
            yield
    except TimeoutError:
        raise ProviderFailure("timeout", late) from None
    except openai.APIStatusError as exc:
        raise status_failure(exc, redact) from None
    except openai.APITimeoutError:
        raise ProviderFailure("timeout", "the request timed out") from None
    except openai.APIConnectionError as exc:
        raise ProviderFailure("connection", redact.text(f"connection failed: {exc}")) from None
    except ResponseTooLarge as exc:
        raise ProviderFailure("bad_response", str(exc), too_large=too_large) from None


def status_failure(exc: openai.APIStatusError, redact: Redactor) -> ProviderFailure:
    """Classify an error answer the SDK raised."""
    body = exc.body if isinstance(exc.body, Mapping) else {}
    code = body.get("code")
    raw_code = exc.code or (code if isinstance(code, str) else None)
    return classify(
        exc.status_code,
        raw_code,
        exc.message,
        redact=redact,
        param=exc.param,
        body=body,
        request_id=exc.request_id,
        headers=exc.response.headers,
    )


def _count(value: object) -> int | None:
    """A token count: a whole number from 0 to MAX_TOKENS, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_TOKENS else None
    if isinstance(value, float) and value.is_integer() and 0 <= value <= MAX_TOKENS:
        return int(value)
    return None


def _word(value: object) -> str | None:
    """An echoed setting (quality, background, format) if it looks like one, else None."""
    return _matching(_WORD, value)


def _matching(pattern: re.Pattern[str], value: object) -> str | None:
    return value if isinstance(value, str) and pattern.fullmatch(value) else None
