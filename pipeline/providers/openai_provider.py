"""The OpenAI (and Azure OpenAI) provider: the official SDK, with assetpipe's retry policy.

The SDK's own retries are off (``max_retries=0``): it retries every 429 including
``insufficient_quota`` and gives up on ``Retry-After`` over 120 s, and assetpipe needs one
policy that also paces the whole build. The timeout is generous because high-quality
images take minutes, and a client that gives up first pays for images it never receives.
Images go to edits as ``(filename, bytes, mime)`` tuples, which the SDK can replay.

Everything the server sends is untrusted (see the threat model in docs/reliability.md). This
module is the boundary:

- text that leaves it (failure messages, error details, request ids, echoed fields) is
  redacted (:mod:`pipeline.providers.redaction`) and bounded in size;
- bodies are read through :class:`~pipeline.providers.openai_http.CappedAsyncClient`, the
  base64 image is measured before it is decoded, and usage figures that are not
  non-negative whole numbers are dropped with a note (the runner then counts the estimate);
- every request has a total deadline on top of the SDK's per-read timeout (see
  :data:`DEADLINE_FACTOR`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI

from pipeline.jobs import ImageInput, ImageRequest, ImageResult, ProviderFailure
from pipeline.providers.openai_http import (
    MAX_RESPONSE_BYTES,
    CappedAsyncClient,
    check_base_url,
)
from pipeline.providers.openai_request import EDIT_PARAMS, GENERATE_PARAMS, svg_param
from pipeline.providers.openai_sse import EventTooLarge
from pipeline.providers.openai_stream import EVENT_FAMILIES, STREAMED_FORMATS, streamed_result
from pipeline.providers.openai_wire import (
    ID_CHARS,
    MAX_IMAGE_BYTES,
    image_result,
    sdk_call,
    sdk_client,
)
from pipeline.providers.ratelimit_headers import rate_limit_info
from pipeline.providers.redaction import Redactor

DEADLINE_FACTOR = 1.5
"""A request's total deadline is this times the timeout setting.

The SDK's timeout bounds each network read, so a server that trickles a byte at a time
never trips it. The timeout setting is sized for the longest wait before a high-quality
image's first byte; once the answer starts, even a 4K PNG arrives in seconds, so half the
timeout again is ample for the transfer (and for uploading edit inputs) while a trickle
still ends. The deadline is a ``timeout`` failure, retried like any other."""


def _file(image: ImageInput) -> tuple[str, bytes, str]:
    return (image.filename, image.data, image.mime)


def deadline_for(timeout: object) -> float | None:
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
        self.deadline_s = deadline_s if deadline_s is not None else deadline_for(client.timeout)
        self.max_image_bytes = max_image_bytes
        self.redact = Redactor([getattr(client, "api_key", None)])

    @classmethod
    def openai(
        cls, timeout: float, api_key: str | None = None, base_url: str | None = None
    ) -> OpenAIProvider:
        """A provider reading OPENAI_API_KEY / OPENAI_BASE_URL / org / project as the SDK does
        (a base URL that is not a URL is a UsageError, before the SDK sees it)."""
        check_base_url(base_url, "OPENAI_BASE_URL")
        client = sdk_client(timeout, api_key, base_url)
        return cls(client, "openai", deadline_s=DEADLINE_FACTOR * timeout)

    @classmethod
    def azure(cls, timeout: float) -> OpenAIProvider:
        """A provider reading AZURE_OPENAI_ENDPOINT / _API_KEY and OPENAI_API_VERSION."""
        check_base_url(None, "AZURE_OPENAI_ENDPOINT", example="https://NAME.openai.azure.com")
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
        async with sdk_call(self.deadline_s, self.redact, self._late()):
            raw = await self._send(request, params)
        request_id = self.redact.optional(raw.headers.get("x-request-id"), ID_CHARS)
        try:
            response = raw.parse()
        except (ValueError, TypeError):  # not JSON, or not an ImagesResponse
            raise ProviderFailure(
                "bad_response", "the response is not an Images API answer", request_id=request_id
            ) from None
        return image_result(
            response,
            default_format=str(params.get("output_format", "png")),
            request_id=request_id,
            redact=self.redact,
            max_image_bytes=self.max_image_bytes,
            rate=rate_limit_info(raw.headers),
        )

    async def generate_streaming(
        self,
        request: ImageRequest,
        partial_images: int,
        on_partial: Callable[[int, bytes], None],
    ) -> ImageResult:
        """:meth:`generate`, streamed: ``on_partial(index, bytes)`` is called with each of
        at most ``partial_images`` (1-3) previews while the image is made, and the final
        image is returned as :meth:`generate` returns it. Partials are only shown: each is
        measured before it is decoded, and nothing but the final image leaves as a result.
        A generation or an edit streams when its format can (png, webp, jpeg); an SVG or
        a GIF cannot, and is sent as :meth:`generate` sends it.

        ``stream`` and ``partial_images`` go to the SDK call alone, never into
        ``request.params``: those are what the cache key is made of, so an image made
        streamed is cached under the key it would have had unstreamed."""
        params = dict(request.params)
        if params.get("output_format", "png") not in STREAMED_FORMATS:
            return await self.generate(request)
        count = max(1, min(3, partial_images))
        kwargs = _call_kwargs(request, params)
        kwargs.update(stream=True, partial_images=count)
        images = self.client.images
        call = images.edit if request.endpoint == "edit" else images.generate
        try:
            async with sdk_call(self.deadline_s, self.redact, self._late(), too_large=True):
                stream = await call(**kwargs)
                async with stream:  # closed however it ends: the final image comes first
                    return await streamed_result(
                        stream,
                        family=EVENT_FAMILIES[request.endpoint],
                        partial_images=count,
                        on_partial=on_partial,
                        default_format=str(params.get("output_format", "png")),
                        redact=self.redact,
                        max_image_bytes=self.max_image_bytes,
                    )
        except EventTooLarge as exc:
            raise ProviderFailure("bad_response", str(exc), too_large=True) from None
        except openai.APIError as exc:  # an error event inside the stream
            raise ProviderFailure(
                "server", self.redact.text(f"the stream reported an error: {exc.message}")
            ) from None
        except ValueError:  # an event that is not JSON
            raise ProviderFailure(
                "bad_response", "the stream sent an event that is not JSON"
            ) from None

    def _late(self) -> str:
        """What a call that passed its deadline says."""
        if self.deadline_s is None:
            return "no complete answer in time"
        return (
            f"no complete answer within {self.deadline_s:g} s "
            f"({DEADLINE_FACTOR:g} x the timeout setting)"
        )

    async def _send(self, request: ImageRequest, params: Mapping[str, Any]) -> Any:
        images = self.client.images.with_raw_response
        call = images.edit if request.endpoint == "edit" else images.generate
        return await call(**_call_kwargs(request, params))


def _call_kwargs(request: ImageRequest, params: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK call's keywords for ``request`` (an edit's files, its parameters), one
    place for the plain and the streamed call so both send the same request."""
    kwargs: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
    if request.endpoint == "edit":
        images = [_file(i) for i in request.images]
        kwargs["image"] = images if len(images) > 1 else images[0]
        if request.mask is not None:
            kwargs["mask"] = _file(request.mask)
        if request.markup is not None:
            kwargs["markup"] = _file(request.markup)
        kwargs.update({k: params[k] for k in EDIT_PARAMS if k in params})
        kwargs.update(svg_param(params))
        if "moderation" in params:  # not in the SDK's multipart signature
            kwargs["extra_body"] = {"moderation": params["moderation"]}
        return kwargs
    kwargs.update({k: params[k] for k in GENERATE_PARAMS if k in params})
    kwargs.update(svg_param(params))
    return kwargs
