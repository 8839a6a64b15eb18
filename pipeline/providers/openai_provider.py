"""The OpenAI (and Azure OpenAI) provider: the official SDK, with assetpipe's retry policy.

The SDK's own retries are off (``max_retries=0``): it retries every 429 including
``insufficient_quota`` and gives up on ``Retry-After`` over 120 s, and assetpipe needs one
policy that also paces the whole build. The timeout is generous because high-quality
images take minutes, and a client that gives up first pays for images it never receives.
Images go to edits as ``(filename, bytes, mime)`` tuples, which the SDK can replay.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

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
from pipeline.providers.ratelimit_headers import rate_limit_info, retry_after

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


def _file(image: ImageInput) -> tuple[str, bytes, str]:
    return (image.filename, image.data, image.mime)


class OpenAIProvider:
    """Images through ``AsyncOpenAI`` or ``AsyncAzureOpenAI`` (``name`` says which)."""

    def __init__(self, client: AsyncOpenAI, name: str = "openai"):
        self.client = client
        self.name = name

    @classmethod
    def openai(
        cls, timeout: float, api_key: str | None = None, base_url: str | None = None
    ) -> OpenAIProvider:
        """A provider reading OPENAI_API_KEY / OPENAI_BASE_URL / org / project as the SDK does."""
        client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)
        return cls(client, "openai")

    @classmethod
    def azure(cls, timeout: float) -> OpenAIProvider:
        """A provider reading AZURE_OPENAI_ENDPOINT / _API_KEY and OPENAI_API_VERSION."""
        client = AsyncAzureOpenAI(max_retries=0, timeout=timeout)
        return cls(client, "azure")

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self.client.close()

    async def generate(self, request: ImageRequest) -> ImageResult:
        """One generation or edit; raises ProviderFailure classified for the retry policy."""
        params = dict(request.params)
        try:
            kwargs: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
            if request.endpoint == "edit":
                images = [_file(i) for i in request.images]
                kwargs["image"] = images if len(images) > 1 else images[0]
                if request.mask is not None:
                    kwargs["mask"] = _file(request.mask)
                kwargs.update({k: params[k] for k in EDIT_PARAMS if k in params})
                if "moderation" in params:  # not in the SDK's multipart signature
                    kwargs["extra_body"] = {"moderation": params["moderation"]}
                raw = await self.client.images.with_raw_response.edit(**kwargs)
            else:
                kwargs.update({k: params[k] for k in GENERATE_PARAMS if k in params})
                raw = await self.client.images.with_raw_response.generate(**kwargs)
            response = raw.parse()
        except openai.APIStatusError as exc:
            raise _status_failure(exc) from None
        except openai.APITimeoutError:
            raise ProviderFailure("timeout", "the request timed out") from None
        except openai.APIConnectionError as exc:
            raise ProviderFailure("connection", f"connection failed: {exc}") from None
        headers = raw.headers
        request_id = headers.get("x-request-id")
        if not response.data or not response.data[0].b64_json:
            raise ProviderFailure(
                "bad_response", "the response carried no image", request_id=request_id
            )
        try:
            data = base64.b64decode(response.data[0].b64_json, validate=True)
        except (binascii.Error, ValueError):
            raise ProviderFailure(
                "bad_response", "the image in the response is not base64", request_id=request_id
            ) from None
        usage = None
        if response.usage is not None:
            details = response.usage.input_tokens_details
            usage = Usage(
                input_text_tokens=details.text_tokens if details else response.usage.input_tokens,
                input_image_tokens=details.image_tokens if details else 0,
                output_tokens=response.usage.output_tokens,
            )
        return ImageResult(
            data=data,
            output_format=response.output_format or str(params.get("output_format", "png")),
            size=response.size,
            quality=response.quality,
            background=response.background,
            usage=usage,
            request_id=request_id,
            rate=rate_limit_info(headers),
        )


def _status_failure(exc: openai.APIStatusError) -> ProviderFailure:
    """Classify an HTTP error by status and, for 400/429, by the error code."""
    status = exc.status_code
    body = exc.body if isinstance(exc.body, Mapping) else {}
    code = exc.code or (body.get("code") if isinstance(body.get("code"), str) else None)
    message = exc.message
    headers = exc.response.headers
    kind: FailureKind
    details: dict[str, object] = {}
    if status == 429:
        kind = "quota" if code == "insufficient_quota" else "rate_limit"
    elif status == 401:
        kind = "auth"
    elif status == 403:
        kind = "permission"
    elif status == 404:
        kind = "not_found"
    elif status in (408, 409) or status >= 500:
        kind = "server"
    elif code in ("moderation_blocked", "content_policy_violation", "contentFilter"):
        kind = "moderation"
        moderation = body.get("moderation_details")
        if isinstance(moderation, Mapping):
            details = {"moderation_details": dict(moderation)}
    else:
        kind = "invalid_request"
        if exc.param:
            details = {"param": exc.param}
    return ProviderFailure(
        kind,
        message,
        code=code,
        status=status,
        request_id=exc.request_id,
        retry_after_s=retry_after(headers) if kind in ("rate_limit", "server") else None,
        details=details,
        rate=rate_limit_info(headers),
    )
