"""The OpenAI (and Azure OpenAI) provider: the official SDK, with assetpipe's retry policy.

The SDK's own retries are off (``max_retries=0``): it retries every 429 including
``insufficient_quota`` and gives up on ``Retry-After`` over 120 s, and assetpipe needs one
policy that also paces the whole build. The timeout is generous because high-quality
images take minutes, and a client that gives up first pays for images it never receives.
Images go to edits as ``(filename, bytes, mime)`` tuples, which the SDK can replay.

Everything the server sends is untrusted (DESIGN section 11). This module is the boundary:

- text that leaves it (failure messages, error details, request ids, echoed fields) is
  redacted (:mod:`pipeline.providers.redaction`) and bounded in size;
- bodies are read through :class:`~pipeline.providers.openai_http.CappedAsyncClient`, the
  base64 image is measured before it is decoded, and usage figures that are not
  non-negative whole numbers are dropped with a note (the runner then counts the estimate);
- every request has a total deadline on top of the SDK's per-read timeout (see
  :data:`DEADLINE_FACTOR`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import httpx2
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

from pipeline.jobs import (
    FailureKind,
    ImageInput,
    ImageRequest,
    ImageResult,
    ProviderFailure,
    Usage,
)
from pipeline.providers.openai_http import MAX_RESPONSE_BYTES, CappedAsyncClient, ResponseTooLarge
from pipeline.providers.ratelimit_headers import rate_limit_info, retry_after
from pipeline.providers.redaction import Redactor

GENERATE_PARAMS = (
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "n",
)
EDIT_PARAMS = (
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "input_fidelity",
    "n",
)

DEADLINE_FACTOR = 1.5
"""A request's total deadline is this times the timeout setting.

The SDK's timeout bounds each network read, so a server that trickles a byte at a time
never trips it. The timeout setting is sized for the longest wait before a high-quality
image's first byte; once the answer starts, even a 4K PNG arrives in seconds, so half the
timeout again is ample for the transfer (and for uploading edit inputs) while a trickle
still ends. The deadline is a ``timeout`` failure, retried like any other."""

MAX_IMAGE_BYTES = 40 * 1024 * 1024
"""Largest decoded image accepted from a response: an uncompressed RGBA PNG of the largest
native size (3840x2160) is about 33 MB."""

MAX_TOKENS = 100_000_000
"""A token count above this is not a real answer (an image costs thousands)."""

_WORD = re.compile(r"[a-z0-9_.-]{1,32}")
_SIZE = re.compile(r"\d{1,5}x\d{1,5}|auto")
_ID_CHARS = 200


def _file(image: ImageInput) -> tuple[str, bytes, str]:
    return (image.filename, image.data, image.mime)


def _deadline(timeout: object) -> float | None:
    """The total deadline for a client configured with ``timeout`` (None: no deadline)."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return DEADLINE_FACTOR * float(timeout)
    if isinstance(timeout, httpx2.Timeout):
        parts = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
        return DEADLINE_FACTOR * max(parts) if parts else None
    return None


class OpenAIProvider:
    """Images through ``AsyncOpenAI`` or ``AsyncAzureOpenAI`` (``name`` says which)."""

    def __init__(
        self,
        client: AsyncOpenAI,
        name: str = "openai",
        *,
        deadline_s: float | None = None,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ):
        self.client = client
        self.name = name
        self.deadline_s = deadline_s if deadline_s is not None else _deadline(client.timeout)
        self.max_image_bytes = max_image_bytes
        self.redact = Redactor([getattr(client, "api_key", None)])

    @classmethod
    def openai(
        cls, timeout: float, api_key: str | None = None, base_url: str | None = None
    ) -> OpenAIProvider:
        """A provider reading OPENAI_API_KEY / OPENAI_BASE_URL / org / project as the SDK does."""
        client = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            http_client=CappedAsyncClient(max_body_bytes=MAX_RESPONSE_BYTES),
        )
        return cls(client, "openai", deadline_s=DEADLINE_FACTOR * timeout)

    @classmethod
    def azure(cls, timeout: float) -> OpenAIProvider:
        """A provider reading AZURE_OPENAI_ENDPOINT / _API_KEY and OPENAI_API_VERSION."""
        client = AsyncAzureOpenAI(
            max_retries=0,
            timeout=timeout,
            http_client=CappedAsyncClient(max_body_bytes=MAX_RESPONSE_BYTES),
        )
        return cls(client, "azure", deadline_s=DEADLINE_FACTOR * timeout)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()

    async def generate(self, request: ImageRequest) -> ImageResult:
        """One generation or edit; raises ProviderFailure classified for the retry policy."""
        params = dict(request.params)
        try:
            async with asyncio.timeout(self.deadline_s):
                raw = await self._send(request, params)
        except TimeoutError:
            raise ProviderFailure(
                "timeout",
                f"no complete answer within {self.deadline_s:g} s "
                f"({DEADLINE_FACTOR:g} x the timeout setting)",
            ) from None
        except openai.APIStatusError as exc:
            raise _status_failure(exc, self.redact) from None
        except openai.APITimeoutError:
            raise ProviderFailure("timeout", "the request timed out") from None
        except openai.APIConnectionError as exc:
            raise ProviderFailure(
                "connection", self.redact.text(f"connection failed: {exc}")
            ) from None
        except ResponseTooLarge as exc:
            raise ProviderFailure("bad_response", str(exc)) from None
        headers = raw.headers
        request_id = self.redact.optional(headers.get("x-request-id"), _ID_CHARS)
        try:
            response = raw.parse()
        except (ValueError, TypeError):  # not JSON, or not an ImagesResponse
            raise ProviderFailure(
                "bad_response", "the response is not an Images API answer", request_id=request_id
            ) from None
        data = self._image(response, request_id)
        usage, notes = self._usage(getattr(response, "usage", None))
        fmt = _word(getattr(response, "output_format", None))
        return ImageResult(
            data=data,
            output_format=fmt or str(params.get("output_format", "png")),
            size=_matching(_SIZE, getattr(response, "size", None)),
            quality=_word(getattr(response, "quality", None)),
            background=_word(getattr(response, "background", None)),
            usage=usage,
            request_id=request_id,
            rate=rate_limit_info(headers),
            notes=notes,
        )

    async def _send(self, request: ImageRequest, params: Mapping[str, Any]) -> Any:
        kwargs: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
        if request.endpoint == "edit":
            images = [_file(i) for i in request.images]
            kwargs["image"] = images if len(images) > 1 else images[0]
            if request.mask is not None:
                kwargs["mask"] = _file(request.mask)
            kwargs.update({k: params[k] for k in EDIT_PARAMS if k in params})
            if "moderation" in params:  # not in the SDK's multipart signature
                kwargs["extra_body"] = {"moderation": params["moderation"]}
            return await self.client.images.with_raw_response.edit(**kwargs)
        kwargs.update({k: params[k] for k in GENERATE_PARAMS if k in params})
        return await self.client.images.with_raw_response.generate(**kwargs)

    def _image(self, response: object, request_id: str | None) -> bytes:
        """The first image's bytes, measured before they are decoded."""
        items = getattr(response, "data", None)
        first = items[0] if isinstance(items, list) and items else None
        b64 = getattr(first, "b64_json", None)
        if not isinstance(b64, str) or not b64:
            raise ProviderFailure(
                "bad_response", "the response carried no image", request_id=request_id
            )
        limit = 4 * -(-self.max_image_bytes // 3)  # base64 length of max_image_bytes
        if len(b64) > limit:
            raise ProviderFailure(
                "bad_response",
                f"the image in the response is {len(b64):,} characters of base64, more than "
                f"the {limit:,} that {self.max_image_bytes // (1024 * 1024)} MiB take; "
                "it was not decoded",
                request_id=request_id,
            )
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderFailure(
                "bad_response", "the image in the response is not base64", request_id=request_id
            ) from None

    def _usage(self, usage: object) -> tuple[Usage | None, tuple[str, ...]]:
        """Token usage when every figure is a whole number from 0 to MAX_TOKENS.

        Anything else (NaN, negative, a string) would poison the spend and the budget, and
        the manifest cannot hold NaN as JSON; the image itself is fine and paid for, so it
        is kept, the usage dropped (the runner counts the estimate) and a note says so.
        """
        if usage is None:
            return None, ()
        details = _get(usage, "input_tokens_details")
        figures = {
            "output_tokens": _get(usage, "output_tokens"),
            **(
                {
                    "input_tokens_details.text_tokens": _get(details, "text_tokens"),
                    "input_tokens_details.image_tokens": _get(details, "image_tokens"),
                }
                if details is not None
                else {"input_tokens": _get(usage, "input_tokens")}
            ),
        }
        counts = {name: _count(value) for name, value in figures.items()}
        bad = [name for name, count in counts.items() if count is None]
        if bad:
            shown = ", ".join(f"{n}={self.redact.text(repr(figures[n]), 40)}" for n in bad)
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


def _get(obj: object, name: str) -> object:
    """A field of a parsed model or a plain mapping (the SDK does not validate answers)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


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


def _status_failure(exc: openai.APIStatusError, redact: Redactor) -> ProviderFailure:
    """Classify an HTTP error by status and, for 400/429, by the error code."""
    status = exc.status_code
    body = exc.body if isinstance(exc.body, Mapping) else {}
    raw_code = exc.code or (body.get("code") if isinstance(body.get("code"), str) else None)
    headers = exc.response.headers
    kind: FailureKind
    details: dict[str, object] = {}
    if status == 429:
        kind = "quota" if raw_code == "insufficient_quota" else "rate_limit"
    elif status == 401:
        kind = "auth"
    elif status == 403:
        kind = "permission"
    elif status == 404:
        kind = "not_found"
    elif status in (408, 409) or status >= 500:
        kind = "server"
    elif raw_code in ("moderation_blocked", "content_policy_violation", "contentFilter"):
        kind = "moderation"
        moderation = body.get("moderation_details")
        if isinstance(moderation, Mapping):
            details = {"moderation_details": redact.data(moderation)}
    else:
        kind = "invalid_request"
        param = redact.optional(exc.param, 200)
        if param:
            details = {"param": param}
    return ProviderFailure(
        kind,
        redact.text(exc.message),
        code=redact.optional(raw_code, 100),
        status=status,
        request_id=redact.optional(exc.request_id, _ID_CHARS),
        retry_after_s=retry_after(headers) if kind in ("rate_limit", "server") else None,
        details=details,
        rate=rate_limit_info(headers),
    )
