"""The HTTP client under the OpenAI SDK: the SDK's own defaults plus a cap on every body.

The SDK reads a whole response body into memory before it looks at it, and httpx2 inflates
``Content-Encoding: gzip`` on the way, so a broken proxy or a hostile server could hand
assetpipe a body of gigabytes, or a small gzip that inflates to gigabytes. This client
reads each body as a stream of decoded pieces (httpx2 inflates in pieces of at most 1 MiB)
and gives up as soon as the decoded total passes the cap, so memory stays near the cap
whatever arrives. It raises :class:`ResponseTooLarge`, an ``OpenAIError``, which the SDK
passes through unchanged and the provider reports as a ``bad_response``.

The address requests go to (``OPENAI_BASE_URL``, ``AZURE_OPENAI_ENDPOINT``) is checked
here too, by :func:`check_base_url`, before the SDK parses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from pipeline.errors import UsageError, printable, shortened
from pipeline.providers.openai_sse import capped_events, is_event_stream

if TYPE_CHECKING:
    _SdkClient = openai.DefaultAsyncHttpxClient
else:
    # The SDK's aiohttp transport (its ``aiohttp`` extra, a dependency of assetpipe): its
    # C parser and connection pool spend far less of the event loop on each request than
    # httpx2's pure-Python one, which probes every idle connection's socket each time a
    # request starts or ends (measured: 32 requests in flight finish ~4% sooner). Without
    # the extra (or with an SDK that has no such client), the SDK's default transport.
    _aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    _SdkClient = (
        _aiohttp_client
        if _aiohttp_client is not None and find_spec("aiohttp")
        else openai.DefaultAsyncHttpxClient
    )

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""Largest decoded body read (64 MiB): one image of the largest native size (3840x2160) is
at most about 33 MB as an uncompressed PNG, 44 MB in base64, and every request asks for
one image, so a real answer fits with room to spare."""

_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


OPENAI_EXAMPLE = "https://api.openai.com/v1"


def check_base_url(
    value: str | None,
    variable: str,
    environ: Mapping[str, str] | None = None,
    example: str = OPENAI_EXAMPLE,
) -> None:
    """Raise a UsageError naming ``variable`` unless the base URL is a URL.

    ``value`` is the address given in code; None means the SDK reads ``variable`` from
    the environment, and that is what is checked. The SDK parses it when the client is
    made, and a CR or LF in it (a value pasted with its line ending, or one planted to
    smuggle a header into every request) ends there in an ``InvalidURL`` traceback. The
    value is not echoed: its control characters would garble the terminal, and a URL
    may carry credentials.
    """
    if value is None:
        value = (os.environ if environ is None else environ).get(variable)
    if value is None:
        return
    if not value.isprintable():
        raise UsageError(
            f"{variable} holds a control character (a line break?); set it to the API's "
            f"address alone, e.g. {example}"
        )
    try:
        httpx2.URL(value)
    except httpx2.InvalidURL as exc:
        why = shortened(printable(str(exc)))
        raise UsageError(
            f"{variable} is not a URL ({why}); set it to the API's address, e.g. {example}"
        ) from None


class ResponseTooLarge(openai.OpenAIError):
    """A response body (after decoding) larger than the client accepts."""

    def __init__(self, limit: int, encoding: str | None):
        how = f" after {encoding} decoding" if encoding else ""
        super().__init__(
            f"the response body is larger than {limit // (1024 * 1024)} MiB{how}; "
            "no image answer is that large, so it was not read"
        )
        self.limit = limit


class CappedAsyncClient(_SdkClient):
    """The SDK's own HTTP client (``openai.DefaultAioHttpClient``, else
    ``openai.DefaultAsyncHttpxClient``) that reads no body larger than ``max_body_bytes``."""

    def __init__(self, *, max_body_bytes: int = MAX_RESPONSE_BYTES, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_body_bytes = max_body_bytes

    async def send(
        self, request: httpx2.Request, *, stream: bool = False, **kwargs: Any
    ) -> httpx2.Response:
        """Send ``request``; unless ``stream`` is asked for, return the response with its
        (decoded) body read, or raise :class:`ResponseTooLarge`. A streamed answer is
        passed on unread, each of its events capped (:mod:`.openai_sse`); a streamed
        error is read whole, under the cap, like any other."""
        response = await super().send(request, stream=True, **kwargs)
        if stream and not response.is_error:
            if is_event_stream(response):
                return capped_events(response, self.max_body_bytes)
            return response
        try:
            body = await self._read_capped(response)
        finally:
            await response.aclose()
        # The body is decoded now: drop the headers that describe the wire form of it, so
        # the new response does not try to inflate it a second time.
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in _BODY_HEADERS
        ]
        return httpx2.Response(
            response.status_code,
            headers=headers,
            content=body,
            request=request,
            extensions=response.extensions,
            history=response.history,
        )

    async def _read_capped(self, response: httpx2.Response) -> bytes:
        limit = self.max_body_bytes
        encoding = response.headers.get("content-encoding")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(limit, None)
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > limit:
                raise ResponseTooLarge(limit, encoding)
            chunks.append(chunk)
        return b"".join(chunks)
