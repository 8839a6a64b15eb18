"""Partial previews (``partial_images``): the OpenAI provider's streamed generate, with the
real SDK against the fake Images API streaming server-sent events."""

from __future__ import annotations

import asyncio
import io

import openai
import pytest
from fakeapi import FakeImagesAPI
from PIL import Image

from pipeline.jobs import ImageRequest, ImageResult, ProviderFailure
from pipeline.providers.openai_http import CappedAsyncClient
from pipeline.providers.openai_provider import OpenAIProvider

REQUEST = ImageRequest(
    endpoint="generate",
    model="gpt-image-2.5-flare",
    prompt="a red fox",
    params={"size": "1024x1024", "quality": "low", "output_format": "png", "n": 1},
)


def streamed(api: FakeImagesAPI, n: int) -> tuple[list[tuple[int, bytes]], ImageResult]:
    """The partials the callback got, in order, and the final result."""
    client = openai.AsyncOpenAI(
        base_url=api.base_url,
        api_key="sk-test-key",
        max_retries=0,
        timeout=30.0,
        http_client=CappedAsyncClient(),
    )
    provider = OpenAIProvider(client)
    got: list[tuple[int, bytes]] = []

    async def go() -> ImageResult:
        try:
            return await provider.generate_streaming(
                REQUEST, n, lambda index, data: got.append((index, data))
            )
        finally:
            await provider.aclose()

    return got, asyncio.run(go())


@pytest.mark.parametrize("n", [1, 2, 3])
def test_the_provider_streams_n_partials_then_returns_the_final_image(api, n):
    """The request says stream and partial_images=N; the callback gets N real images with
    indexes 0..N-1, none equal to the final, which comes back with its usage as an
    unstreamed generate returns it; one image is billed."""
    got, result = streamed(api, n)
    (request,) = api.requests
    assert request.fields["stream"] is True
    assert request.fields["partial_images"] == n
    assert [index for index, _ in got] == list(range(n))
    for _, data in got:
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
        assert data != result.data
    with Image.open(io.BytesIO(result.data)) as final:
        assert (final.format, final.size) == ("PNG", (1024, 1024))
    assert result.output_format == "png"
    assert result.usage is not None
    assert result.usage.output_tokens > 0
    assert api.billed_images == 1


def test_an_svg_is_never_streamed(api):
    """SVG (and GIF) cannot stream: the streamed generate sends a plain request."""
    svg = ImageRequest(
        endpoint="generate",
        model="gpt-image-2.6-flare",
        prompt="a shield icon",
        params={"size": "1024x1024", "output_format": "svg", "n": 1},
    )
    client = openai.AsyncOpenAI(
        base_url=api.base_url, api_key="sk-test-key", max_retries=0, timeout=30.0
    )
    provider = OpenAIProvider(client)
    got: list[int] = []

    async def go() -> ImageResult:
        try:
            return await provider.generate_streaming(svg, 2, lambda i, _d: got.append(i))
        finally:
            await provider.aclose()

    result = asyncio.run(go())
    assert result.data.startswith(b"<svg")
    assert got == []
    assert "stream" not in api.requests[0].fields


def streamed_with_cap(api: FakeImagesAPI, cap: int) -> tuple[list[int], ProviderFailure]:
    """The partials passed on and the failure of a streamed generate whose client caps
    each body (and each event) at ``cap`` bytes."""
    client = openai.AsyncOpenAI(
        base_url=api.base_url,
        api_key="sk-test-key",
        max_retries=0,
        timeout=30.0,
        http_client=CappedAsyncClient(max_body_bytes=cap),
    )
    provider = OpenAIProvider(client)
    got: list[int] = []

    async def go() -> ProviderFailure:
        try:
            await provider.generate_streaming(REQUEST, 2, lambda i, _d: got.append(i))
        except ProviderFailure as failure:
            return failure
        finally:
            await provider.aclose()
        raise AssertionError("the stream was accepted")

    return got, asyncio.run(go())


def test_an_event_that_never_ends_is_refused_at_the_cap(api):
    """A hostile server sends one event of 64 MiB with no end: the client stops reading
    it at the 1 MiB cap (the SDK never holds more), and the failure is a bad_response
    that is never retried."""
    api.configure(bomb_bytes=64 * 1024 * 1024)
    api.stream_hostile = "huge_event"
    got, failure = streamed_with_cap(api, 1024 * 1024)
    assert got == []
    assert (failure.kind, failure.too_large) == ("bad_response", True)
    assert failure.message == (
        "an event of the streamed answer is longer than 1 MiB; "
        "no image answer is that large, so it was not read"
    )


def test_events_each_under_the_cap_pass_whatever_the_total(api):
    """The cap is per event: two partials and the final image, each under it, add up to
    more than it and still arrive."""
    ok, result = streamed(api, 2)
    sizes = [len(data) for _, data in ok] + [len(result.data)]
    cap = max(sizes) * 2  # base64 and JSON make an event about 4/3 of its image
    assert sum(sizes) * 4 // 3 > cap
    client = openai.AsyncOpenAI(
        base_url=api.base_url,
        api_key="sk-test-key",
        max_retries=0,
        timeout=30.0,
        http_client=CappedAsyncClient(max_body_bytes=cap),
    )
    provider = OpenAIProvider(client)
    got: list[int] = []

    async def go() -> ImageResult:
        try:
            return await provider.generate_streaming(REQUEST, 2, lambda i, _d: got.append(i))
        finally:
            await provider.aclose()

    final = asyncio.run(go())
    assert got == [0, 1]
    assert final.output_format == "png"


def test_an_error_event_in_the_stream_is_a_provider_failure(api):
    """An ``error`` the stream reports (the SDK raises APIError) is a ProviderFailure the
    retry policy can classify, not a crash."""
    api.stream_hostile = "error_event"
    _, failure = streamed_with_cap(api, 64 * 1024 * 1024)
    assert failure.kind == "server"
    assert failure.message == "the stream reported an error: the image could not be made"
